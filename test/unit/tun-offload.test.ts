// TUN offloads (agent/tun/src/tun_offload.c): super packets the kernel hands over are cut into
// MTU-sized packets with correct lengths, ids, sequence numbers, flags and checksums; decrypted
// TCP segments of one flow are glued back into one super packet (GRO) only when that is exact.
// Checked here on the addon's own code through its test hooks, against checksums computed in JS;
// the lab tests (wireguard-interop) move real TCP through it with the kernel on both sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { loadNative } from '../../agent/tun/native.js';

const native = loadNative();
const NEEDS_CSUM = 1;
const GSO = { tcp4: 1, tcp6: 4, udp: 5 } as const;

function sum(buf: Uint8Array, start = 0, end = buf.length, acc = 0): number {
  for (let i = start; i + 1 < end; i += 2) acc += (buf[i]! << 8) | buf[i + 1]!;
  if ((end - start) & 1) acc += buf[end - 1]! << 8;
  return acc;
}
const fold = (s: number): number => { while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000); return s; };
function pseudo(p: Uint8Array, proto: number, l4Len: number): number {
  const v4 = p[0]! >> 4 === 4;
  return sum(p, v4 ? 12 : 8, v4 ? 20 : 40) + proto + l4Len;
}
/** True if the transport checksum of IP packet p (transport at l4) verifies. */
function l4Valid(p: Uint8Array, l4: number, proto: number): boolean {
  return fold(sum(p, l4, p.length, pseudo(p, proto, p.length - l4))) === 0xffff;
}
const ipv4Valid = (p: Uint8Array) => fold(sum(p, 0, 20)) === 0xffff;
const be16 = (p: Uint8Array, o: number) => (p[o]! << 8) | p[o + 1]!;
const be32 = (p: Uint8Array, o: number) => ((p[o]! << 24) | (p[o + 1]! << 16) | (p[o + 2]! << 8) | p[o + 3]!) >>> 0;

interface Super { v6: boolean; udp: boolean; payload: Buffer; mss: number; seq: number; flags: number; id: number }

/** A super packet as the kernel hands it over: vnet header, then IP + TCP/UDP header + payload. */
function superPacket(s: Super): Buffer {
  const l4 = s.v6 ? 40 : 20;
  const th = s.udp ? 8 : 32; // TCP with 12 bytes of options (NOP, NOP, timestamps)
  const p = Buffer.alloc(l4 + th + s.payload.length);
  if (s.v6) {
    p[0] = 0x60;
    p.writeUInt16BE(p.length - 40, 4);
    p[6] = s.udp ? 17 : 6;
    p[7] = 64;
    Buffer.from('fd7a115ca1e000000000000000000001', 'hex').copy(p, 8);
    Buffer.from('fd7a115ca1e000000000000000000002', 'hex').copy(p, 24);
  } else {
    p[0] = 0x45;
    p.writeUInt16BE(p.length, 2);
    p.writeUInt16BE(s.id, 4);
    p[6] = 0x40;
    p[8] = 64;
    p[9] = s.udp ? 17 : 6;
    Buffer.from([100, 64, 0, 1, 100, 64, 0, 2]).copy(p, 12);
  }
  p.writeUInt16BE(40000, l4);
  p.writeUInt16BE(5201, l4 + 2);
  if (s.udp) {
    p.writeUInt16BE(p.length - l4, l4 + 4);
  } else {
    p.writeUInt32BE(s.seq, l4 + 4);
    p.writeUInt32BE(0x01020304, l4 + 8);
    p[l4 + 12] = (th / 4) << 4;
    p[l4 + 13] = s.flags;
    p.writeUInt16BE(502, l4 + 14);
    Buffer.from([1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]).copy(p, l4 + 20);
  }
  s.payload.copy(p, l4 + th);
  const v = Buffer.alloc(10);
  v[0] = NEEDS_CSUM;
  v[1] = s.udp ? GSO.udp : s.v6 ? GSO.tcp6 : GSO.tcp4;
  v.writeUInt16LE(l4 + th, 2);
  v.writeUInt16LE(s.mss, 4);
  v.writeUInt16LE(l4, 6);
  v.writeUInt16LE(s.udp ? 6 : 16, 8);
  return Buffer.concat([v, p]);
}

