// The Internet checksum (proto/ip/checksum.ts): RFC 1071's worked example, agreement with a
// plain reference on random input (also when summed in pieces), and pseudo-header checksums of
// real IPv4/IPv6 segments that verify to zero.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { finishChecksum, internetChecksum, pseudoHeaderSum, sumWords, transportChecksum } from '../../proto/ip/checksum.js';
import { tcpPacket, udpPacket } from '../helpers/nat-packets.js';

function reference(bytes: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < bytes.length; i += 2) {
    s += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
    s = (s & 0xffff) + (s >>> 16);
  }
  return ~s & 0xffff;
}

test('RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2', () => {
  const b = Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7);
  assert.equal(sumWords(b, 0, 8) % 0xffff, 0xddf2 % 0xffff);
  assert.equal(internetChecksum(b, 0, 8), ~0xddf2 & 0xffff);
  assert.equal(finishChecksum(0), 0xffff);
  assert.equal(finishChecksum(0x1fffe), 0); // 0xffff + 0xffff folds to 0xffff
});

test('matches a byte-by-byte reference on random data, whole or in even pieces', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), (bytes, cutSeed) => {
      const want = reference(bytes);
      assert.equal(internetChecksum(bytes, 0, bytes.length), want);
      const cut = bytes.length === 0 ? 0 : (cutSeed % bytes.length) & ~1;
      const split = finishChecksum(sumWords(bytes, cut, bytes.length, sumWords(bytes, 0, cut)));
      assert.equal(split, want);
    }),
    { numRuns: 500 },
  );
});

test('a message including its checksum verifies to zero', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 2, maxLength: 200 }), (bytes) => {
      const b = Uint8Array.from(bytes.length % 2 ? [...bytes, 0] : bytes);
      b[0] = 0;
      b[1] = 0;
      const c = internetChecksum(b, 0, b.length);
      b[0] = c >> 8;
      b[1] = c & 0xff;
      assert.equal(internetChecksum(b, 0, b.length), 0);
    }),
  );
});

test('TCP and UDP segments built elsewhere verify with the pseudo-header (IPv4 and IPv6)', () => {
  const data = Buffer.from('pseudo-header check, odd length!');
  for (const [src, dst] of [['100.64.0.2', '192.0.2.7'], ['fd7a:115c:a1e0::2', '2001:db8::7']] as const) {
    const v = src.includes(':') ? 6 : 4;
    const hl = v === 4 ? 20 : 40;
    const t = tcpPacket({ src, dst, sport: 40000, dport: 443, seq: 1, ack: 2, flags: 0x18, data });
    assert.equal(transportChecksum(t, 0, v, 6, hl, t.length - hl), 0);
    const u = udpPacket(src, 5353, dst, 53, data);
    assert.equal(transportChecksum(u, 0, v, 17, hl, u.length - hl), 0);
    u[u.length - 1]! ^= 1;
    assert.notEqual(transportChecksum(u, 0, v, 17, hl, u.length - hl), 0);
    assert.ok(pseudoHeaderSum(u, 0, v, 17, 8) > 17 + 8);
  }
});
