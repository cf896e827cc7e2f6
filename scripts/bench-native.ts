// Micro benchmark: UDP packets/s over loopback with the native batch socket (sendmmsg +
// recvmmsg, one JS call per batch) against Node's dgram, in the same run and process.
// Usage: node dist/scripts/bench-native.js [--seconds N] [--sizes 64,1200]
// Prints a table and writes bench/results/native-udp.json.
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BatchUdpSocket } from '../agent/tun/udp-socket.js';
import { PacketSlab } from '../agent/tun/packet-slab.js';
import { PACKED_ADDR_SIZE, encodePackedAddr } from '../agent/tun/packed-addr.js';

const HOST = '127.0.0.1';
const BATCH = 64;
/** Datagrams allowed in flight: keeps both ends busy without overflowing the receive buffer. */
const WINDOW = 1024;
/** If nothing arrives for this long, the in-flight datagrams are taken as lost. */
const STALL_MS = 20;

type Impl = 'native' | 'native-gso' | 'native-plain' | 'dgram';
interface Result { impl: Impl; size: number; packets: number; seconds: number; pps: number; gbps: number; lost: number; meanBatch?: number }

/** Drives `sendBurst` to keep WINDOW datagrams in flight and counts arrivals for `seconds`. */
function runFlow(
  seconds: number, size: number, impl: Impl,
  sendBurst: () => number, onArrivals: (cb: (n: number) => void) => void,
): Promise<Result> {
  return new Promise((resolve) => {
    let sent = 0;
    let received = 0;
    let lost = 0;
    let running = true;
    const pump = () => {
      while (running && sent - received - lost < WINDOW - BATCH) sent += sendBurst();
    };
    onArrivals((n) => { received += n; pump(); });
    let lastReceived = -1;
    const stall = setInterval(() => {
      if (received === lastReceived) { lost = sent - received; pump(); }
      lastReceived = received;
    }, STALL_MS);
    const t0 = process.hrtime.bigint();
    const startCount = received;
    setTimeout(() => {
      running = false;
      clearInterval(stall);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const packets = received - startCount;
      const pps = packets / secs;
      resolve({ impl, size, packets, seconds: secs, pps, gbps: (pps * size * 8) / 1e9, lost });
    }, seconds * 1000);
    pump();
  });
}

/** native = GSO + GRO (the default), native-gso = GSO only, native-plain = no offloads. */
async function benchNative(seconds: number, size: number, impl: Impl = 'native'): Promise<Result> {
  const gso = impl !== 'native-plain';
  const gro = impl === 'native';
  const rx = BatchUdpSocket.open({ address: HOST, batch: BATCH, gso, gro });
  const tx = BatchUdpSocket.open({ address: HOST, gso, gro });
  const slab = new PacketSlab({ slots: BATCH, packetSize: size, headroom: 16 });
  const dst = encodePackedAddr({ address: HOST, port: rx.port });
  for (let i = 0; i < BATCH; i++) {
    slab.lengths[i] = size;
    slab.addrs.set(dst, i * PACKED_ADDR_SIZE);
    slab.buffer.fill(i, slab.offsets[i], slab.offsets[i]! + size);
  }
  const r = await runFlow(seconds, size, impl,
    () => tx.sendBatch(slab.buffer, slab.offsets, slab.lengths, slab.addrs, BATCH),
    (cb) => { rx.onPackets = (count) => cb(count); });
  const c = rx.counters();
  r.meanBatch = c.rxPackets / c.rxBatches;
  rx.close();
  tx.close();
  return r;
}

async function benchDgram(seconds: number, size: number): Promise<Result> {
  const rx = dgram.createSocket({ type: 'udp4', recvBufferSize: 7 << 20 });
  const tx = dgram.createSocket({ type: 'udp4', sendBufferSize: 7 << 20 });
  rx.bind(0, HOST);
  tx.bind(0, HOST);
  await Promise.all([once(rx, 'listening'), once(tx, 'listening')]);
  const port = rx.address().port;
  const payload = Buffer.alloc(size, 7);
  const r = await runFlow(seconds, size, 'dgram',
    () => { for (let i = 0; i < BATCH; i++) tx.send(payload, port, HOST); return BATCH; },
    (cb) => { rx.on('message', () => cb(1)); });
  rx.close();
  tx.close();
  return r;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '2' }, sizes: { type: 'string', default: '64,1200' } } });
  const seconds = Number(values.seconds);
  const sizes = values.sizes!.split(',').map(Number);
  const rows: { size: number; runs: Result[]; ratios: Record<string, number> }[] = [];
  await benchNative(0.3, 64);  // warm up JIT and caches
  await benchDgram(0.3, 64);
  for (const size of sizes) {
    const runs = [
      await benchDgram(seconds, size),
      await benchNative(seconds, size, 'native-plain'),
      await benchNative(seconds, size, 'native-gso'),
      await benchNative(seconds, size, 'native'),
    ];
    const dg = runs[0]!.pps;
    rows.push({ size, runs, ratios: Object.fromEntries(runs.map((r) => [r.impl, r.pps / dg])) });
  }
  const fmt = (n: number) => Math.round(n).toLocaleString('en-US').padStart(11);
  console.log(`UDP loopback ${HOST}, ${seconds}s per run, window ${WINDOW}, batch ${BATCH}, one process`);
  console.log('size(B)  implementation        pkt/s   vs dgram   Gbit/s  mean rx batch');
  for (const row of rows) {
    for (const r of row.runs) {
      const label = { dgram: 'node:dgram', 'native-plain': 'native mmsg', 'native-gso': 'native +GSO', native: 'native +GSO+GRO' }[r.impl];
      console.log(`${String(row.size).padStart(7)}  ${label.padEnd(16)} ${fmt(r.pps)}   ${(r.pps / row.runs[0]!.pps).toFixed(2).padStart(6)}x  ${r.gbps.toFixed(2).padStart(7)}  ${r.meanBatch === undefined ? '' : r.meanBatch.toFixed(1).padStart(13)}`);
    }
  }
  const out = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'results');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'native-udp.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, seconds, rows }, null, 2));
}

await main();
