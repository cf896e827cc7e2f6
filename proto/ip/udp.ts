// UDP header (RFC 768) parse and build.
//
//   0-1 source port   2-3 destination port   4-5 length (header + payload)   6-7 checksum
//
// Over IPv4 a zero checksum means "not computed"; a computed zero is sent as 0xffff. Over IPv6
// the checksum is mandatory (RFC 8200 §8.1).

export const UDP_HEADER_LEN = 8;

export const UdpProblem = {
  /** Fewer than 8 bytes. */
  Short: -30,
  /** Length field below 8 or above the bytes the IP packet carries. */
  BadLength: -31,
  /** A zero checksum over IPv6. */
  MissingChecksum: -32,
} as const;
export type UdpProblem = (typeof UdpProblem)[keyof typeof UdpProblem];

export interface UdpHeaderView {
  srcPort: number;
  dstPort: number;
  /** Length field: header + payload (the IP packet may carry trailing bytes after it). */
  length: number;
  checksum: number;
  dataOffset: number;
  dataLength: number;
}

export function newUdpHeaderView(): UdpHeaderView {
  return { srcPort: 0, dstPort: 0, length: 0, checksum: 0, dataOffset: 0, dataLength: 0 };
}

/** Parses the UDP datagram in the `len` bytes at `off`; 0 or a negative UdpProblem. */
export function readUdpHeader(buf: Uint8Array, off: number, len: number, version: 4 | 6, out: UdpHeaderView): number {
  if (len < UDP_HEADER_LEN || off < 0 || off + len > buf.length) return UdpProblem.Short;
  const length = (buf[off + 4]! << 8) | buf[off + 5]!;
  if (length < UDP_HEADER_LEN || length > len) return UdpProblem.BadLength;
  const checksum = (buf[off + 6]! << 8) | buf[off + 7]!;
  if (checksum === 0 && version === 6) return UdpProblem.MissingChecksum;
  out.srcPort = (buf[off]! << 8) | buf[off + 1]!;
  out.dstPort = (buf[off + 2]! << 8) | buf[off + 3]!;
  out.length = length;
  out.checksum = checksum;
  out.dataOffset = off + UDP_HEADER_LEN;
  out.dataLength = length - UDP_HEADER_LEN;
  return 0;
}

const problemNames = new Map<number, string>(Object.entries(UdpProblem).map(([k, v]) => [v, k]));

export function describeUdpProblem(code: number): string {
  return problemNames.get(code) ?? `code ${code}`;
}

/** Writes a UDP header with a zero checksum field (set it with setUdpChecksum). */
export function writeUdpHeader(buf: Uint8Array, off: number, srcPort: number, dstPort: number, length: number): void {
  buf[off] = srcPort >> 8;
  buf[off + 1] = srcPort & 0xff;
  buf[off + 2] = dstPort >> 8;
  buf[off + 3] = dstPort & 0xff;
  buf[off + 4] = length >> 8;
  buf[off + 5] = length & 0xff;
  buf[off + 6] = 0;
  buf[off + 7] = 0;
}

/** Stores a computed checksum; 0 goes on the wire as 0xffff (0 would mean "none"). */
export function setUdpChecksum(buf: Uint8Array, udpOff: number, checksum: number): void {
  const c = checksum === 0 ? 0xffff : checksum;
  buf[udpOff + 6] = c >> 8;
  buf[udpOff + 7] = c & 0xff;
}
