// ICMPv4 (RFC 792) and ICMPv6 (RFC 4443): echo request/reply and destination unreachable.
//
//   echo:        0 type  1 code  2-3 checksum  4-5 identifier  6-7 sequence  8.. data
//   unreachable: 0 type  1 code  2-3 checksum  4-7 unused (0)  8.. as much of the offending
//                packet as fits (IPv4: header + at least 8 bytes, 576 bytes in all per RFC 1812;
//                IPv6: up to the minimum MTU of 1280)
//
// The ICMPv4 checksum covers the message alone, the ICMPv6 checksum adds the IPv6 pseudo-header.

export const ICMP_HEADER_LEN = 8;

export const ICMPV4_ECHO_REPLY = 0;
export const ICMPV4_DEST_UNREACHABLE = 3;
export const ICMPV4_ECHO_REQUEST = 8;
export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;

/** Destination-unreachable codes by meaning, per version. */
export const UnreachableCode = {
  v4: { network: 0, host: 1, protocol: 2, port: 3, adminProhibited: 13 },
  v6: { network: 0, adminProhibited: 1, host: 3, port: 4 },
} as const;

/** Largest ICMP error message we build: keeps the whole packet within 576 / 1280 bytes. */
export function icmpErrorMaxQuote(version: 4 | 6): number {
  return version === 4 ? 576 - 20 - ICMP_HEADER_LEN : 1280 - 40 - ICMP_HEADER_LEN;
}

export const IcmpProblem = {
  Short: -40,
} as const;

export interface IcmpEchoView {
  type: number;
  code: number;
  identifier: number;
  sequence: number;
  /** Absolute offset and length of the echo data. */
  dataOffset: number;
  dataLength: number;
}

export function newIcmpEchoView(): IcmpEchoView {
  return { type: 0, code: 0, identifier: 0, sequence: 0, dataOffset: 0, dataLength: 0 };
}

/** Reads the ICMP header of the message of `len` bytes at `off` (echo fields meaningful only for echo types). */
export function readIcmpHeader(buf: Uint8Array, off: number, len: number, out: IcmpEchoView): number {
  if (len < ICMP_HEADER_LEN || off < 0 || off + len > buf.length) return IcmpProblem.Short;
  out.type = buf[off]!;
  out.code = buf[off + 1]!;
  out.identifier = (buf[off + 4]! << 8) | buf[off + 5]!;
  out.sequence = (buf[off + 6]! << 8) | buf[off + 7]!;
  out.dataOffset = off + ICMP_HEADER_LEN;
  out.dataLength = len - ICMP_HEADER_LEN;
  return 0;
}

/** Writes an echo header with a zero checksum; the data follows at off + 8. */
export function writeIcmpEchoHeader(buf: Uint8Array, off: number, type: number, identifier: number, sequence: number): void {
  buf[off] = type;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  buf[off + 4] = identifier >> 8;
  buf[off + 5] = identifier & 0xff;
  buf[off + 6] = sequence >> 8;
  buf[off + 7] = sequence & 0xff;
}

/**
 * Writes a destination-unreachable message at `off` quoting quote[qOff, qOff + qLen), cut to
 * what icmpErrorMaxQuote allows; the checksum field is zero. Returns the message length.
 */
export function writeIcmpUnreachable(
  buf: Uint8Array, off: number, version: 4 | 6, code: number, quote: Uint8Array, qOff: number, qLen: number,
): number {
  const n = Math.min(qLen, icmpErrorMaxQuote(version));
  buf[off] = version === 4 ? ICMPV4_DEST_UNREACHABLE : ICMPV6_DEST_UNREACHABLE;
  buf[off + 1] = code;
  buf.fill(0, off + 2, off + ICMP_HEADER_LEN);
  buf.set(quote.subarray(qOff, qOff + n), off + ICMP_HEADER_LEN);
  return ICMP_HEADER_LEN + n;
}

export function setIcmpChecksum(buf: Uint8Array, icmpOff: number, checksum: number): void {
  buf[icmpOff + 2] = checksum >> 8;
  buf[icmpOff + 3] = checksum & 0xff;
}
