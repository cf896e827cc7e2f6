// IP/TCP/UDP/ICMP header codecs of proto/ip (ip-header.ts, tcp.ts, udp.ts, icmp.ts): round trips
// of what we build, packets built by an independent encoder, fragments and extension headers,
// sequence arithmetic across the wrap, and no throw on arbitrary bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { internetChecksum, transportChecksum } from '../../proto/ip/checksum.js';
import {
  ICMPV4_DEST_UNREACHABLE, icmpErrorMaxQuote, newIcmpEchoView, readIcmpHeader, writeIcmpEchoHeader, writeIcmpUnreachable,
} from '../../proto/ip/icmp.js';
import { IpHeaderProblem, describeIpHeaderProblem, newIpHeaderView, readIpHeader, writeIpHeader } from '../../proto/ip/ip-header.js';
import {
  TCP_ACK, TCP_SYN, TcpProblem, newTcpHeaderView, readTcpHeader, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt, writeTcpHeader,
} from '../../proto/ip/tcp.js';
import { UdpProblem, newUdpHeaderView, readUdpHeader, setUdpChecksum, writeUdpHeader } from '../../proto/ip/udp.js';
import { addrBytes, echoRequest, ipPacket, tcpPacket, udpPacket } from '../helpers/nat-packets.js';

test('readIpHeader: IPv4 and IPv6 packets from an independent encoder', () => {
  const ip = newIpHeaderView();
  const p4 = udpPacket('100.64.0.2', 1000, '192.0.2.9', 53, Buffer.from('q'));
  assert.equal(readIpHeader(p4, 0, p4.length, ip), 0);
  assert.deepEqual([ip.version, ip.protocol, ip.l4Offset, ip.l4Length, ip.srcOffset, ip.dstOffset, ip.addrLength, ip.ttl], [4, 17, 20, 9, 12, 16, 4, 64]);
  const p6 = tcpPacket({ src: 'fd00::2', dst: '2001:db8::1', sport: 1, dport: 2, seq: 0, ack: 0, flags: TCP_SYN });
  assert.equal(readIpHeader(p6, 0, p6.length, ip), 0);
  assert.deepEqual([ip.version, ip.protocol, ip.l4Offset, ip.addrLength], [6, 6, 40, 16]);
  // Trailing padding after the total length is not part of the packet.
  const padded = Buffer.concat([p4, Buffer.alloc(7)]);
  assert.equal(readIpHeader(padded, 0, padded.length, ip), 0);
  assert.equal(ip.totalLength, p4.length);
});

test('readIpHeader: bad header checksum, fragments and IPv6 extension headers', () => {
  const ip = newIpHeaderView();
  const bad = Buffer.from(udpPacket('100.64.0.2', 1, '192.0.2.9', 2, Buffer.alloc(4)));
  bad[8]! ^= 1; // TTL changed, checksum not
  assert.equal(readIpHeader(bad, 0, bad.length, ip), IpHeaderProblem.BadHeaderChecksum);
  assert.equal(describeIpHeaderProblem(IpHeaderProblem.BadHeaderChecksum), 'BadHeaderChecksum');
  for (const frag of [0x2000, 0x0001, 0x20b9]) {
    const f = ipPacket('100.64.0.2', '192.0.2.9', 17, Buffer.alloc(16), -1, { frag });
    assert.equal(readIpHeader(f, 0, f.length, ip), IpHeaderProblem.Fragment, `flags/offset ${frag.toString(16)}`);
  }
  // IPv6: hop-by-hop (8 bytes) then UDP is followed; a Fragment header is reported.
  const udp = Buffer.alloc(8);
  const hbh = Buffer.from([17, 0, 1, 4, 0, 0, 0, 0]);
  const p = ipPacket('fd00::2', 'fd00::3', 0, Buffer.concat([hbh, udp]), -1);
  assert.equal(readIpHeader(p, 0, p.length, ip), 0);
  assert.deepEqual([ip.protocol, ip.l4Offset, ip.l4Length], [17, 48, 8]);
  const fragHdr = Buffer.from([17, 0, 0, 1, 0, 0, 0, 1]);
  const pf = ipPacket('fd00::2', 'fd00::3', 44, Buffer.concat([fragHdr, udp]), -1);
  assert.equal(readIpHeader(pf, 0, pf.length, ip), IpHeaderProblem.Fragment);
  const overlong = ipPacket('fd00::2', 'fd00::3', 0, Buffer.from([17, 5, 0, 0, 0, 0, 0, 0]), -1);
  assert.equal(readIpHeader(overlong, 0, overlong.length, ip), IpHeaderProblem.BadExtensionHeader);
});

