// IP header accessors used on the data path: versions, addresses, the length WireGuard uses to
// strip padding, and junk detection — which never throws, it returns a negative problem code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  IpPacketProblem,
  addressEquals,
  describeIpPacketProblem,
  ipDstOffset,
  ipPacketLength,
  ipProtocol,
  ipSrcOffset,
  ipVersion,
  ipv4Dst,
  ipv4Src,
  isPlausibleIpPacket,
} from '../../proto/ip/packet.js';

/** A minimal IPv4 header (+ payload) at `off` inside a buffer with `pad` trailing zero bytes. */
function ipv4(opts: { off?: number; ihl?: number; payload?: number; pad?: number; total?: number } = {}): Uint8Array {
  const off = opts.off ?? 0;
  const ihl = opts.ihl ?? 5;
  const total = opts.total ?? ihl * 4 + (opts.payload ?? 8);
  const buf = new Uint8Array(off + Math.max(total, 20) + (opts.pad ?? 0));
  buf[off] = 0x40 | ihl;
  buf[off + 2] = total >> 8;
  buf[off + 3] = total & 0xff;
  buf[off + 8] = 64;
  buf[off + 9] = 17;
  buf.set([100, 64, 0, 1], off + 12);
  buf.set([100, 64, 0, 2], off + 16);
  return buf;
}

function ipv6(opts: { off?: number; payload?: number; pad?: number } = {}): Uint8Array {
  const off = opts.off ?? 0;
  const payload = opts.payload ?? 8;
  const buf = new Uint8Array(off + 40 + payload + (opts.pad ?? 0));
  buf[off] = 0x60;
  buf[off + 4] = payload >> 8;
  buf[off + 5] = payload & 0xff;
  buf[off + 6] = 58;
  buf[off + 8] = 0xfd;
  buf[off + 23] = 1;
  buf[off + 24] = 0xfd;
  buf[off + 39] = 2;
  return buf;
}

test('IPv4: version, addresses, protocol and total length (padding stripped)', () => {
  const off = 16; // as in a WireGuard transport message buffer
  const p = ipv4({ off, payload: 12, pad: 8 });
  assert.equal(ipVersion(p, off), 4);
  assert.equal(ipv4Src(p, off), 0x64400001);
  assert.equal(ipv4Dst(p, off), 0x64400002);
  assert.equal(ipProtocol(p, off), 17);
  assert.equal(ipPacketLength(p, off, p.length - off), 32);
  assert.equal(isPlausibleIpPacket(p, off, p.length - off), true);
  assert.equal(addressEquals(p, off + ipSrcOffset(4), Uint8Array.of(100, 64, 0, 1)), true);
  assert.equal(addressEquals(p, off + ipDstOffset(4), Uint8Array.of(100, 64, 0, 1)), false);
  const high = ipv4();
  high.set([255, 255, 255, 254], 12);
  assert.equal(ipv4Src(high, 0), 0xfffffffe, 'addresses read as unsigned');
  assert.equal(ipPacketLength(ipv4({ ihl: 15, payload: 0 }), 0, 60), 60, 'header with options, no payload');
});

test('IPv6: version, addresses, next header and total length', () => {
  const p = ipv6({ off: 3, payload: 100, pad: 12 });
  assert.equal(ipVersion(p, 3), 6);
  assert.equal(ipProtocol(p, 3), 58);
  assert.equal(ipPacketLength(p, 3, p.length - 3), 140);
  const src = new Uint8Array(16);
  src[0] = 0xfd;
  src[15] = 1;
  assert.equal(addressEquals(p, 3 + ipSrcOffset(6), src), true);
  assert.equal(addressEquals(p, 3 + ipDstOffset(6), src), false);
  assert.equal(ipPacketLength(ipv6({ payload: 0 }), 0, 40), 40);
  assert.equal(ipSrcOffset(5), -1);
  assert.equal(ipDstOffset(0), -1);
});