const superArb = fc.record({
  v6: fc.boolean(), udp: fc.boolean(),
  len: fc.integer({ min: 1, max: 60_000 }), mss: fc.integer({ min: 200, max: 1368 }),
  seq: fc.integer({ min: 0, max: 0xffffffff }), flags: fc.constantFrom(0x10, 0x18, 0x19, 0x90, 0x98), id: fc.integer({ min: 0, max: 0xffff }),
}).map((r) => ({ ...r, mss: Math.min(r.mss, 1420 - (r.v6 ? 40 : 20) - (r.udp ? 8 : 32)), payload: bytesOf(r.len, r.seq) }));

/** Deterministic bytes (xorshift32 from a seed): a failing case prints its numbers, not a 60 KB buffer. */
function bytesOf(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  let x = (seed | 1) >>> 0;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

test('a super packet is cut into MTU-sized packets with correct lengths, ids, sequence numbers, flags and checksums', () => {
  fc.assert(fc.property(superArb, (s) => {
    const segs = native.gsoSplit(superPacket(s), 1420);
    const l4 = s.v6 ? 40 : 20;
    const th = s.udp ? 8 : 32;
    assert.equal(segs.length, Math.ceil(s.payload.length / s.mss));
    let off = 0;
    segs.forEach((g, i) => {
      const last = i === segs.length - 1;
      const plen = g.length - l4 - th;
      assert.equal(plen, last ? s.payload.length - off : s.mss);
      assert.ok(g.length <= 1420);
      if (s.v6) assert.equal(be16(g, 4), g.length - 40);
      else {
        assert.equal(be16(g, 2), g.length);
        assert.equal(be16(g, 4), (s.id + i) & 0xffff, 'IPv4 ids count up');
        assert.ok(ipv4Valid(g), 'IPv4 header checksum');
      }
      assert.ok(l4Valid(g, l4, s.udp ? 17 : 6), `segment ${i}: transport checksum`);
      if (s.udp) assert.equal(be16(g, l4 + 4), g.length - l4);
      else {
        assert.equal(be32(g, l4 + 4), (s.seq + off) >>> 0, 'sequence numbers follow the payload');
        const flags = g[l4 + 13]!;
        assert.equal(flags & 0x09, last ? s.flags & 0x09 : 0, 'FIN and PSH only on the last');
        assert.equal(flags & 0x80, i === 0 ? s.flags & 0x80 : 0, 'CWR only on the first');
      }
      assert.deepEqual(Buffer.from(g.subarray(l4 + th)), s.payload.subarray(off, off + plen));
      off += plen;
    });
  }), { numRuns: 150 });
});

test('the segments of one TCP flow are glued back into the original super packet, with a partial checksum for the kernel', () => {
  // CWR and FIN segments are written alone (as wireguard-go does).
  fc.assert(fc.property(superArb.filter((s) => !s.udp && s.payload.length > s.mss && (s.flags & 0x81) === 0), (s) => {
    const segs = native.gsoSplit(superPacket(s), 1420);
    const writes = native.groWrites(segs);
    const l4 = s.v6 ? 40 : 20;
    const hl = l4 + 32;
    // At most 64 segments a write; everything in order.
    assert.equal(writes.length, Math.ceil(segs.length / 64));
    let off = 0;
    for (const w of writes) {
      const v = Buffer.from(w.subarray(0, 10));
      const p = w.subarray(10);
      const k = Math.ceil((p.length - hl) / s.mss);
      if (k > 1) {
        assert.equal(v[0], NEEDS_CSUM);
        assert.equal(v[1], s.v6 ? GSO.tcp6 : GSO.tcp4);
        assert.equal(v.readUInt16LE(2), hl);
        assert.equal(v.readUInt16LE(4), s.mss);
        assert.equal(v.readUInt16LE(6), l4);
        assert.equal(v.readUInt16LE(8), 16);
        assert.equal(fold(sum(p, l4 + 16, l4 + 18)), fold(pseudo(p, 6, p.length - l4)), 'the TCP field holds the pseudo-header sum');
      }
      if (s.v6) assert.equal(be16(p, 4), p.length - 40);
      else { assert.equal(be16(p, 2), p.length); assert.ok(ipv4Valid(p)); }
      assert.equal(be32(p, l4 + 4), (s.seq + off) >>> 0);
      const payload = Buffer.from(p.subarray(hl));
      assert.deepEqual(payload, s.payload.subarray(off, off + payload.length));
      off += payload.length;
    }
    assert.equal(off, s.payload.length);
  }), { numRuns: 100 });
});

test('GRO glues only what is exact: other flows, gaps, bad checksums, odd sizes and flags stay apart', () => {
  const base: Super = { v6: false, udp: false, payload: randomBytes(1000 * 6), mss: 1000, seq: 1000, flags: 0x10, id: 1 };
  const segs = native.gsoSplit(superPacket(base), 1420);
  const count = (packets: Uint8Array[]) => native.groWrites(packets).length;
  assert.equal(count(segs), 1, 'six in-order segments: one write');
  assert.equal(count([segs[0]!, segs[2]!, segs[3]!]), 2, 'a gap splits');
  assert.equal(count([segs[1]!, segs[0]!]), 2, 'out of order splits');
  const other = native.gsoSplit(superPacket({ ...base, v6: false, seq: 7000 }), 1420).map((g) => { const c = Buffer.from(g); c[23] = 99; return c; });
  assert.equal(count([segs[0]!, other[0]!, segs[1]!]), 3, 'another flow in between splits');
  const bad = Buffer.from(segs[1]!);
  bad[bad.length - 1] ^= 0xff;
  assert.equal(count([segs[0]!, bad, segs[2]!]), 3, 'a segment with a bad checksum is written alone, for the kernel to judge');
  const short = native.gsoSplit(superPacket({ ...base, payload: randomBytes(1500) }), 1420);
  assert.equal(count([short[1]!, segs[0]!]), 2, 'a short segment ends a run');
  const pushed = native.gsoSplit(superPacket({ ...base, flags: 0x18, payload: randomBytes(1000) }), 1420);
  assert.equal(count([pushed[0]!, segs[1]!]), 2, 'nothing follows a PSH');
  const syn = Buffer.from(segs[1]!);
  syn[33] = 0x12; // SYN|ACK: not glued (its checksum no longer verifies either)
  assert.equal(count([segs[0]!, syn]), 2);
  const udp = native.gsoSplit(superPacket({ ...base, udp: true }), 1420);
  assert.equal(count(udp), udp.length, 'UDP is never glued');
});

test('hostile input: random super packets and random decrypted packets never crash or overrun', () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 0, max: 2000 }), (bytes, cap) => {
    for (const g of native.gsoSplit(bytes, cap)) assert.ok(g.length <= cap);
  }), { numRuns: 3000 });
  // Valid super packets with one random byte changed (headers included).
  fc.assert(fc.property(superArb, fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 255 }), (s, at, value) => {
    const b = superPacket({ ...s, payload: s.payload.subarray(0, 5000) });
    b[at % b.length] = value;
    for (const g of native.gsoSplit(b, 1420)) assert.ok(g.length <= 1420);
  }), { numRuns: 1500 });
  fc.assert(fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 200 }), { maxLength: 40 }), (packets) => {
    const writes = native.groWrites(packets);
    assert.ok(writes.length >= 1 || packets.length === 0);
    for (const w of writes) assert.ok(w.length <= 10 + 65535);
  }), { numRuns: 2000 });
});