test('writeIpHeader + TCP header with SYN options round-trip, checksums verify', () => {
  const b = new Uint8Array(200);
  for (const [v, src, dst] of [[4, '192.0.2.1', '100.64.0.2'], [6, '2001:db8::1', 'fd00::2']] as const) {
    const tcpLen = 28;
    const hl = writeIpHeader(b, 0, v, 6, tcpLen, addrBytes(src), addrBytes(dst), 64);
    assert.equal(writeTcpHeader(b, hl, 443, 40000, 0xfffffff0, 123, TCP_SYN | TCP_ACK, 65535, 1380, 7), 28);
    const c = transportChecksum(b, 0, v, 6, hl, tcpLen);
    b[hl + 16] = c >> 8;
    b[hl + 17] = c & 0xff;
    const ip = newIpHeaderView();
    assert.equal(readIpHeader(b, 0, hl + tcpLen, ip), 0);
    if (v === 4) assert.equal(internetChecksum(b, 0, 20), 0);
    assert.equal(transportChecksum(b, 0, v, 6, ip.l4Offset, ip.l4Length), 0);
    const t = newTcpHeaderView();
    assert.equal(readTcpHeader(b, ip.l4Offset, ip.l4Length, t), 0);
    assert.deepEqual(
      [t.srcPort, t.dstPort, t.seq, t.ack, t.flags, t.window, t.mss, t.windowShift, t.dataLength],
      [443, 40000, 0xfffffff0, 123, TCP_SYN | TCP_ACK, 65535, 1380, 7, 0],
    );
  }
});

test('readTcpHeader: options from an independent encoder, malformed options and offsets', () => {
  const t = newTcpHeaderView();
  const p = tcpPacket({ src: '100.64.0.2', dst: '192.0.2.9', sport: 5, dport: 6, seq: 7, ack: 8, flags: TCP_SYN, mss: 1460, wscale: 20, data: Buffer.from('hi') });
  assert.equal(readTcpHeader(p, 20, p.length - 20, t), 0);
  assert.deepEqual([t.mss, t.windowShift, t.dataLength], [1460, 14, 2], 'window scale clamped to 14');
  const badOpt = Buffer.from(p);
  badOpt[20 + 21] = 40; // MSS option length runs past the header
  assert.equal(readTcpHeader(badOpt, 20, badOpt.length - 20, t), TcpProblem.BadOption);
  const badOff = Buffer.from(p);
  badOff[20 + 12] = 0x40;
  assert.equal(readTcpHeader(badOff, 20, badOff.length - 20, t), TcpProblem.BadDataOffset);
  assert.equal(readTcpHeader(p, 20, 19, t), TcpProblem.Short);
});

