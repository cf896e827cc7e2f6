// runNetcheck over a real UDP socket against the relay's real STUN responders on loopback (no NAT
// in between: 127.0.0.1 and 127.0.0.2 are two addresses of lo, enough for RFC 5780) and a real
// relay server for latency: classification without NAT, relay latencies and the preferred relay,
// servers that never answer, garbage on the socket, the shared-socket filtering memory, abort.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { runNetcheck, type NetcheckRelay } from '../../agent/netcheck/netcheck.js';
import { openDgramNetcheckSocket, type DgramNetcheckSocket } from '../../agent/netcheck/dgram-socket.js';
import { formatNetcheck } from '../../agent/cli/netcheck-command.js';
import { createRelayClient, type RelayClient } from '../../agent/relay/relay-client.js';
import { encodeBindingSuccess } from '../../proto/stun/binding.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { createRelayCounters } from '../../relay/counters.js';
import { silentLogger } from '../../relay/log.js';
import { startRelayServer, type RelayServer } from '../../relay/server.js';
import { startStunResponder, type StunResponder } from '../../relay/stun-responder.js';

let rfc5780: StunResponder;
let plainA: StunResponder;
let plainB: StunResponder;
const rfcCounters = createRelayCounters().stun;
let relay: RelayServer;
let near: RelayClient;
let down: RelayClient;
const sockets: (DgramNetcheckSocket | Socket)[] = [];

const text = (e: { address: string; port: number }): string => `${e.address}:${e.port}`;

