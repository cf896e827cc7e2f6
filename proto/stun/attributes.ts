// STUN attribute types and the codecs of their values (RFC 8489 §14, RFC 5780 §7). Values are
// decoded from a view of exactly the attribute's value bytes; every failure is a DecodeError.
import { DecodeError } from '../errors.js';
import { formatAddress, tryParseAddress } from '../ip/address.js';

export const MAGIC_COOKIE = 0x2112a442;

/** Attribute types this codec reads or writes. */
export const ATTR = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003, // RFC 5780
  USERNAME: 0x0006,
  MESSAGE_INTEGRITY: 0x0008,
  ERROR_CODE: 0x0009,
  UNKNOWN_ATTRIBUTES: 0x000a,
  XOR_MAPPED_ADDRESS: 0x0020,
  PADDING: 0x0026, // RFC 5780
  RESPONSE_PORT: 0x0027, // RFC 5780
  SOFTWARE: 0x8022,
  RESPONSE_ORIGIN: 0x802b, // RFC 5780
  OTHER_ADDRESS: 0x802c, // RFC 5780
  FINGERPRINT: 0x8028,
} as const;

/** RFC 8489 §14.7: the CRC is XORed with this so that other CRC-carrying protocols do not collide. */
export const FINGERPRINT_XOR = 0x5354554e;

/** SOFTWARE and an ERROR-CODE reason phrase: fewer than 128 characters, at most 763 bytes. */
export const MAX_TEXT_BYTES = 763;

/** An ip:port as STUN carries it; `address` is canonical text (dotted quad or RFC 5952). */
export interface StunEndpoint {
  address: string;
  port: number;
}

export interface StunAddress extends StunEndpoint {
  family: 4 | 6;
}

export interface StunErrorCode {
  /** 300–699, e.g. 400 Bad Request, 420 Unknown Attribute. */
  code: number;
  reason: string;
}

export interface ChangeRequest {
  changeIp: boolean;
  changePort: boolean;
}

const FAMILY_V4 = 0x01;
const FAMILY_V6 = 0x02;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

/**
 * (XOR-)MAPPED-ADDRESS, OTHER-ADDRESS, RESPONSE-ORIGIN value:
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |0 0 0 0 0 0 0 0|    Family     |         (X-)Port              |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |              (X-)Address (32 bits IPv4 or 128 bits IPv6)      |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * Family 0x01 = IPv4, 0x02 = IPv6. For XOR-MAPPED-ADDRESS, X-Port = port ^ (cookie >> 16) and
 * X-Address = address ^ (cookie || transaction id) — `xorKey` is those 16 bytes; null = plain.
 */
export function encodeAddressValue(ep: StunEndpoint, xorKey: Uint8Array | null): Uint8Array {
  const ip = tryParseAddress(ep.address);
  if (!ip) throw new RangeError(`STUN address: not an IP literal: ${JSON.stringify(ep.address)}`);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 65535) throw new RangeError(`STUN address: bad port ${ep.port}`);
  const v = new Uint8Array(4 + ip.bytes.length);
  v[1] = ip.family === 4 ? FAMILY_V4 : FAMILY_V6;
  const port = xorKey ? ep.port ^ u16(xorKey, 0) : ep.port;
  v[2] = port >> 8;
  v[3] = port & 0xff;
  for (let i = 0; i < ip.bytes.length; i++) v[4 + i] = xorKey ? ip.bytes[i]! ^ xorKey[i]! : ip.bytes[i]!;
  return v;
}

export function decodeAddressValue(v: Uint8Array, xorKey: Uint8Array | null, what: string): StunAddress {
  if (v.length < 4) throw new DecodeError('bad-length', `${what}: ${v.length} bytes`);
  const family = v[1];
  const len = family === FAMILY_V4 ? 4 : family === FAMILY_V6 ? 16 : -1;
  if (len < 0) throw new DecodeError('bad-value', `${what}: unknown address family ${family}`);
  if (v.length !== 4 + len) throw new DecodeError('bad-length', `${what}: ${v.length} bytes for IPv${len === 4 ? 4 : 6}`);
  const bytes = new Uint8Array(len);
  for (let i = 0; i < len; i++) bytes[i] = xorKey ? v[4 + i]! ^ xorKey[i]! : v[4 + i]!;
  const port = xorKey ? u16(v, 2) ^ u16(xorKey, 0) : u16(v, 2);
  return { family: len === 4 ? 4 : 6, address: formatAddress(bytes), port };
}

