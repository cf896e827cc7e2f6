// STUN messages (RFC 8489): header, attribute list, FINGERPRINT; pure functions, no I/O.
// The one UDP socket of an agent carries WireGuard, disco and STUN: isStunMessage tells STUN apart.
import { copyBytes } from '../bytes.js';
import { randomFillSync } from 'node:crypto';
import { DecodeError } from '../errors.js';
import { crc32 } from './crc32.js';
import {
  ATTR, FINGERPRINT_XOR, MAGIC_COOKIE,
  decodeAddressValue, decodeChangeRequestValue, decodeErrorCodeValue, decodeResponsePortValue, decodeText,
  decodeUnknownAttributesValue, encodeAddressValue, encodeChangeRequestValue, encodeErrorCodeValue,
  encodeResponsePortValue, encodeText, encodeUnknownAttributesValue,
  type ChangeRequest, type StunAddress, type StunEndpoint, type StunErrorCode,
} from './attributes.js';

export const HEADER_LEN = 20;
export const TRANSACTION_ID_LEN = 12;
/** Longest message accepted: STUN over UDP must fit a path MTU (RFC 8489 §6.1); 2 KiB is generous. */
export const MAX_MESSAGE_LEN = 2048;

export const METHOD_BINDING = 0x001;

export type StunClass = 'request' | 'indication' | 'success' | 'error';
const CLASS_BITS: Record<StunClass, number> = { request: 0x000, indication: 0x010, success: 0x100, error: 0x110 };
const CLASS_OF = ['request', 'indication', 'success', 'error'] as const;

/** A message as the encoder takes it: only the attributes that are set are written. */
export interface StunMessage {
  /** 12 bits; 0x001 = Binding. */
  method: number;
  class: StunClass;
  /** 12 bytes. */
  transactionId: Uint8Array;
  xorMappedAddress?: StunEndpoint;
  mappedAddress?: StunEndpoint;
  changeRequest?: ChangeRequest;
  responsePort?: number;
  errorCode?: StunErrorCode;
  unknownAttributes?: number[];
  responseOrigin?: StunEndpoint;
  otherAddress?: StunEndpoint;
  /** Length in bytes of a PADDING attribute (RFC 5780 §7.6), zeros. */
  padding?: number;
  software?: string;
}

export interface DecodedStunMessage extends StunMessage {
  xorMappedAddress?: StunAddress;
  mappedAddress?: StunAddress;
  responseOrigin?: StunAddress;
  otherAddress?: StunAddress;
  /** A FINGERPRINT attribute was present (a wrong one throws DecodeError('bad-fingerprint')). */
  fingerprint: boolean;
  /** Comprehension-required types (< 0x8000) this codec does not read: a server answers 420. */
  unknownRequired: number[];
}

/** Comprehension-required attributes the decoder reads or knowingly ignores. */
const UNDERSTOOD = new Set<number>([
  ATTR.MAPPED_ADDRESS, ATTR.XOR_MAPPED_ADDRESS, ATTR.CHANGE_REQUEST, ATTR.ERROR_CODE,
  ATTR.UNKNOWN_ATTRIBUTES, ATTR.RESPONSE_PORT, ATTR.PADDING,
]);

/** Message type: the method's 12 bits with the class bits C1 (bit 8) and C0 (bit 4) interleaved. */
export function messageType(method: number, cls: StunClass): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | CLASS_BITS[cls];
}

function splitMessageType(t: number): { method: number; cls: StunClass } {
  const method = (t & 0x000f) | ((t >> 1) & 0x0070) | ((t >> 2) & 0x0f80);
  const cls = CLASS_OF[((t >> 4) & 0x01) | ((t >> 7) & 0x02)]!;
  return { method, cls };
}

/** A fresh random 96-bit transaction id. */
export function newTransactionId(): Uint8Array {
  return randomFillSync(new Uint8Array(TRANSACTION_ID_LEN));
}

/**
 * True if buf[off, off+len) is a STUN message: first two bits zero, the magic cookie at offset 4,
 * and a length field that matches the datagram. The length check keeps a WireGuard packet whose
 * receiver index happens to equal the cookie from being taken for STUN.
 */
export function isStunMessage(buf: Uint8Array, off = 0, len = buf.length - off): boolean {
  if (len < HEADER_LEN || off < 0 || off + len > buf.length) return false;
  if ((buf[off]! & 0xc0) !== 0) return false;
  if (buf[off + 4] !== 0x21 || buf[off + 5] !== 0x12 || buf[off + 6] !== 0xa4 || buf[off + 7] !== 0x42) return false;
  const bodyLen = (buf[off + 2]! << 8) | buf[off + 3]!;
  return (bodyLen & 3) === 0 && HEADER_LEN + bodyLen === len;
}

