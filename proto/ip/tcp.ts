// TCP header (RFC 9293) parse and build, sequence-number arithmetic. Allocation-free: the reader
// fills a caller-owned TcpHeaderView, the writer writes at an offset.
//
//   0-1 source port   2-3 destination port   4-7 sequence number   8-11 acknowledgment number
//   12 data offset (high nibble, in 32-bit words)   13 flags CWR ECE URG ACK PSH RST SYN FIN
//   14-15 window   16-17 checksum   18-19 urgent pointer   20.. options (data offset*4 - 20 bytes)
//
// Options understood: 0 end, 1 no-op, 2 MSS (len 4), 3 window scale (len 3), 4 SACK permitted
// (len 2); the rest are skipped by their length byte.

export const TCP_HEADER_MIN = 20;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

/** RFC 7323 §2.3: shifts above 14 are treated as 14. */
export const TCP_MAX_WINDOW_SHIFT = 14;

const OPT_END = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_PERMITTED = 4;

export const TcpProblem = {
  /** Fewer than 20 bytes. */
  Short: -20,
  /** Data offset below 5 words or past the end of the segment. */
  BadDataOffset: -21,
  /** An option whose length byte is missing, below 2, or runs past the header. */
  BadOption: -22,
} as const;
export type TcpProblem = (typeof TcpProblem)[keyof typeof TcpProblem];

export interface TcpHeaderView {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  /** The raw window field (unscaled). */
  window: number;
  headerLength: number;
  /** Absolute offset and length of the payload. */
  dataOffset: number;
  dataLength: number;
  /** MSS option value, 0 when absent. */
  mss: number;
  /** Window scale option (clamped to 14), -1 when absent. */
  windowShift: number;
  sackPermitted: boolean;
}

export function newTcpHeaderView(): TcpHeaderView {
  return { srcPort: 0, dstPort: 0, seq: 0, ack: 0, flags: 0, window: 0, headerLength: 0, dataOffset: 0, dataLength: 0, mss: 0, windowShift: -1, sackPermitted: false };
}

function u32(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
}

/** Parses the TCP segment of `len` bytes at `off` into `out`; 0 or a negative TcpProblem. */
export function readTcpHeader(buf: Uint8Array, off: number, len: number, out: TcpHeaderView): number {
  if (len < TCP_HEADER_MIN || off < 0 || off + len > buf.length) return TcpProblem.Short;
  const headerLength = (buf[off + 12]! >> 4) * 4;
  if (headerLength < TCP_HEADER_MIN || headerLength > len) return TcpProblem.BadDataOffset;
  out.srcPort = (buf[off]! << 8) | buf[off + 1]!;
  out.dstPort = (buf[off + 2]! << 8) | buf[off + 3]!;
  out.seq = u32(buf, off + 4);
  out.ack = u32(buf, off + 8);
  out.flags = buf[off + 13]!;
  out.window = (buf[off + 14]! << 8) | buf[off + 15]!;
  out.headerLength = headerLength;
  out.dataOffset = off + headerLength;
  out.dataLength = len - headerLength;
  out.mss = 0;
  out.windowShift = -1;
  out.sackPermitted = false;
  const end = off + headerLength;
  for (let at = off + TCP_HEADER_MIN; at < end; ) {
    const kind = buf[at]!;
    if (kind === OPT_END) break;
    if (kind === OPT_NOP) {
      at++;
      continue;
    }
    if (at + 1 >= end) return TcpProblem.BadOption;
    const optLen = buf[at + 1]!;
    if (optLen < 2 || at + optLen > end) return TcpProblem.BadOption;
    if (kind === OPT_MSS && optLen === 4) out.mss = (buf[at + 2]! << 8) | buf[at + 3]!;
    else if (kind === OPT_WSCALE && optLen === 3) out.windowShift = Math.min(buf[at + 2]!, TCP_MAX_WINDOW_SHIFT);
    else if (kind === OPT_SACK_PERMITTED && optLen === 2) out.sackPermitted = true;
    at += optLen;
  }
  return 0;
}

const problemNames = new Map<number, string>(Object.entries(TcpProblem).map(([k, v]) => [v, k]));

export function describeTcpProblem(code: number): string {
  return problemNames.get(code) ?? `code ${code}`;
}

/** Bytes of options writeTcpHeader adds for a SYN carrying MSS (+ window scale). */
export function tcpSynOptionsLength(windowShift: number): number {
  return windowShift >= 0 ? 8 : 4;
}

/**
 * Writes a TCP header at `off` with the checksum field zeroed (the caller sums the pseudo-header,
 * header and payload, then calls setTcpChecksum). With mss > 0 the MSS option is added, with
 * windowShift >= 0 also NOP + window scale (SYN segments only). Returns the header length.
 */
export function writeTcpHeader(
  buf: Uint8Array, off: number, srcPort: number, dstPort: number, seq: number, ack: number,
  flags: number, window: number, mss = 0, windowShift = -1,
): number {
  const optLen = mss > 0 ? tcpSynOptionsLength(windowShift) : 0;
  const headerLength = TCP_HEADER_MIN + optLen;
  buf[off] = srcPort >> 8;
  buf[off + 1] = srcPort & 0xff;
  buf[off + 2] = dstPort >> 8;
  buf[off + 3] = dstPort & 0xff;
  writeU32(buf, off + 4, seq);
  writeU32(buf, off + 8, ack);
  buf[off + 12] = (headerLength / 4) << 4;
  buf[off + 13] = flags;
  buf[off + 14] = window >> 8;
  buf[off + 15] = window & 0xff;
  buf[off + 16] = 0;
  buf[off + 17] = 0;
  buf[off + 18] = 0;
  buf[off + 19] = 0;
  if (optLen > 0) {
    buf[off + 20] = OPT_MSS;
    buf[off + 21] = 4;
    buf[off + 22] = mss >> 8;
    buf[off + 23] = mss & 0xff;
    if (windowShift >= 0) {
      buf[off + 24] = OPT_NOP;
      buf[off + 25] = OPT_WSCALE;
      buf[off + 26] = 3;
      buf[off + 27] = windowShift;
    }
  }
  return headerLength;
}

export function setTcpChecksum(buf: Uint8Array, tcpOff: number, checksum: number): void {
  buf[tcpOff + 16] = checksum >> 8;
  buf[tcpOff + 17] = checksum & 0xff;
}

function writeU32(buf: Uint8Array, at: number, v: number): void {
  buf[at] = (v >>> 24) & 0xff;
  buf[at + 1] = (v >>> 16) & 0xff;
  buf[at + 2] = (v >>> 8) & 0xff;
  buf[at + 3] = v & 0xff;
}

// Sequence numbers live modulo 2^32 (RFC 9293 §3.4): compare by the sign of the 32-bit difference.

/** a + n modulo 2^32, as an unsigned number. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** b - a as a signed 32-bit distance (positive when b is after a). */
export function seqDiff(b: number, a: number): number {
  return (b - a) | 0;
}

export function seqLt(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

export function seqLe(a: number, b: number): boolean {
  return ((a - b) | 0) <= 0;
}

export function seqGt(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

export function seqGe(a: number, b: number): boolean {
  return ((a - b) | 0) >= 0;
}
