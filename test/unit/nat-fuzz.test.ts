// Userspace NAT under bad input: 120k random and garbled packets (mutated TCP/UDP/ICMP over IPv4
// and IPv6, fragments, truncations, random bytes; checksums re-fixed half the time so garbage
// reaches the deep code paths) through handle(). Destinations are forced to the loopback so no
// packet can leave the machine. Nothing throws, every emitted packet is well-formed with valid
// checksums, tables stay within their limits, and the engine still works afterwards.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserspaceNat } from '../../agent/nat/userspace-nat.js';
import { ACK, FIN, PSH, RST, SYN, echoRequest, fold, parse, tcpPacket, udpPacket } from '../helpers/nat-packets.js';

const ITERATIONS = 120_000;
const cleanups: Array<() => void> = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

/** xorshift32: reproducible from the printed seed. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function fixChecksums(p: Buffer): void {
  if (p.length < 1) return;
  const v = p[0]! >> 4;
  let hl: number, proto: number, src: Buffer, dst: Buffer;
  if (v === 4 && p.length >= 20) {
    hl = (p[0]! & 15) * 4;
    if (hl < 20 || hl > p.length) return;
    p.writeUInt16BE(Math.min(p.length, 65535), 2);
    p.writeUInt16BE(0, 10);
    let s = 0;
    for (let i = 0; i < hl; i += 2) s += p.readUInt16BE(i);
    p.writeUInt16BE(fold(s), 10);
    proto = p[9]!;
    src = p.subarray(12, 16);
    dst = p.subarray(16, 20);
  } else if (v === 6 && p.length >= 40) {
    hl = 40;
    p.writeUInt16BE(p.length - 40, 4);
    proto = p[6]!;
    src = p.subarray(8, 24);
    dst = p.subarray(24, 40);
  } else {
    return;
  }
  const l4 = p.subarray(hl);
  const at = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 || proto === 58 ? 2 : -1;
  if (at < 0 || l4.length < at + 2) return;
  if (proto === 17 && l4.length >= 8) l4.writeUInt16BE(l4.length, 4);
  l4.writeUInt16BE(0, at);
  let s = 0;
  for (let i = 0; i < l4.length; i += 2) s += (l4[i]! << 8) | (i + 1 < l4.length ? l4[i + 1]! : 0);
  if (proto !== 1) {
    for (const a of [src, dst]) for (let i = 0; i < a.length; i += 2) s += a.readUInt16BE(i);
    s += proto + l4.length;
  }
  l4.writeUInt16BE(fold(s), at);
}

test(`${ITERATIONS} garbled packets: no crash, valid output, bounded tables, still working`, { timeout: 120_000 }, async () => {
  const limits = { tcpPerPeer: 64, tcpTotal: 256, udpPerPeer: 32, udpTotal: 128, icmpPerPeer: 16, icmpTotal: 64, maxPeers: 32, synBurst: 50 };
  let emitted = 0;
  let malformed = 0;
  let alive = 0;
  // A destination policy that refuses about a quarter of the packets: the refusal answers (RST,
  // ICMP prohibited) get garbled input too.
  let refuseNext = (): boolean => false;
  const nat = new UserspaceNat({
    allowLocalDestinations: true,
    destinationPolicy: { refuses: () => refuseNext() },
    limits,
    emit(packet) {
      emitted++;
      const p = parse(packet);
      if (!p.checksumsOk || packet.length > 65535 + 40) malformed++;
      if (p.dst === '100.64.0.2' && p.udp?.dport === 999 && p.udp.data.toString() === 'alive?') alive++;
    },
  });
  cleanups.push(() => nat.close());
  const tcpServer = net.createServer((s) => s.on('error', () => {}).end('hello'));
  tcpServer.listen(0, '127.0.0.1');
  await once(tcpServer, 'listening');
  cleanups.push(() => tcpServer.close());
  const udpServer = dgram.createSocket('udp4');
  udpServer.bind(0, '127.0.0.1');
  await once(udpServer, 'listening');
  cleanups.push(() => udpServer.close());
  udpServer.on('message', (m, r) => udpServer.send(m, r.port, r.address));
  const tport = (tcpServer.address() as net.AddressInfo).port;
  const uport = udpServer.address().port;

  nat.handle(udpPacket('100.64.0.2', 999, '127.0.0.1', uport, Buffer.from('alive?')));
  const seed = (Date.now() ^ 0x5eed) >>> 0;
  const rnd = prng(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  refuseNext = () => int(4) === 0;
  const srcs = ['100.64.0.2', '100.64.0.3', '100.100.1.1', 'fd7a:115c:a1e0::2'];
  const seeds = (src: string): Buffer[] => {
    const v6 = src.includes(':');
    const dst = v6 ? '::1' : '127.0.0.1';
    const sport = 1024 + int(40);
    const seq = int(2 ** 32);
    const base = { src, dst, sport, dport: tport, seq, ack: int(2 ** 32) };
    return [
      tcpPacket({ ...base, flags: SYN, mss: 1200 + int(300), wscale: int(16) }),
      tcpPacket({ ...base, flags: ACK | PSH, data: Buffer.alloc(int(1400), 0x61) }),
      tcpPacket({ ...base, flags: ACK | FIN }),
      tcpPacket({ ...base, flags: RST }),
      tcpPacket({ ...base, dport: 1 + int(1000), flags: SYN }),
      udpPacket(src, sport, dst, int(2) ? uport : 1 + int(65535), Buffer.alloc(int(1500))),
      echoRequest(src, dst, int(65536), int(65536), Buffer.alloc(int(100))),
    ];
  };
  for (let i = 0; i < ITERATIONS; i++) {
    const src = srcs[int(srcs.length)]!;
    let p = Buffer.from(seeds(src)[int(7)]!);
    const mutations = int(4);
    for (let m = 0; m < mutations; m++) {
      const kind = int(6);
      if (kind === 0 && p.length > 0) p[int(p.length)] = int(256);
      else if (kind === 1) p = p.subarray(0, int(p.length + 1));
      else if (kind === 2) p = Buffer.concat([p, Buffer.alloc(int(64), int(256))]);
      else if (kind === 3) p = Buffer.from(Array.from({ length: int(80) }, () => int(256)));
      else if (kind === 4 && p.length > 40) p[int(60)] = int(256); // header fields: flags, lengths, options
      else if (kind === 5 && p.length >= 20) p[6] = int(2) ? 0x20 : 0x00; // MF / offset bits
    }
    // Never let a packet leave the machine: destination back to the loopback.
    if (p.length >= 20 && p[0]! >> 4 === 4) p.set([127, 0, 0, 1], 16);
    if (p.length >= 40 && p[0]! >> 4 === 6) p.set([...Array<number>(15).fill(0), 1], 24);
    if (int(2)) fixChecksums(p);
    nat.handle(p);
    if (i % 5000 === 0) await sleep(0); // let sockets and timers run
  }
  await sleep(200);
  const st = nat.status();
  console.log(`seed ${seed}: emitted ${emitted}, drops ${JSON.stringify(st.drops)}`);
  assert.equal(st.drops['internal-error'], 0, 'no exception escaped a protocol handler');
  assert.equal(st.drops['emit-failed'], 0);
  assert.equal(malformed, 0, 'every emitted packet is well-formed');
  assert.ok(emitted > 0);
  assert.ok(st.tcp.flows <= limits.tcpTotal + 8192, `tcp flows bounded (${st.tcp.flows})`);
  assert.ok(st.tcp.flows - st.tcp.timeWait <= limits.tcpTotal);
  assert.ok(st.udp.mappings <= limits.udpTotal, `udp mappings bounded (${st.udp.mappings})`);
  assert.ok(st.icmp.pending <= limits.icmpTotal);
  assert.ok(st.peers <= limits.maxPeers);
  assert.ok(st.dropped > ITERATIONS / 4, 'most garbage was dropped and counted');
  for (const reason of ['malformed-ip', 'bad-ip-checksum', 'fragment', 'malformed-tcp', 'bad-tcp-checksum', 'bad-udp-checksum', 'refused-destination'] as const) {
    assert.ok(st.drops[reason] > 0, `${reason} counted`);
  }

  // Still working: the mapping opened before the storm carries a clean exchange.
  refuseNext = () => false;
  nat.handle(udpPacket('100.64.0.2', 999, '127.0.0.1', uport, Buffer.from('alive?')));
  await sleep(200);
  assert.equal(alive, 2, 'answered before and after the fuzzing');
});