/** The 16 bytes that XOR-MAPPED-ADDRESS is masked with: magic cookie || transaction id. */
function xorKeyOf(transactionId: Uint8Array): Uint8Array {
  const k = new Uint8Array(16);
  k[0] = 0x21; k[1] = 0x12; k[2] = 0xa4; k[3] = 0x42;
  k.set(transactionId, 4);
  return k;
}

/**
 * Header and attributes (RFC 8489 §5, §14):
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |0 0|     STUN Message Type     |   Message Length (after 20)   |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                  Magic Cookie = 0x2112A442                    |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                   Transaction ID (96 bits)                    |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |         Attr Type             |     Attr Length (unpadded)    |  repeated; each value is
 *  |                  Value, zero-padded to 4 bytes              ...  padded to a multiple of 4
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |  FINGERPRINT 0x8028 |  4  |  CRC-32(everything before) ^ 0x5354554e  (last, optional)
 *
 * Type bits: M11..M7 C1 M6..M4 C0 M3..M0 (Binding request 0x0001, success 0x0101, error 0x0111).
 * The CRC covers the header with a length that already counts the FINGERPRINT attribute.
 */
export function encodeStunMessage(msg: StunMessage, opts: { fingerprint?: boolean } = {}): Uint8Array {
  if (msg.transactionId.length !== TRANSACTION_ID_LEN) throw new RangeError('STUN transaction id must be 12 bytes');
  const attrs: Array<[number, Uint8Array]> = [];
  const xorKey = xorKeyOf(msg.transactionId);
  if (msg.xorMappedAddress) attrs.push([ATTR.XOR_MAPPED_ADDRESS, encodeAddressValue(msg.xorMappedAddress, xorKey)]);
  if (msg.mappedAddress) attrs.push([ATTR.MAPPED_ADDRESS, encodeAddressValue(msg.mappedAddress, null)]);
  if (msg.changeRequest) attrs.push([ATTR.CHANGE_REQUEST, encodeChangeRequestValue(msg.changeRequest)]);
  if (msg.responsePort !== undefined) attrs.push([ATTR.RESPONSE_PORT, encodeResponsePortValue(msg.responsePort)]);
  if (msg.errorCode) attrs.push([ATTR.ERROR_CODE, encodeErrorCodeValue(msg.errorCode)]);
  if (msg.unknownAttributes) attrs.push([ATTR.UNKNOWN_ATTRIBUTES, encodeUnknownAttributesValue(msg.unknownAttributes)]);
  if (msg.responseOrigin) attrs.push([ATTR.RESPONSE_ORIGIN, encodeAddressValue(msg.responseOrigin, null)]);
  if (msg.otherAddress) attrs.push([ATTR.OTHER_ADDRESS, encodeAddressValue(msg.otherAddress, null)]);
  if (msg.padding !== undefined) attrs.push([ATTR.PADDING, new Uint8Array(msg.padding)]);
  if (msg.software !== undefined) attrs.push([ATTR.SOFTWARE, encodeText(msg.software, 'SOFTWARE')]);
  const fingerprint = opts.fingerprint ?? true;

  let bodyLen = 0;
  for (const [, v] of attrs) bodyLen += 4 + ((v.length + 3) & ~3);
  if (fingerprint) bodyLen += 8;
  if (HEADER_LEN + bodyLen > MAX_MESSAGE_LEN) throw new RangeError(`STUN message of ${HEADER_LEN + bodyLen} bytes is too long`);

  const out = new Uint8Array(HEADER_LEN + bodyLen);
  const view = new DataView(out.buffer);
  view.setUint16(0, messageType(msg.method, msg.class));
  view.setUint16(2, bodyLen);
  view.setUint32(4, MAGIC_COOKIE);
  out.set(msg.transactionId, 8);
  let at = HEADER_LEN;
  for (const [type, v] of attrs) {
    view.setUint16(at, type);
    view.setUint16(at + 2, v.length);
    out.set(v, at + 4);
    at += 4 + ((v.length + 3) & ~3);
  }
  if (fingerprint) {
    view.setUint16(at, ATTR.FINGERPRINT);
    view.setUint16(at + 2, 4);
    view.setUint32(at + 4, (crc32(out, 0, at) ^ FINGERPRINT_XOR) >>> 0);
  }
  return out;
}

