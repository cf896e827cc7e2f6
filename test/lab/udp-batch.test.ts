// Batched UDP socket (native addon, recvmmsg/sendmmsg): batches cross loopback intact with the
// right source addresses and ports, counters add up, errors are counted and one line.
// Traffic only on 127.0.0.1 and ::1.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { BatchUdpSocket, DEFAULT_SOCKET_BUFFER, UdpBindError, type BatchUdpSocketOptions } from '../../agent/tun/udp-socket.js';
import { PacketSlab } from '../../agent/tun/packet-slab.js';
import {
  PACKED_ADDR_SIZE, decodePackedAddr, encodePackedAddr, formatEndpoint, packedAddrEquals, type Endpoint,
} from '../../agent/tun/packed-addr.js';

const sockets: BatchUdpSocket[] = [];
after(() => { for (const s of sockets) s.close(); });

function open(options: BatchUdpSocketOptions): BatchUdpSocket {
  const s = BatchUdpSocket.open(options);
  sockets.push(s);
  return s;
}

interface Received { payload: Buffer; from: string }

/** Collects copies of datagrams until `want` arrived; records each batch size. */
function collect(sock: BatchUdpSocket, want: number, timeoutMs = 5000) {
  const got: Received[] = [];
  const batches: number[] = [];
  return new Promise<{ got: Received[]; batches: number[] }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${got.length}/${want} datagrams arrived`)), timeoutMs);
    sock.onPackets = (count, rx) => {
      batches.push(count);
      for (let i = 0; i < count; i++) {
        got.push({ payload: Buffer.from(rx.packet(i)), from: formatEndpoint(decodePackedAddr(rx.addrs, i * PACKED_ADDR_SIZE)) });
      }
      if (got.length >= want) { clearTimeout(timer); sock.onPackets = () => {}; resolve({ got, batches }); }
    };
  });
}

/** A transmit slab holding `payloads`, all addressed to `to`. */
function txBatch(payloads: Buffer[], to: Endpoint): PacketSlab {
  const slab = new PacketSlab({ slots: payloads.length, packetSize: 2048, headroom: 16 });
  const dst = encodePackedAddr(to);
  payloads.forEach((p, i) => {
    p.copy(slab.buffer, slab.offsets[i]);
    slab.lengths[i] = p.length;
    slab.addrs.set(dst, i * PACKED_ADDR_SIZE);
  });
  return slab;
}

function send(from: BatchUdpSocket, slab: PacketSlab, count = slab.slots): number {
  return from.sendBatch(slab.buffer, slab.offsets, slab.lengths, slab.addrs, count);
}

const sum = (xs: Buffer[]) => xs.reduce((n, x) => n + x.length, 0);

/** 64 datagrams of sizes from 0 to the receiver's maximum. */
function variedPayloads(max: number): Buffer[] {
  return Array.from({ length: 64 }, (_, i) => randomBytes(i === 0 ? 0 : i === 63 ? max : (i * 97) % 1400 + 1));
}

/** No GSO, no GRO: datagram i is received straight into slot i (the path without offloads). */
const PLAIN = { gso: false, gro: false } as const;

async function exchange(host: string, offloads: { gso?: boolean; gro?: boolean } = {}) {
  const a = open({ address: host, ...offloads });
  const b = open({ address: host, ...offloads });
  const payloads = variedPayloads(b.rx.packetSize);
  const total = sum(payloads);

  b.pause();
  assert.equal(send(a, txBatch(payloads, { address: host, port: b.port })), 64);
  await sleep(100);
  const atB = collect(b, 64);
  b.resume();
  const { got, batches } = await atB;
  assert.deepEqual(batches, [64], 'one batch of 64');
  assert.deepEqual(got.map((g) => g.payload), payloads);
  const aName = formatEndpoint({ address: host, port: a.port });
  assert.ok(got.every((g) => g.from === aName));

  // Echo in place: the receive slab's lengths and source addresses are the send batch.
  const atA = collect(a, 64);
  b.onPackets = (count, rx) => { b.sendBatch(rx.buffer, rx.offsets, rx.lengths, rx.addrs, count); };
  assert.equal(send(a, txBatch(payloads, { address: host, port: b.port })), 64);
  const back = await atA;
  assert.deepEqual(back.got.map((g) => g.payload), payloads);
  const bName = formatEndpoint({ address: host, port: b.port });
  assert.ok(back.got.every((g) => g.from === bName));

  for (const s of [a, b]) {
    const c = s.counters();
    assert.deepEqual([c.txPackets, c.txBytes, c.rxPackets, c.rxBytes], s === a ? [128, 2 * total, 64, total] : [64, total, 128, 2 * total]);
    assert.deepEqual([c.rxDrops, c.rxErrors, c.txDrops, c.txErrors, c.lastError], [0, 0, 0, 0, null]);
  }
  assert.equal(b.counters().rxBatches >= 2, true);
  return { a, b };
}

test('two sockets on 127.0.0.1 exchange a batch of 64 datagrams of various sizes', async () => {
  const { a, b } = await exchange('127.0.0.1');
  assert.deepEqual(a.localAddress(), { family: 4, address: '127.0.0.1', port: a.port });
  assert.equal(b.family, 4);
  // The socket buffers were raised (the kernel reports twice the size asked for).
  const ss = await new Promise<string>((res, rej) => execFile('ss', ['-u', '-a', '-n', '-m', `sport = :${a.port}`],
    (e, out) => (e ? rej(e) : res(out))));
  assert.match(ss, new RegExp(`rb${2 * DEFAULT_SOCKET_BUFFER}\\b`));
  assert.match(ss, new RegExp(`tb${2 * DEFAULT_SOCKET_BUFFER}\\b`));
});

test('the same exchange without GSO/GRO, each datagram received straight into its slot', async () => {
  const { a, b } = await exchange('127.0.0.1', PLAIN);
  assert.deepEqual(b.offloads, { gso: false, gro: false });
  assert.deepEqual([a.counters().txGso, b.counters().rxGro], [0, 0]);
});

test('two sockets on ::1 exchange a batch of 64 datagrams of various sizes', async () => {
  const { a, b } = await exchange('::1');
  assert.deepEqual(a.localAddress(), { family: 6, address: '::1', port: a.port });
  assert.equal(b.family, 6);
  assert.equal(b.dualStack, false);
});

test('a dual-stack socket sees IPv4 senders as family 4 and IPv6 senders as family 6, and replies to both', async () => {
  const dual = open({});
  const v4 = open({ address: '127.0.0.1' });
  const v6 = open({ address: '::1' });
  assert.equal(dual.family, 6);
  assert.equal(dual.dualStack, true);
  assert.equal(open({ address: '::' }).dualStack, true);
  assert.equal(open({ address: '::', family: 6 }).dualStack, false);
  const atDual = collect(dual, 2);
  assert.equal(v4.sendTo(Buffer.from('from v4'), { address: '127.0.0.1', port: dual.port }), true);
  await sleep(50);
  assert.equal(v6.sendTo(Buffer.from('from v6'), { address: '::1', port: dual.port }), true);
  const { got } = await atDual;
  assert.deepEqual(got.map((g) => [g.payload.toString(), g.from]), [
    ['from v4', `127.0.0.1:${v4.port}`],
    ['from v6', `[::1]:${v6.port}`],
  ]);
  // An IPv4-mapped address given by a caller is the same endpoint as the plain IPv4 one.
  assert.ok(packedAddrEquals(encodePackedAddr({ address: '::ffff:127.0.0.1', port: 9 }), 0,
    encodePackedAddr({ address: '127.0.0.1', port: 9 }), 0));

  const atV4 = collect(v4, 1);
  const atV6 = collect(v6, 1);
  const replies = txBatch([Buffer.from('to v4'), Buffer.from('to v6')], { address: '127.0.0.1', port: v4.port });
  encodePackedAddr({ address: '::1', port: v6.port }, replies.addrs, PACKED_ADDR_SIZE);
  assert.equal(send(dual, replies), 2);
  assert.deepEqual((await atV4).got.map((g) => [g.payload.toString(), g.from]), [['to v4', `127.0.0.1:${dual.port}`]]);
  assert.deepEqual((await atV6).got.map((g) => [g.payload.toString(), g.from]), [['to v6', `[::1]:${dual.port}`]]);
});

test('200 datagrams sent in one call arrive over several batches, none lost, in order', async () => {
  const a = open({ address: '127.0.0.1' });
  const b = open({ address: '127.0.0.1', batch: 32 });
  const payloads = Array.from({ length: 200 }, (_, i) => Buffer.from(`datagram ${i} `.padEnd(100 + i, '.')));
  const arrived = collect(b, 200);
  assert.equal(send(a, txBatch(payloads, { address: '127.0.0.1', port: b.port })), 200);
  const { got, batches } = await arrived;
  assert.deepEqual(got.map((g) => g.payload), payloads);
  assert.ok(batches.length >= 7 && batches.every((n) => n >= 1 && n <= 32), `batches ${batches}`);
  assert.equal(a.counters().txPackets, 200);
  assert.equal(b.counters().rxBatches, batches.length);
});

for (const [mode, offloads] of [['with GRO', {}], ['without offloads', PLAIN]] as const) {
  test(`datagrams larger than a slot are dropped and counted; the rest of the batch is intact (${mode})`, async () => {
    const a = open({ address: '127.0.0.1', ...offloads });
    const b = open({ address: '127.0.0.1', maxDatagram: 512, headroom: 16, ...offloads });
    const sizes = [100, 600, 200, 1000, 300, 512];
    const payloads = sizes.map((n) => randomBytes(n));
    b.pause();
    assert.equal(send(a, txBatch(payloads, { address: '127.0.0.1', port: b.port })), sizes.length);
    await sleep(100);
    const arrived = collect(b, 4);
    b.resume();
    const { got, batches } = await arrived;
    assert.deepEqual(batches, [4]);
    assert.deepEqual(got.map((g) => g.payload), [payloads[0], payloads[2], payloads[4], payloads[5]]);
    assert.ok(got.every((g) => g.from === `127.0.0.1:${a.port}`));
    const c = b.counters();
    assert.deepEqual([c.rxPackets, c.rxDrops, c.lastError], [4, 2, 'EMSGSIZE']);
  });
}

test('a GRO datagram larger than the batch is split over several batches; pause, resume and close mid-datagram', async () => {
  const a = open({ address: '127.0.0.1' });
  const mk = () => open({ address: '127.0.0.1', batch: 8 });
  const payloads = Array.from({ length: 64 }, (_, i) => Buffer.alloc(300, i));
  const sendAll = (to: BatchUdpSocket) => send(a, txBatch(payloads, { address: '127.0.0.1', port: to.port }));

  // 64 equal datagrams leave as one GSO message and arrive as one GRO datagram: 8 batches of 8.
  const b = mk();
  assert.deepEqual(b.offloads, { gso: true, gro: true });
  const all = collect(b, 64);
  assert.equal(sendAll(b), 64);
  const { got, batches } = await all;
  assert.deepEqual(got.map((g) => g.payload), payloads);
  assert.deepEqual(batches, [8, 8, 8, 8, 8, 8, 8, 8]);
  assert.deepEqual([a.counters().txGso, b.counters().rxGro, b.counters().rxBatches], [64, 64, 8]);

  // Paused after the first batch: the rest waits in the addon and comes after resume().
  const c = mk();
  const seen: number[] = [];
  c.onPackets = (count, rx) => { for (let i = 0; i < count; i++) seen.push(rx.packet(i)[0]!); if (seen.length === 8) c.pause(); };
  sendAll(c);
  await sleep(150);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7]);
  c.resume();
  for (let i = 0; i < 50 && seen.length < 64; i++) await sleep(10);
  assert.deepEqual(seen, [...Array(64).keys()]);

  // Closed during the first batch: nothing more is delivered.
  const d = mk();
  let calls = 0;
  d.onPackets = () => { calls++; d.close(); };
  sendAll(d);
  await sleep(150);
  assert.equal(calls, 1);
});

test('failed sends are counted, never thrown: wrong family, malformed address', async () => {
  const a = open({ address: '127.0.0.1' });
  const b = open({ address: '127.0.0.1' });
  assert.equal(a.sendTo(Buffer.from('x'), { address: '::1', port: b.port }), false);
  assert.equal(a.counters().txErrors, 1);
  assert.equal(a.counters().lastError, 'EAFNOSUPPORT');

  const arrived = collect(b, 2);
  const slab = txBatch([Buffer.from('one'), Buffer.from('bad'), Buffer.from('three')], { address: '127.0.0.1', port: b.port });
  slab.addrs[PACKED_ADDR_SIZE] = 0;  // packet 1: family 0
  assert.equal(send(a, slab), 2);
  assert.deepEqual((await arrived).got.map((g) => g.payload.toString()), ['one', 'three']);
  const c = a.counters();
  assert.deepEqual([c.txPackets, c.txBytes, c.txErrors], [2, 8, 2]);

  assert.throws(() => a.sendBatch(slab.buffer, new Uint32Array([slab.buffer.length]), new Uint32Array([1]), slab.addrs, 1),
    (e: Error & { code?: string }) => e.code === 'ERR_OUT_OF_RANGE');
  assert.throws(() => send(a, slab, 4), (e: Error & { code?: string }) => e.code === 'ERR_OUT_OF_RANGE');
  assert.equal(a.counters().txPackets, 2, 'nothing sent by the rejected calls');
});

test('bind errors are one clear line with an errno code', () => {
  const a = open({ address: '127.0.0.1' });
  assert.throws(() => open({ address: '127.0.0.1', port: a.port }), (e: Error) =>
    e instanceof UdpBindError && e.code === 'EADDRINUSE' &&
    e.message === `cannot bind UDP socket to 127.0.0.1:${a.port}: address already in use`);
  // 198.18.0.0/15 is not configured on this host: binding it fails, nothing is sent.
  assert.throws(() => open({ address: '198.18.255.254', port: 0 }), (e: Error) =>
    e instanceof UdpBindError && e.code === 'EADDRNOTAVAIL' &&
    e.message === 'cannot bind UDP socket to 198.18.255.254:0: address not available on this host');
});

test('close() is idempotent, stops delivery mid-drain, later sends throw, and frees the port', async () => {
  const a = open({ address: '127.0.0.1' });
  const b = open({ address: '127.0.0.1', batch: 2 });
  const port = b.port;
  b.pause();
  send(a, txBatch(Array.from({ length: 10 }, (_, i) => Buffer.from(`d${i}`)), { address: '127.0.0.1', port }));
  await sleep(100);
  let calls = 0;
  b.onPackets = () => { calls++; b.close(); };
  b.resume();
  await sleep(200);
  assert.equal(calls, 1);
  assert.equal(b.closed, true);
  b.close();
  assert.throws(() => b.send(Buffer.from('x'), encodePackedAddr({ address: '127.0.0.1', port: a.port })),
    (e: Error & { code?: string }) => e.code === 'ERR_CLOSED');
  const again = open({ address: '127.0.0.1', port });
  assert.equal(again.port, port);
});

test('equal-sized runs to one destination leave as UDP GSO messages and arrive as separate datagrams', async () => {
  const dual = open({});
  const v4 = open({ address: '127.0.0.1', batch: 128 });
  const v6 = open({ address: '::1', batch: 128 });
  const to4 = { address: '127.0.0.1', port: v4.port };
  const to6 = { address: '::1', port: v6.port };
  // Runs: 20x1000 + 1x500 to v4 (one GSO message), 30x1000 + 1x10 to v6 (one), 1x700 to v4
  // (plain), 5x1000 to v4 (one).
  const plan: [Endpoint, number, number][] = [[to4, 20, 1000], [to4, 1, 500], [to6, 30, 1000], [to6, 1, 10], [to4, 1, 700], [to4, 5, 1000]];
  const payloads: Buffer[] = [];
  const dests: Endpoint[] = [];
  for (const [to, n, size] of plan) for (let k = 0; k < n; k++) { payloads.push(randomBytes(size)); dests.push(to); }
  const slab = txBatch(payloads, to4);
  dests.forEach((d, i) => encodePackedAddr(d, slab.addrs, i * PACKED_ADDR_SIZE));
  const at4 = collect(v4, 27);
  const at6 = collect(v6, 31);
  assert.equal(send(dual, slab), 58);
  assert.deepEqual((await at4).got.map((g) => g.payload), payloads.filter((_, i) => dests[i] === to4));
  assert.deepEqual((await at6).got.map((g) => g.payload), payloads.filter((_, i) => dests[i] === to6));
  let c = dual.counters();
  assert.deepEqual([c.txPackets, c.txBytes, c.txGso, c.txErrors], [58, sum(payloads), 57, 0]);

  // 64 x 1200 bytes exceed one GSO message (64 KiB): split in two, still all delivered.
  const big = Array.from({ length: 64 }, () => randomBytes(1200));
  const again = collect(v4, 64);
  assert.equal(send(dual, txBatch(big, to4)), 64);
  assert.deepEqual((await again).got.map((g) => g.payload), big);
  c = dual.counters();
  assert.deepEqual([c.txPackets, c.txGso], [122, 121]);
});

/** Runs in a fresh network namespace: a 1000-byte MTU towards 127.0.0.2 makes GSO fail. */
const GSO_FALLBACK_SCRIPT = `
const { BatchUdpSocket } = await import(process.argv[1]);
const { PacketSlab } = await import(process.argv[2]);
const { encodePackedAddr } = await import(process.argv[3]);
const rx = BatchUdpSocket.open({ address: '127.0.0.2' });
const tx = BatchUdpSocket.open({ address: '127.0.0.1' });
const s = new PacketSlab({ slots: 10, packetSize: 1200 });
const to = encodePackedAddr({ address: '127.0.0.2', port: rx.port });
for (let i = 0; i < 10; i++) { s.lengths[i] = 1200; s.buffer.fill(i, s.offsets[i], s.offsets[i] + 1200); s.addrs.set(to, i * 20); }
const got = [];
rx.onPackets = (n, r) => { for (let i = 0; i < n; i++) got.push([r.packet(i)[0], r.lengths[i]]); };
const sent = tx.sendBatch(s.buffer, s.offsets, s.lengths, s.addrs, 10);
setTimeout(() => { console.log(JSON.stringify({ sent, got, tx: tx.counters() })); rx.close(); tx.close(); }, 300);
`;

test('a GSO message the kernel refuses (segments above the path MTU) is re-sent packet by packet', async () => {
  const mod = (f: string) => new URL(`../../agent/tun/${f}`, import.meta.url).href;
  const out = await new Promise<string>((resolve, reject) => execFile('unshare', ['--net', 'sh', '-c',
    'ip link set lo up && ip route replace local 127.0.0.2 dev lo table local mtu lock 1000 && exec "$@"', 'sh',
    process.execPath, '--input-type=module', '-e', GSO_FALLBACK_SCRIPT, mod('udp-socket.js'), mod('packet-slab.js'), mod('packed-addr.js')],
  { timeout: 10_000 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message} ${stderr}`)) : resolve(stdout))));
  const r = JSON.parse(out) as { sent: number; got: [number, number][]; tx: Record<string, number> };
  assert.equal(r.sent, 10);
  assert.deepEqual(r.got, Array.from({ length: 10 }, (_, i) => [i, 1200]));
  assert.deepEqual([r.tx.txPackets, r.tx.txBytes, r.tx.txGso, r.tx.txErrors], [10, 12000, 0, 0]);
});

