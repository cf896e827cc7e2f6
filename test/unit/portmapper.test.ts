// The Portmapper's state machine against a scripted NAT-PMP gateway on loopback: the failures
// the lab's miniupnpd does not produce on demand — a refused mapping, a gateway that stops
// answering until the lease runs out, an epoch that goes back, a moved external port — plus the
// delete on close. (test/lab/portmap.test.ts runs the real miniupnpd.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import pino from 'pino';
import { Portmapper } from '../../agent/portmap/portmapper.js';

interface MapAsk { internalPort: number; externalPort: number; lifetime: number }

/** A NAT-PMP gateway whose answers the test decides; it records every map request. */
async function scriptedGateway(): Promise<{
  port: number; socket: Socket; asks: MapAsk[];
  epoch: number; externalPort: number; result: number; silent: boolean; close(): Promise<void>;
}> {
  const socket = createSocket('udp4');
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const gw = {
    port: socket.address().port, socket, asks: [] as MapAsk[], epoch: 1000, externalPort: 50000, result: 0, silent: false,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
  socket.on('message', (msg, rinfo) => {
    if (gw.silent || msg[0] !== 0) return;
    const reply = (b: Buffer): void => { socket.send(b, rinfo.port, rinfo.address); };
    if (msg[1] === 0) {
      const b = Buffer.alloc(12);
      b[1] = 128;
      b.writeUInt32BE(gw.epoch, 4);
      b.set([198, 51, 100, 7], 8);
      reply(b);
    } else if (msg[1] === 1 && msg.length === 12) {
      const ask = { internalPort: msg.readUInt16BE(4), externalPort: msg.readUInt16BE(6), lifetime: msg.readUInt32BE(8) };
      gw.asks.push(ask);
      const b = Buffer.alloc(16);
      b[1] = 129;
      b.writeUInt16BE(gw.result, 2);
      b.writeUInt32BE(gw.epoch, 4);
      b.writeUInt16BE(ask.internalPort, 8);
      b.writeUInt16BE(ask.lifetime === 0 ? 0 : gw.externalPort, 10);
      b.writeUInt32BE(ask.lifetime, 12);
      reply(b);
    }
  });
  return gw;
}

const log = pino({ level: 'silent' });
const loopback = async () => ({ address: '127.0.0.1', localAddress: '127.0.0.1', interface: 'lo' });
const waitFor = async (what: string, ms: number, ok: () => boolean): Promise<void> => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

function mapper(gwPort: number, changes: Array<string | null>, leaseSeconds = 2): Portmapper {
  const pm: Portmapper = new Portmapper({
    localPort: () => 41641, log, protocols: ['nat-pmp'], leaseSeconds, findGateway: loopback, gatewayPort: gwPort,
    onChange: () => changes.push(pm.external),
  });
  return pm;
}

test('maps, renews at half the lease keeping the port, follows a moved port, and deletes on close', async () => {
  const gw = await scriptedGateway();
  const changes: Array<string | null> = [];
  const pm = mapper(gw.port, changes);
  try {
    pm.start();
    await waitFor('a mapping', 3000, () => pm.external !== null);
    assert.equal(pm.external, '198.51.100.7:50000');
    assert.deepEqual(gw.asks[0], { internalPort: 41641, externalPort: 41641, lifetime: 2 }, 'asks for its own port first');
    await waitFor('two renewals', 4000, () => (pm.status().mapping?.renewals ?? 0) >= 2);
    assert.ok(gw.asks.slice(1).every((a) => a.externalPort === 50000 && a.lifetime === 2), JSON.stringify(gw.asks));
    gw.externalPort = 50001; // the gateway hands out another port on renewal
    await waitFor('the moved mapping', 3000, () => pm.external === '198.51.100.7:50001');
    assert.deepEqual(changes, ['198.51.100.7:50000', '198.51.100.7:50001']);
    const st = pm.status();
    assert.equal(st.mapping!.protocol, 'nat-pmp');
    assert.ok(Date.parse(st.mapping!.renewAt) < Date.parse(st.mapping!.expiresAt));
    const before = gw.asks.length;
    await pm.close();
    assert.deepEqual(gw.asks.slice(before), [{ internalPort: 41641, externalPort: 0, lifetime: 0 }], 'RFC 6886 delete: lifetime 0, port 0');
    assert.equal(pm.external, null);
  } finally {
    await pm.close();
    await gw.close();
  }
});

test('an epoch that goes back is a gateway restart: counted, mapping kept', async () => {
  const gw = await scriptedGateway();
  const pm = mapper(gw.port, []);
  try {
    pm.start();
    await waitFor('a mapping', 3000, () => pm.external !== null);
    gw.epoch = 3;
    await waitFor('the restart noticed', 3000, () => pm.status().counters.gatewayRestarts === 1);
    assert.equal(pm.external, '198.51.100.7:50000');
  } finally {
    await pm.close();
    await gw.close();
  }
});

test('a gateway that stops answering: retried until the lease ends, then the mapping is dropped', async () => {
  const gw = await scriptedGateway();
  const changes: Array<string | null> = [];
  const pm = mapper(gw.port, changes);
  try {
    pm.start();
    await waitFor('a mapping', 3000, () => pm.external !== null);
    gw.silent = true;
    await waitFor('the mapping dropped', 6000, () => pm.external === null);
    assert.deepEqual(changes, ['198.51.100.7:50000', null]);
    const st = pm.status();
    assert.ok(st.counters.failures >= 1);
    assert.match(st.lastError ?? '', /NAT-PMP/);
  } finally {
    await pm.close();
    await gw.close();
  }
});

test('a refused mapping leaves no mapping and says why', async () => {
  const gw = await scriptedGateway();
  gw.result = 2; // not authorized
  const changes: Array<string | null> = [];
  const pm = mapper(gw.port, changes);
  try {
    pm.start();
    await waitFor('the refusal', 3000, () => pm.status().lastError !== null);
    assert.equal(pm.external, null);
    assert.match(pm.status().lastError!, /refused \(result 2\)/);
    assert.deepEqual(pm.status().probe && { ...pm.status().probe, at: '' }, { gateway: '127.0.0.1', upnp: false, natPmp: true, pcp: false, at: '' });
    assert.deepEqual(changes, []);
  } finally {
    await pm.close();
    await gw.close();
  }
});