/**
 * Decodes one whole datagram. Throws DecodeError: 'short', 'oversized', 'bad-type' (not STUN:
 * top bits or magic cookie), 'bad-length' (length field, attribute lengths), 'bad-value',
 * 'bad-fingerprint'. Only the first of repeated attributes counts (RFC 8489 §14).
 */
export function decodeStunMessage(buf: Uint8Array): DecodedStunMessage {
  if (buf.length < HEADER_LEN) throw new DecodeError('short', `STUN: ${buf.length} bytes`);
  if (buf.length > MAX_MESSAGE_LEN) throw new DecodeError('oversized', `STUN: ${buf.length} bytes`);
  if ((buf[0]! & 0xc0) !== 0) throw new DecodeError('bad-type', 'STUN: top two bits are not zero');
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (view.getUint32(4) !== MAGIC_COOKIE) throw new DecodeError('bad-type', 'STUN: no magic cookie');
  const bodyLen = view.getUint16(2);
  if ((bodyLen & 3) !== 0 || HEADER_LEN + bodyLen !== buf.length) {
    throw new DecodeError('bad-length', `STUN: length field ${bodyLen} for ${buf.length} bytes`);
  }
  const { method, cls } = splitMessageType(view.getUint16(0));
  // A copy: Buffer#slice is a view, and the agent decodes straight out of its reused receive slab.
  const transactionId = copyBytes(buf, 8, HEADER_LEN);
  const xorKey = xorKeyOf(transactionId);
  const msg: DecodedStunMessage = { method, class: cls, transactionId, fingerprint: false, unknownRequired: [] };
  const seen = new Set<number>();

  let at = HEADER_LEN;
  while (at < buf.length) {
    if (msg.fingerprint) throw new DecodeError('bad-value', 'STUN: attribute after FINGERPRINT');
    if (at + 4 > buf.length) throw new DecodeError('bad-length', 'STUN: truncated attribute header');
    const type = view.getUint16(at);
    const len = view.getUint16(at + 2);
    const next = at + 4 + ((len + 3) & ~3);
    if (next > buf.length) throw new DecodeError('bad-length', `STUN: attribute 0x${type.toString(16)} runs past the end`);
    const v = buf.subarray(at + 4, at + 4 + len);
    if (type === ATTR.FINGERPRINT) {
      if (len !== 4) throw new DecodeError('bad-length', `STUN: FINGERPRINT of ${len} bytes`);
      const want = (crc32(buf, 0, at) ^ FINGERPRINT_XOR) >>> 0;
      if (view.getUint32(at + 4) !== want) throw new DecodeError('bad-fingerprint', 'STUN: FINGERPRINT mismatch');
      msg.fingerprint = true;
    } else if (!seen.has(type)) {
      seen.add(type);
      readAttribute(msg, type, v, xorKey);
    }
    at = next;
  }
  return msg;
}

function readAttribute(msg: DecodedStunMessage, type: number, v: Uint8Array, xorKey: Uint8Array): void {
  switch (type) {
    case ATTR.XOR_MAPPED_ADDRESS: msg.xorMappedAddress = decodeAddressValue(v, xorKey, 'XOR-MAPPED-ADDRESS'); break;
    case ATTR.MAPPED_ADDRESS: msg.mappedAddress = decodeAddressValue(v, null, 'MAPPED-ADDRESS'); break;
    case ATTR.RESPONSE_ORIGIN: msg.responseOrigin = decodeAddressValue(v, null, 'RESPONSE-ORIGIN'); break;
    case ATTR.OTHER_ADDRESS: msg.otherAddress = decodeAddressValue(v, null, 'OTHER-ADDRESS'); break;
    case ATTR.CHANGE_REQUEST: msg.changeRequest = decodeChangeRequestValue(v); break;
    case ATTR.RESPONSE_PORT: msg.responsePort = decodeResponsePortValue(v); break;
    case ATTR.ERROR_CODE: msg.errorCode = decodeErrorCodeValue(v); break;
    case ATTR.UNKNOWN_ATTRIBUTES: msg.unknownAttributes = decodeUnknownAttributesValue(v); break;
    case ATTR.SOFTWARE: msg.software = decodeText(v, 'SOFTWARE'); break;
    case ATTR.PADDING: msg.padding = v.length; break;
    default:
      if (type < 0x8000 && !UNDERSTOOD.has(type)) msg.unknownRequired.push(type);
  }
}
