// The 20-byte packed endpoint address used across the JS/native boundary, one per packet.
// The hot path compares and copies these bytes; encode/decode are for slow paths only.
import { isIPv4, isIPv6 } from 'node:net';

export const PACKED_ADDR_SIZE = 20;

export interface Endpoint {
  address: string;
  port: number;
}

export interface DecodedEndpoint extends Endpoint {
  family: 4 | 6;
}

export class InvalidAddressError extends Error {
  override readonly name = 'InvalidAddressError';
  readonly code = 'ERR_INVALID_ADDRESS';
}

/*
 * Packed address layout (20 bytes, written at i*20 for packet i):
 *
 *   offset  0        1        2..3               4..19
 *           family   pad = 0  port, big-endian   IPv6 address (16 bytes), or
 *           (4 | 6)                               IPv4 address in 4..7 and 8..19 zero
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are always stored as family 4, so one endpoint
 * has exactly one encoding and byte equality is endpoint equality.
 */
export function encodePackedAddr(
  endpoint: Endpoint, out: Uint8Array = new Uint8Array(PACKED_ADDR_SIZE), offset = 0,
): Uint8Array {
  const { address, port } = endpoint;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidAddressError(`invalid port ${port}`);
  if (offset < 0 || offset + PACKED_ADDR_SIZE > out.length) throw new RangeError('packed address out of range');
  out.fill(0, offset, offset + PACKED_ADDR_SIZE);
  out[offset + 2] = port >> 8;
  out[offset + 3] = port & 0xff;
  if (isIPv4(address)) {
    out[offset] = 4;
    writeIPv4(address, out, offset + 4);
    return out;
  }
  const bytes = parseIPv6(address);
  if (isV4Mapped(bytes)) {
    out[offset] = 4;
    out.set(bytes.subarray(12), offset + 4);
  } else {
    out[offset] = 6;
    out.set(bytes, offset + 4);
  }
  return out;
}

export function decodePackedAddr(buf: Uint8Array, offset = 0): DecodedEndpoint {
  if (offset < 0 || offset + PACKED_ADDR_SIZE > buf.length) throw new RangeError('packed address out of range');
  const family = buf[offset];
  const port = (buf[offset + 2]! << 8) | buf[offset + 3]!;
  if (family === 4) {
    return { family, port, address: `${buf[offset + 4]}.${buf[offset + 5]}.${buf[offset + 6]}.${buf[offset + 7]}` };
  }
  if (family === 6) return { family, port, address: formatIPv6(buf.subarray(offset + 4, offset + 20)) };
  throw new InvalidAddressError(`invalid packed address family ${family}`);
}

/** True when the packed addresses at a[aOff] and b[bOff] are the same endpoint. */
export function packedAddrEquals(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number): boolean {
  for (let i = 0; i < PACKED_ADDR_SIZE; i++) if (a[aOff + i] !== b[bOff + i]) return false;
  return true;
}

export function copyPackedAddr(src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  dst.set(src.subarray(srcOff, srcOff + PACKED_ADDR_SIZE), dstOff);
}

/** "1.2.3.4:5" or "[::1]:5". */
export function formatEndpoint(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

function writeIPv4(address: string, out: Uint8Array, at: number): void {
  const parts = address.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
}

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Parses an IPv6 literal (with optional embedded IPv4 tail) into 16 bytes. */
export function parseIPv6(address: string): Uint8Array {
  if (address.includes('%')) throw new InvalidAddressError(`scoped IPv6 address not supported: ${address}`);
  if (!isIPv6(address)) throw new InvalidAddressError(`not an IP address: ${address}`);
  const out = new Uint8Array(16);
  let text = address;
  let tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) !== -1) {
    tail = text.slice(lastColon + 1).split('.').map(Number);
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...new Array<string>(rest === undefined ? 0 : zeros).fill('0'), ...restGroups];
  for (let i = 0; i < 8; i++) {
    const g = parseInt(groups[i]!, 16);
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  }
  if (tail.length === 4) out.set(tail, 12);
  return out;
}

/** RFC 5952 text form: lower case, longest run of two or more zero groups as "::". */
export function formatIPv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