test('UDP: lengths, the IPv6 zero checksum, a computed zero sent as ffff', () => {
  const u = newUdpHeaderView();
  const p = udpPacket('100.64.0.2', 9, '192.0.2.9', 10, Buffer.from('abc'));
  assert.equal(readUdpHeader(p, 20, p.length - 20, 4, u), 0);
  assert.deepEqual([u.srcPort, u.dstPort, u.length, u.dataOffset, u.dataLength], [9, 10, 11, 28, 3]);
  const long = Buffer.from(p);
  long.writeUInt16BE(50, 24);
  assert.equal(readUdpHeader(long, 20, long.length - 20, 4, u), UdpProblem.BadLength);
  const zero6 = Buffer.from(udpPacket('fd00::2', 9, 'fd00::3', 10, Buffer.from('x')));
  zero6.writeUInt16BE(0, 46);
  assert.equal(readUdpHeader(zero6, 40, zero6.length - 40, 6, u), UdpProblem.MissingChecksum);
  assert.equal(readUdpHeader(zero6, 40, zero6.length - 40, 4, u), 0, 'zero = no checksum over IPv4');
  const b = new Uint8Array(8);
  writeUdpHeader(b, 0, 1, 2, 8);
  setUdpChecksum(b, 0, 0);
  assert.deepEqual([b[6], b[7]], [0xff, 0xff]);
});

test('ICMP: echo header round trip; unreachable quotes are cut to 576 / 1280 bytes', () => {
  const e = newIcmpEchoView();
  const req = echoRequest('100.64.0.2', '192.0.2.9', 0xbeef, 42, Buffer.from('data'));
  assert.equal(readIcmpHeader(req, 20, req.length - 20, e), 0);
  assert.deepEqual([e.type, e.code, e.identifier, e.sequence, e.dataLength], [8, 0, 0xbeef, 42, 4]);
  const b = new Uint8Array(2000);
  writeIcmpEchoHeader(b, 0, 0, 7, 8);
  assert.equal(readIcmpHeader(b, 0, 8, e), 0);
  assert.deepEqual([e.type, e.identifier, e.sequence], [0, 7, 8]);
  const big = new Uint8Array(1500).fill(9);
  assert.equal(writeIcmpUnreachable(b, 20, 4, 1, big, 0, big.length), 8 + icmpErrorMaxQuote(4));
  assert.equal(20 + 8 + icmpErrorMaxQuote(4), 576);
  assert.equal(b[20], ICMPV4_DEST_UNREACHABLE);
  assert.equal(40 + 8 + icmpErrorMaxQuote(6), 1280);
  assert.equal(writeIcmpUnreachable(b, 0, 6, 4, big, 0, 28), 36);
});

test('sequence arithmetic across the 2^32 wrap', () => {
  assert.equal(seqAdd(0xffffffff, 2), 1);
  assert.equal(seqAdd(5, -6), 0xffffffff);
  assert.equal(seqDiff(1, 0xffffffff), 2);
  assert.equal(seqLt(0xfffffff0, 5), true);
  assert.equal(seqGt(5, 0xfffffff0), true);
  assert.equal(seqLe(7, 7) && seqGe(7, 7), true);
  fc.assert(fc.property(fc.nat(0xffffffff), fc.integer({ min: 1, max: 2 ** 31 - 1 }), (a, n) => {
    assert.equal(seqLt(a, seqAdd(a, n)), true);
    assert.equal(seqDiff(seqAdd(a, n), a), n);
  }));
});

test('readers never throw on arbitrary bytes and report negative problem codes', () => {
  const ip = newIpHeaderView();
  const t = newTcpHeaderView();
  const u = newUdpHeaderView();
  const e = newIcmpEchoView();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.integer({ min: -2, max: 130 }), (bytes, len) => {
      const n = Math.max(0, Math.min(len, bytes.length));
      const r = readIpHeader(bytes, 0, n, ip);
      assert.ok(r <= 0);
      if (r === 0) assert.ok(ip.l4Offset + ip.l4Length <= n);
      const rt = readTcpHeader(bytes, 0, n, t);
      assert.ok(rt <= 0);
      if (rt === 0) assert.ok(t.dataOffset + t.dataLength <= n);
      assert.ok(readUdpHeader(bytes, 0, n, 6, u) <= 0);
      assert.ok(readIcmpHeader(bytes, 0, n, e) <= 0);
    }),
    { numRuns: 20_000 },
  );
});