/**
 * ERROR-CODE value:
 *
 *  |           Reserved, should be 0         |Class|     Number    |
 *  |      Reason Phrase (variable, UTF-8, at most 763 bytes)      ..
 *
 * Class = code / 100 (3–6), Number = code % 100.
 */
export function encodeErrorCodeValue(e: StunErrorCode): Uint8Array {
  if (!Number.isInteger(e.code) || e.code < 300 || e.code > 699) throw new RangeError(`STUN error code out of range: ${e.code}`);
  const reason = encodeText(e.reason, 'ERROR-CODE reason');
  const v = new Uint8Array(4 + reason.length);
  v[2] = Math.floor(e.code / 100);
  v[3] = e.code % 100;
  v.set(reason, 4);
  return v;
}

export function decodeErrorCodeValue(v: Uint8Array): StunErrorCode {
  if (v.length < 4) throw new DecodeError('bad-length', `ERROR-CODE: ${v.length} bytes`);
  const cls = v[2]! & 0x07;
  const num = v[3]!;
  if (cls < 3 || cls > 6 || num > 99) throw new DecodeError('bad-value', `ERROR-CODE: class ${cls} number ${num}`);
  return { code: cls * 100 + num, reason: decodeText(v.subarray(4), 'ERROR-CODE reason') };
}

/** UNKNOWN-ATTRIBUTES value: a list of 16-bit attribute types. */
export function encodeUnknownAttributesValue(types: readonly number[]): Uint8Array {
  const v = new Uint8Array(types.length * 2);
  types.forEach((t, i) => {
    v[2 * i] = (t >> 8) & 0xff;
    v[2 * i + 1] = t & 0xff;
  });
  return v;
}

export function decodeUnknownAttributesValue(v: Uint8Array): number[] {
  if (v.length % 2 !== 0) throw new DecodeError('bad-length', `UNKNOWN-ATTRIBUTES: odd length ${v.length}`);
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 2) out.push(u16(v, i));
  return out;
}

/**
 * CHANGE-REQUEST value (RFC 5780 §7.2):
 *
 *  |0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 A B 0|
 *
 * A = change IP, B = change port.
 */
export function encodeChangeRequestValue(c: ChangeRequest): Uint8Array {
  const v = new Uint8Array(4);
  v[3] = (c.changeIp ? 0x04 : 0) | (c.changePort ? 0x02 : 0);
  return v;
}

export function decodeChangeRequestValue(v: Uint8Array): ChangeRequest {
  if (v.length !== 4) throw new DecodeError('bad-length', `CHANGE-REQUEST: ${v.length} bytes`);
  return { changeIp: (v[3]! & 0x04) !== 0, changePort: (v[3]! & 0x02) !== 0 };
}

/** RESPONSE-PORT value (RFC 5780 §7.5): | Port u16 | Reserved u16 (zero) |. */
export function encodeResponsePortValue(port: number): Uint8Array {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`RESPONSE-PORT: bad port ${port}`);
  return Uint8Array.of(port >> 8, port & 0xff, 0, 0);
}

export function decodeResponsePortValue(v: Uint8Array): number {
  if (v.length !== 4) throw new DecodeError('bad-length', `RESPONSE-PORT: ${v.length} bytes`);
  const port = u16(v, 0);
  if (port === 0) throw new DecodeError('bad-value', 'RESPONSE-PORT: port 0');
  return port;
}

export function encodeText(s: string, what: string): Uint8Array {
  const b = utf8Encoder.encode(s);
  if (b.length > MAX_TEXT_BYTES) throw new RangeError(`${what}: ${b.length} bytes (at most ${MAX_TEXT_BYTES})`);
  return b;
}

export function decodeText(v: Uint8Array, what: string): string {
  if (v.length > MAX_TEXT_BYTES) throw new DecodeError('oversized', `${what}: ${v.length} bytes`);
  try {
    return utf8.decode(v);
  } catch {
    throw new DecodeError('bad-value', `${what}: not UTF-8`);
  }
}