test('junk is refused with a named problem code', () => {
  const cases: Array<[Uint8Array, number, number, number]> = [
    [new Uint8Array(0), 0, 0, IpPacketProblem.Short],
    [ipv4(), 0, 19, IpPacketProblem.Short],
    [ipv6(), 0, 39, IpPacketProblem.Short],
    [Uint8Array.of(0x50, 0, 0, 0), 0, 4, IpPacketProblem.BadVersion],
    [new Uint8Array(64), 0, 64, IpPacketProblem.BadVersion],
    [ipv4({ ihl: 4 }), 0, 24, IpPacketProblem.BadHeaderLength],
    [ipv4({ total: 19 }), 0, 20, IpPacketProblem.BadTotalLength],
    [ipv4({ ihl: 6, total: 22 }), 0, 22, IpPacketProblem.BadTotalLength],
    [ipv4({ payload: 8 }), 0, 27, IpPacketProblem.BadTotalLength],
    [ipv6({ payload: 8 }), 0, 47, IpPacketProblem.BadTotalLength],
    [ipv4(), -1, 20, IpPacketProblem.BadBounds],
    [ipv4(), 0, 29, IpPacketProblem.BadBounds],
    [ipv4(), 1.5, 20, IpPacketProblem.BadBounds],
    [ipv4(), 0, Number.NaN, IpPacketProblem.BadBounds],
  ];
  for (const [buf, off, len, want] of cases) {
    assert.equal(ipPacketLength(buf, off, len), want, `${describeIpPacketProblem(want)} off=${off} len=${len}`);
  }
  assert.equal(describeIpPacketProblem(IpPacketProblem.BadVersion), 'BadVersion');
  assert.equal(ipVersion(new Uint8Array(0), 0), 0);
  assert.equal(ipVersion(Uint8Array.of(0x45), 1), 0);
  assert.equal(addressEquals(Uint8Array.of(1, 2, 3), 0, Uint8Array.of(1, 2, 3, 4)), false);
});

// Random bytes; most of the time the version nibble and length field are forced near the edge of
// plausibility (length field around the bytes available) so the 4/6 branches get real coverage.
const packetInput = fc
  .tuple(
    fc.uint8Array({ maxLength: 160, size: 'max' }),
    fc.constantFrom(-1, 4, 6, 4, 6),
    fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: -2, max: 200 })),
    fc.oneof(fc.integer({ min: -2, max: 20 }), fc.integer({ min: -200, max: 200 })),
    fc.integer({ min: -4, max: 4 }),
  )
  .map(([buf, version, off, short, slack]) => {
    const len = buf.length - off - short; // usually inside the buffer, sometimes not
    if (version > 0 && off >= 0 && off + 6 <= buf.length) {
      buf[off] = (version << 4) | (buf[off]! & 0x0f);
      const field = Math.max(0, len - (version === 6 ? 40 : 0) + slack) & 0xffff;
      const at = off + (version === 6 ? 4 : 2);
      buf[at] = field >> 8;
      buf[at + 1] = field & 0xff;
    }
    return { buf, off, len };
  });

test('fuzz: ipPacketLength never throws and its answer is consistent with the header', () => {
  let valid = 0;
  fc.assert(
    fc.property(packetInput, ({ buf, off, len }) => {
      const n = ipPacketLength(buf, off, len);
      assert.ok(Number.isInteger(n));
      if (n <= 0) {
        assert.ok(describeIpPacketProblem(n) in IpPacketProblem);
        return true;
      }
      valid++;
      assert.ok(off >= 0 && off + len <= buf.length && n <= len);
      const version = ipVersion(buf, off);
      if (version === 4) {
        assert.ok(n >= 20 && (buf[off]! & 0x0f) * 4 <= n && n === ((buf[off + 2]! << 8) | buf[off + 3]!));
        assert.ok(ipv4Src(buf, off) >= 0 && ipv4Dst(buf, off) <= 0xffffffff);
      } else {
        assert.equal(version, 6);
        assert.ok(n >= 40 && n === 40 + ((buf[off + 4]! << 8) | buf[off + 5]!));
      }
      assert.equal(isPlausibleIpPacket(buf, off, len), true);
      return true;
    }),
    { numRuns: 100_000 },
  );
  assert.ok(valid > 100, `only ${valid} plausible packets generated`);
});

test('fuzz: well-formed packets of every size are accepted with their exact length', () => {
  fc.assert(
    fc.property(fc.boolean(), fc.nat(1400), fc.nat(32), fc.nat(40), (v6, payload, pad, off) => {
      const buf = v6 ? ipv6({ off, payload, pad }) : ipv4({ off, payload, pad });
      assert.equal(ipPacketLength(buf, off, buf.length - off), (v6 ? 40 : 20) + payload);
      return true;
    }),
    { numRuns: 100_000 },
  );
});