before(async () => {
  rfc5780 = await startStunResponder({ addresses: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.2', port: 0 }], counters: rfcCounters, logger: silentLogger() });
  plainA = await startStunResponder({ addresses: [{ address: '127.0.0.1', port: 0 }], counters: createRelayCounters().stun, logger: silentLogger() });
  plainB = await startStunResponder({ addresses: [{ address: '127.0.0.3', port: 0 }], counters: createRelayCounters().stun, logger: silentLogger() });
  relay = await startRelayServer({ listen: { address: '127.0.0.1', port: 0 }, logger: silentLogger() });
  near = createRelayClient({ url: relay.url, nodePrivateKey: generatePrivateKey(), relayKey: relay.publicKey });
  await near.ready();
  // A relay that is not there: the client never connects, its ping fails at once.
  down = createRelayClient({ url: 'ws://127.0.0.1:9/relay', nodePrivateKey: generatePrivateKey(), relayKey: relay.publicKey, reconnect: false });
});

after(async () => {
  for (const s of sockets) {
    if ('close' in s && 'stun' in s) await s.close();
    else (s as Socket).close();
  }
  await near.close();
  await down.close();
  await relay.close();
  await rfc5780.close();
  await plainA.close();
  await plainB.close();
});

async function openSocket(): Promise<DgramNetcheckSocket> {
  const s = await openDgramNetcheckSocket({ address: '127.0.0.1' });
  sockets.push(s);
  return s;
}

/** near: a real relay; down: its client cannot connect; slow: never answers (the timeout must). */
function latency(relay: NetcheckRelay, signal: AbortSignal): Promise<number> {
  if (relay.name === 'near') return near.ping({ signal });
  if (relay.name === 'down') return down.ping({ signal });
  return new Promise<number>(() => undefined);
}

function relayMap(): NetcheckRelay[] {
  return [
    { name: 'near', url: relay.url, stun: [text(rfc5780.addresses[0]!)] },
    { name: 'down', url: 'ws://127.0.0.1:9/relay', stun: [] },
    { name: 'slow', url: 'ws://127.0.0.1:10/relay', stun: [text(plainA.addresses[0]!)] },
  ];
}

let first: Awaited<ReturnType<typeof runNetcheck>>;
let firstSocket: DgramNetcheckSocket;

test('without NAT: endpoint-independent mapping and filtering, our own address, hairpinning, relay latencies and the preferred relay', async () => {
  firstSocket = await openSocket();
  const changesBefore = rfcCounters.changeRequests;
  const r = await runNetcheck({ socket: firstSocket, relays: relayMap(), relayLatency: latency, timings: { relayTimeoutMs: 800 } });
  first = r;
  const own = `127.0.0.1:${firstSocket.address.port}`;
  assert.equal(r.udp, true);
  assert.equal(r.ipv4, own);
  assert.equal(r.ipv6, null);
  assert.equal(r.behindNat, false, '127.0.0.1 is an address of this host');
  assert.equal(r.mapping, 'endpoint-independent');
  assert.equal(r.filtering, 'endpoint-independent');
  assert.equal(r.mappingVariesByDestIp, false);
  assert.equal(r.hairpinning, true, 'a packet to our own address comes back');
  const [primary, , , other] = rfc5780.addresses;
  assert.deepEqual(r.tests, {
    server: text(primary!),
    otherAddress: text(other!),
    mapping: { I: own, II: own, III: own },
    filtering: { II: true, III: true, measuredAt: r.tests!.filtering.measuredAt, fromCache: false },
  });
  assert.ok(Date.parse(r.tests!.filtering.measuredAt!) >= Date.parse(r.startedAt));
  assert.equal(rfcCounters.changeRequests - changesBefore, 2, 'one CHANGE-REQUEST per filtering test');

  assert.equal(r.preferredRelay, 'near');
  const [n, d, s] = r.relays;
  assert.equal(n!.name, 'near');
  assert.ok(typeof n!.latencyMs === 'number' && n!.latencyMs > 0 && n!.latencyMs < 1000, JSON.stringify(n));
  assert.equal(d!.latencyMs, null);
  assert.match(d!.error!, /not connected/);
  assert.deepEqual(s, { name: 'slow', url: 'ws://127.0.0.1:10/relay', latencyMs: null, error: 'no answer in time' });

  assert.equal(r.stun.length, 2);
  assert.deepEqual({ ...r.stun[0], rttMs: 0 }, { server: text(primary!), relays: ['near'], rttMs: 0, mapped: own, otherAddress: text(other!) });
  assert.deepEqual({ ...r.stun[1], rttMs: 0 }, { server: text(plainA.addresses[0]!), relays: ['slow'], rttMs: 0, mapped: own, otherAddress: null });
  assert.ok(r.stun.every((x) => x.rttMs! >= 0 && x.rttMs! < 1000));
  assert.ok(r.durationMs < 3000, `took ${r.durationMs} ms`);
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r, 'plain JSON');

  const human = formatNetcheck(r);
  assert.match(human, /^ {2}\* UDP: +true$/m);
  assert.match(human, new RegExp(`^ {2}\\* IPv4: +${own.replace(/\./g, '\\.')} \\(no NAT: a local address\\)$`, 'm'));
  assert.match(human, /^ {2}\* Mapping: +endpoint-independent$/m);
  assert.match(human, /^ {2}\* Filtering: +endpoint-independent$/m);
  assert.match(human, /^ {2}\* Hairpinning: +true$/m);
  assert.match(human, /^ {6}- near +\d+(\.\d)? ms {2}\(preferred\)$/m);
  assert.match(human, /^ {6}- slow +error: no answer in time$/m);
});

test('a second run on the same socket reuses the clean filtering result instead of re-testing a NAT it has opened', async () => {
  const changesBefore = rfcCounters.changeRequests;
  const r = await runNetcheck({ socket: firstSocket, relays: relayMap().slice(0, 1), relayLatency: latency });
  assert.equal(rfcCounters.changeRequests, changesBefore, 'no CHANGE-REQUEST sent: the other address was contacted by run 1');
  assert.equal(r.filtering, 'endpoint-independent');
  assert.deepEqual(r.tests!.filtering, { ...first.tests!.filtering, fromCache: true });
  assert.equal(r.mapping, 'endpoint-independent', 'mapping is measured every time');
  assert.match(formatNetcheck(r), /^ {2}\* Filtering: +endpoint-independent \(measured \d+ s ago\)$/m);
});

test('a server list that contacts the other address before the filtering test: filtering unknown, with the reason', async () => {
  const sock = await openSocket();
  const [primary, , , other] = rfc5780.addresses;
  const r = await runNetcheck({
    socket: sock, relays: [{ name: 'near', url: relay.url, stun: [text(primary!), text(other!)] }], relayLatency: latency,
  });
  assert.equal(r.mapping, 'endpoint-independent');
  assert.equal(r.filtering, null);
  assert.equal(r.tests!.filtering.fromCache, false);
  assert.match(r.tests!.filtering.skipped!, /sent to the other address/);
});

test('plain STUN servers on two IPs: mapping from comparing them, filtering unknown (no RFC 5780)', async () => {
  const sock = await openSocket();
  const r = await runNetcheck({
    socket: sock,
    relays: [{ name: 'a', url: 'ws://x/relay', stun: [text(plainA.addresses[0]!)] }, { name: 'b', url: 'ws://y/relay', stun: [text(plainB.addresses[0]!)] }],
    relayLatency: async () => { throw new Error('no relay here'); },
  });
  assert.equal(r.udp, true);
  assert.equal(r.mapping, 'endpoint-independent');
  assert.equal(r.mappingVariesByDestIp, false);
  assert.equal(r.filtering, null);
  assert.equal(r.tests, null);
  assert.equal(r.preferredRelay, null);
  assert.deepEqual(r.relays.map((x) => x.error), ['no relay here', 'no relay here']);
  assert.match(formatNetcheck(r), /Filtering: +unknown \(no RFC 5780 STUN server\)/);
});

test('no STUN answers: UDP false and every behaviour unknown; unusable server entries are reported', async () => {
  const silent = createSocket('udp4');
  sockets.push(silent);
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  const sock = await openSocket();
  const t0 = performance.now();
  const r = await runNetcheck({
    socket: sock,
    relays: [{ name: 'x', url: 'ws://x/relay', stun: [`127.0.0.1:${silent.address().port}`, 'not a server', '127.0.0.1:0'] }],
    relayLatency: async () => 5,
    timings: { stunTimeoutMs: 600 },
  });
  assert.ok(performance.now() - t0 < 2000);
  assert.equal(r.udp, false);
  for (const k of ['ipv4', 'ipv6', 'behindNat', 'mapping', 'mappingVariesByDestIp', 'filtering', 'hairpinning', 'tests'] as const) assert.equal(r[k], null, k);
  assert.equal(r.preferredRelay, 'x', 'the relay still answers over TCP');
  assert.match(r.stun[0]!.error!, /no STUN answer from 127\.0\.0\.1:\d+ within 600 ms/);
  assert.match(r.stun[1]!.error!, /bad STUN server "not a server"/);
  assert.match(r.stun[2]!.error!, /bad port/);
  assert.match(formatNetcheck(r), /UDP: +false/);
});

test('garbage arriving on the socket during a run is ignored and counted; the classification is unaffected', async () => {
  const sock = await openSocket();
  const noise = createSocket('udp4');
  sockets.push(noise);
  let sent = 0;
  const burst = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      let b: Uint8Array = randomBytes(1 + ((sent * 31) % 300));
      if (sent % 3 === 1) {
        // STUN header and cookie, then an attribute running past the end.
        b = Buffer.concat([Buffer.from([0x01, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42]), randomBytes(12), Buffer.from([0x00, 0x20, 0x01, 0x00, 1, 2, 3, 4])]);
      } else if (sent % 3 === 2) {
        // A well-formed success response to a transaction nobody started.
        b = encodeBindingSuccess({ transactionId: randomBytes(12), mapped: { address: '192.0.2.66', port: 6666 } });
      }
      sent++;
      await new Promise<void>((r) => noise.send(b, sock.address.port, '127.0.0.1', () => r()));
    }
  };
  await burst(150);
  // And more while the run is in flight.
  const blast = setInterval(() => { void burst(10); }, 1);
  try {
    const r = await runNetcheck({ socket: sock, relays: relayMap().slice(0, 1), relayLatency: latency });
    assert.equal(r.ipv4, `127.0.0.1:${sock.address.port}`);
    assert.equal(r.mapping, 'endpoint-independent');
    assert.equal(r.filtering, 'endpoint-independent');
    assert.equal(r.hairpinning, true);
  } finally {
    clearInterval(blast);
  }
  assert.ok(sent > 100, `sent ${sent}`);
  assert.ok(sock.stats.ignored > 0, 'non-STUN junk counted');
  assert.ok(sock.stun.stats.malformed > 0, 'broken STUN counted');
  assert.ok(sock.stun.stats.unmatched > 0, 'answers to nobody counted');
});

test('aborting a run rejects it with the reason and leaves no transaction behind', async () => {
  const silent = createSocket('udp4');
  sockets.push(silent);
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  const sock = await openSocket();
  const ac = new AbortController();
  const p = runNetcheck({ socket: sock, relays: [{ name: 'x', url: 'ws://x/relay', stun: [`127.0.0.1:${silent.address().port}`] }], relayLatency: latency, signal: ac.signal });
  setTimeout(() => ac.abort(new Error('user gave up')), 100);
  await assert.rejects(p, /user gave up/);
  assert.equal(sock.stun.inFlight, 0);
});