test('an exception thrown by onPackets surfaces as an uncaught exception, like any callback', async () => {
  const mod = new URL('../../agent/tun/udp-socket.js', import.meta.url).href;
  const script = `
    const { BatchUdpSocket } = await import(process.argv[1]);
    const a = BatchUdpSocket.open({ address: '127.0.0.1' });
    const b = BatchUdpSocket.open({ address: '127.0.0.1' });
    process.on('uncaughtException', (err) => {
      queueMicrotask(() => { console.log('caught ' + err.message); a.close(); b.close(); });
    });
    b.onPackets = (count) => {
      Promise.resolve().then(() => console.log('microtask after batch of ' + count));
      throw new Error('handler failed');
    };
    a.sendTo(Buffer.from('x'), { address: '127.0.0.1', port: b.port });`;
  const out = await new Promise<string>((resolve, reject) => execFile(process.execPath, ['--input-type=module', '-e', script, mod],
    { timeout: 10_000 }, (e, stdout, stderr) => (e ? reject(new Error(`${e.message} ${stderr}`)) : resolve(stdout))));
  assert.deepEqual(out.trim().split('\n').sort(), ['caught handler failed', 'microtask after batch of 1']);
});

test('packed address codec: canonical forms, round trips, bad input', () => {
  const cases: [Endpoint, string, number][] = [
    [{ address: '100.64.1.2', port: 41641 }, '04 00 a2 a9 64 40 01 02 00 00 00 00 00 00 00 00 00 00 00 00', 4],
    [{ address: '::1', port: 1 }, '06 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01', 6],
    [{ address: '::ffff:198.18.0.1', port: 65535 }, '04 00 ff ff c6 12 00 01 00 00 00 00 00 00 00 00 00 00 00 00', 4],
  ];
  for (const [ep, hex, family] of cases) {
    const packed = encodePackedAddr(ep);
    assert.equal(Buffer.from(packed).toString('hex').match(/../g)!.join(' '), hex);
    assert.equal(decodePackedAddr(packed).family, family);
  }
  for (const address of ['fd7a:115c:a1e0::1', '2001:db8::', '1:0:0:1::1', '1:2:3:4:5:6:7:8', '::', 'fe80::1:2']) {
    assert.deepEqual(decodePackedAddr(encodePackedAddr({ address, port: 7 })), { family: 6, address, port: 7 });
  }
  // Text comes back in RFC 5952 form: first longest zero run compressed, lower case.
  assert.equal(decodePackedAddr(encodePackedAddr({ address: '1:0:0:0:1:0:0:0', port: 1 })).address, '1::1:0:0:0');
  assert.equal(decodePackedAddr(encodePackedAddr({ address: 'FD7A:0:0:1:0:0:0:1', port: 1 })).address, 'fd7a:0:0:1::1');
  const out = new Uint8Array(3 * PACKED_ADDR_SIZE);
  encodePackedAddr({ address: '127.0.0.1', port: 5 }, out, 2 * PACKED_ADDR_SIZE);
  assert.deepEqual(decodePackedAddr(out, 2 * PACKED_ADDR_SIZE), { family: 4, address: '127.0.0.1', port: 5 });
  assert.throws(() => encodePackedAddr({ address: 'example.com', port: 1 }), /not an IP address/);
  assert.throws(() => encodePackedAddr({ address: 'fe80::1%eth0', port: 1 }), /scoped/);
  assert.throws(() => encodePackedAddr({ address: '::1', port: 70000 }), /invalid port/);
  assert.throws(() => decodePackedAddr(new Uint8Array(PACKED_ADDR_SIZE)), /family 0/);
});
