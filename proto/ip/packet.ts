// Allocation-free accessors over an IP packet held in a buffer at an offset, for the data path.
// Nothing here throws on bad bytes: checks return a negative IpPacketProblem code instead, so the
// hot path can count and drop without try/catch or allocating a result object.
//
// IPv4 header: 0 version|IHL, 2-3 total length, 9 protocol, 12-15 source, 16-19 destination.
// IPv6 header: 0 version|class, 4-5 payload length, 6 next header, 8-23 source, 24-39 destination.

export const IPV4_HEADER_MIN = 20;
export const IPV6_HEADER_LEN = 40;
export const IPV4_SRC_OFFSET = 12;
export const IPV4_DST_OFFSET = 16;
export const IPV6_SRC_OFFSET = 8;
export const IPV6_DST_OFFSET = 24;

/** Why ipPacketLength refused a buffer; all negative so they never collide with a length. */
export const IpPacketProblem = {
  /** offset/length are not integers inside the buffer. */
  BadBounds: -1,
  /** Fewer bytes than the fixed header. */
  Short: -2,
  /** Version nibble is neither 4 nor 6. */
  BadVersion: -3,
  /** IPv4 IHL below 5 (20 bytes). */
  BadHeaderLength: -4,
  /** Total length shorter than the header or longer than the bytes available. */
  BadTotalLength: -5,
} as const;
export type IpPacketProblem = (typeof IpPacketProblem)[keyof typeof IpPacketProblem];

const problemNames = new Map<number, string>(Object.entries(IpPacketProblem).map(([k, v]) => [v, k]));

/** A short name for a problem code (for logs and drop counters). */
export function describeIpPacketProblem(code: number): string {
  return problemNames.get(code) ?? `length ${code}`;
}

/** The version nibble of the first byte (4 or 6 for IP), or 0 if there is no byte there. */
export function ipVersion(buf: Uint8Array, off: number): number {
  return off >= 0 && off < buf.length ? buf[off]! >> 4 : 0;
}

/** Reads a big-endian uint32 (an IPv4 address) as an unsigned number; caller checks bounds. */
export function readUint32BE(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
}

/** IPv4 source as an unsigned 32-bit number (caller has validated the packet). */
export function ipv4Src(buf: Uint8Array, off: number): number {
  return readUint32BE(buf, off + IPV4_SRC_OFFSET);
}

/** IPv4 destination as an unsigned 32-bit number (caller has validated the packet). */
export function ipv4Dst(buf: Uint8Array, off: number): number {
  return readUint32BE(buf, off + IPV4_DST_OFFSET);
}

/** Where the source address starts for a packet of this version (-1 if not IP). */
export function ipSrcOffset(version: number): number {
  return version === 4 ? IPV4_SRC_OFFSET : version === 6 ? IPV6_SRC_OFFSET : -1;
}

/** Where the destination address starts for a packet of this version (-1 if not IP). */
export function ipDstOffset(version: number): number {
  return version === 4 ? IPV4_DST_OFFSET : version === 6 ? IPV6_DST_OFFSET : -1;
}

/** True if buf[off..] starts with exactly the bytes of `addr` (4 or 16); false when out of range. */
export function addressEquals(buf: Uint8Array, off: number, addr: Uint8Array): boolean {
  if (off < 0 || off + addr.length > buf.length) return false;
  for (let i = 0; i < addr.length; i++) if (buf[off + i] !== addr[i]) return false;
  return true;
}

/** IPv4 protocol (6 TCP, 17 UDP, 1 ICMP) or IPv6 next header; caller has validated the packet. */
export function ipProtocol(buf: Uint8Array, off: number): number {
  return buf[off]! >> 4 === 4 ? buf[off + 9]! : buf[off + 6]!;
}

/**
 * The packet's total length from its header if `len` bytes at `off` hold a plausible IPv4/IPv6
 * packet (version 4/6, IPv4 IHL ≥ 5, header ≤ total length ≤ len); else a negative
 * IpPacketProblem. WireGuard's receive path uses it to drop junk and strip the zero padding.
 * IPv6 jumbograms (payload length 0 with a jumbo option) are not recognised: tunnels never carry them.
 */
export function ipPacketLength(buf: Uint8Array, off: number, len: number): number {
  if (!(Number.isInteger(off) && Number.isInteger(len) && off >= 0 && len >= 0 && off + len <= buf.length)) {
    return IpPacketProblem.BadBounds;
  }
  if (len < 1) return IpPacketProblem.Short;
  const version = buf[off]! >> 4;
  if (version === 4) {
    if (len < IPV4_HEADER_MIN) return IpPacketProblem.Short;
    const headerLen = (buf[off]! & 0x0f) * 4;
    if (headerLen < IPV4_HEADER_MIN) return IpPacketProblem.BadHeaderLength;
    const total = (buf[off + 2]! << 8) | buf[off + 3]!;
    if (total < headerLen || total > len) return IpPacketProblem.BadTotalLength;
    return total;
  }
  if (version === 6) {
    if (len < IPV6_HEADER_LEN) return IpPacketProblem.Short;
    const total = IPV6_HEADER_LEN + ((buf[off + 4]! << 8) | buf[off + 5]!);
    if (total > len) return IpPacketProblem.BadTotalLength;
    return total;
  }
  return IpPacketProblem.BadVersion;
}

/** ipPacketLength(...) > 0, for callers that only need a yes/no. */
export function isPlausibleIpPacket(buf: Uint8Array, off: number, len: number): boolean {
  return ipPacketLength(buf, off, len) > 0;
}
