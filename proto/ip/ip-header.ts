// IPv4/IPv6 headers as a transport endpoint sees them: where the transport message starts, what
// protocol it is, whether the packet is a fragment; and the writers for headers we originate.
// Allocation-free: readIpHeader fills a caller-owned IpHeaderView and returns a problem code.
//
// IPv4 (RFC 791):  0 ver|IHL  1 TOS  2-3 total length  4-5 id  6-7 flags|fragment offset
//                  8 TTL  9 protocol  10-11 header checksum  12-15 source  16-19 destination
// IPv6 (RFC 8200): 0-3 ver|class|flow  4-5 payload length  6 next header  7 hop limit
//                  8-23 source  24-39 destination, then extension headers
import { finishChecksum, internetChecksum, sumWords } from './checksum.js';
import { IPV4_HEADER_MIN, IPV6_HEADER_LEN, IpPacketProblem, ipPacketLength } from './packet.js';

export const IP_PROTO_ICMP = 1;
export const IP_PROTO_TCP = 6;
export const IP_PROTO_UDP = 17;
export const IP_PROTO_ICMPV6 = 58;

const IPV6_HOP_BY_HOP = 0;
const IPV6_ROUTING = 43;
const IPV6_FRAGMENT = 44;
const IPV6_DEST_OPTS = 60;
const IPV6_NO_NEXT = 59;
/** Extension headers followed before giving up (a chain longer than this is not real traffic). */
const MAX_EXTENSION_HEADERS = 8;

/** Problems beyond ipPacketLength's (all negative, distinct from IpPacketProblem). */
export const IpHeaderProblem = {
  ...IpPacketProblem,
  /** IPv4 header checksum does not verify. */
  BadHeaderChecksum: -10,
  /** An IPv4 fragment (MF set or offset > 0) or an IPv6 Fragment header. */
  Fragment: -11,
  /** A malformed or overlong IPv6 extension header chain, or no next header at all. */
  BadExtensionHeader: -12,
} as const;
export type IpHeaderProblem = (typeof IpHeaderProblem)[keyof typeof IpHeaderProblem];

/** What readIpHeader found; one instance is reused across packets. Offsets are absolute. */
export interface IpHeaderView {
  version: 4 | 6;
  /** Absolute offset and length of the whole packet (padding after totalLength excluded). */
  offset: number;
  totalLength: number;
  /** Transport protocol after any IPv6 extension headers. */
  protocol: number;
  /** Absolute offset of the transport message and its length. */
  l4Offset: number;
  l4Length: number;
  /** Absolute offsets of the source and destination addresses (addrLength bytes each). */
  srcOffset: number;
  dstOffset: number;
  addrLength: 4 | 16;
  /** TTL / hop limit. */
  ttl: number;
}

export function newIpHeaderView(): IpHeaderView {
  return { version: 4, offset: 0, totalLength: 0, protocol: 0, l4Offset: 0, l4Length: 0, srcOffset: 0, dstOffset: 0, addrLength: 4, ttl: 0 };
}

/**
 * Validates the IP header of the `len` bytes at `off` and fills `out`. Returns 0, or a
 * negative IpHeaderProblem. Fragments are reported, not parsed: a NAT that terminates flows
 * cannot use a packet whose transport header may be missing.
 */
export function readIpHeader(buf: Uint8Array, off: number, len: number, out: IpHeaderView): number {
  const total = ipPacketLength(buf, off, len);
  if (total < 0) return total;
  out.offset = off;
  out.totalLength = total;
  if (buf[off]! >> 4 === 4) {
    const ihl = (buf[off]! & 0x0f) * 4;
    if (internetChecksum(buf, off, off + ihl) !== 0) return IpHeaderProblem.BadHeaderChecksum;
    if ((((buf[off + 6]! << 8) | buf[off + 7]!) & 0x3fff) !== 0) return IpHeaderProblem.Fragment;
    out.version = 4;
    out.protocol = buf[off + 9]!;
    out.l4Offset = off + ihl;
    out.l4Length = total - ihl;
    out.srcOffset = off + 12;
    out.dstOffset = off + 16;
    out.addrLength = 4;
    out.ttl = buf[off + 8]!;
    return 0;
  }
  let next = buf[off + 6]!;
  let at = off + IPV6_HEADER_LEN;
  const end = off + total;
  for (let n = 0; ; n++) {
    if (next === IPV6_FRAGMENT) return IpHeaderProblem.Fragment;
    if (next !== IPV6_HOP_BY_HOP && next !== IPV6_ROUTING && next !== IPV6_DEST_OPTS) break;
    if (n >= MAX_EXTENSION_HEADERS || at + 8 > end) return IpHeaderProblem.BadExtensionHeader;
    const extLen = (buf[at + 1]! + 1) * 8;
    if (at + extLen > end) return IpHeaderProblem.BadExtensionHeader;
    next = buf[at]!;
    at += extLen;
  }
  if (next === IPV6_NO_NEXT) return IpHeaderProblem.BadExtensionHeader;
  out.version = 6;
  out.protocol = next;
  out.l4Offset = at;
  out.l4Length = end - at;
  out.srcOffset = off + 8;
  out.dstOffset = off + 24;
  out.addrLength = 16;
  out.ttl = buf[off + 7]!;
  return 0;
}

const problemNames = new Map<number, string>(Object.entries(IpHeaderProblem).map(([k, v]) => [v, k]));

/** A short name for an IpHeaderProblem code. */
export function describeIpHeaderProblem(code: number): string {
  return problemNames.get(code) ?? `code ${code}`;
}

/** Bytes of the header writeIpHeader produces for a version (no options, no extensions). */
export function ipHeaderLength(version: 4 | 6): number {
  return version === 4 ? IPV4_HEADER_MIN : IPV6_HEADER_LEN;
}

/**
 * Writes an IPv4 header (no options, DF set, header checksum filled) or an IPv6 header at
 * `off` for a transport message of `payloadLength` bytes; src/dst are 4 or 16 bytes.
 * Returns the header length.
 */
export function writeIpHeader(
  buf: Uint8Array, off: number, version: 4 | 6, protocol: number, payloadLength: number,
  src: Uint8Array, dst: Uint8Array, ttl: number, id = 0,
): number {
  if (version === 4) {
    const total = IPV4_HEADER_MIN + payloadLength;
    buf[off] = 0x45;
    buf[off + 1] = 0;
    buf[off + 2] = total >> 8;
    buf[off + 3] = total & 0xff;
    buf[off + 4] = (id >> 8) & 0xff;
    buf[off + 5] = id & 0xff;
    buf[off + 6] = 0x40; // DF: we never fragment what we originate
    buf[off + 7] = 0;
    buf[off + 8] = ttl;
    buf[off + 9] = protocol;
    buf[off + 10] = 0;
    buf[off + 11] = 0;
    buf.set(src, off + 12);
    buf.set(dst, off + 16);
    const c = finishChecksum(sumWords(buf, off, off + IPV4_HEADER_MIN));
    buf[off + 10] = c >> 8;
    buf[off + 11] = c & 0xff;
    return IPV4_HEADER_MIN;
  }
  buf[off] = 0x60;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = payloadLength >> 8;
  buf[off + 5] = payloadLength & 0xff;
  buf[off + 6] = protocol;
  buf[off + 7] = ttl;
  buf.set(src, off + 8);
  buf.set(dst, off + 24);
  return IPV6_HEADER_LEN;
}
