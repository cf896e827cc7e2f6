// WireGuard message codecs (paper section 5.4). All integers are little-endian.
//
// Initiation (148):  type=1 u8 | reserved[3] | sender u32 | ephemeral[32] | static[32+16]
//                    | timestamp[12+16] | mac1[16] | mac2[16]
// Response (92):     type=2 u8 | reserved[3] | sender u32 | receiver u32 | ephemeral[32]
//                    | empty[0+16] | mac1[16] | mac2[16]
// Cookie reply (64): type=3 u8 | reserved[3] | receiver u32 | nonce[24] | cookie[16+16]
// Transport (>=32):  type=4 u8 | reserved[3] | receiver u32 | counter u64 | packet[n+16]
//
// Decoders return views into the input (no copies) and throw DecodeError on bad input.
import { DecodeError } from '../errors.js';
import {
  COOKIE_REPLY_LEN, INITIATION_LEN, MESSAGE_COOKIE_REPLY, MESSAGE_INITIATION, MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT, RESPONSE_LEN, TRANSPORT_MIN_LEN,
} from './constants.js';

export interface Initiation {
  sender: number;
  ephemeral: Uint8Array;
  encryptedStatic: Uint8Array;
  encryptedTimestamp: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface Response {
  sender: number;
  receiver: number;
  ephemeral: Uint8Array;
  encryptedNothing: Uint8Array;
  mac1: Uint8Array;
  mac2: Uint8Array;
}

export interface CookieReply {
  receiver: number;
  nonce: Uint8Array;
  encryptedCookie: Uint8Array;
}

/** Offsets of mac1 and mac2: everything before mac1 is covered by mac1, before mac2 by mac2. */
export const INITIATION_MAC1_OFFSET = 116;
export const RESPONSE_MAC1_OFFSET = 60;

/**
 * The message type if the first four bytes look like a WireGuard header (type 1-4 then three
 * zero bytes), else 0. Used to tell WireGuard from disco and STUN on the shared UDP socket.
 */
export function messageType(buf: Uint8Array, off = 0, len: number = buf.length - off): number {
  if (len < 4) return 0;
  const t = buf[off]!;
  if (t < 1 || t > 4 || buf[off + 1] !== 0 || buf[off + 2] !== 0 || buf[off + 3] !== 0) return 0;
  return t;
}

function u32(buf: Uint8Array, off: number): number {
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24)) >>> 0;
}

function putU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v & 0xff;
  buf[off + 1] = (v >>> 8) & 0xff;
  buf[off + 2] = (v >>> 16) & 0xff;
  buf[off + 3] = (v >>> 24) & 0xff;
}

function expect(buf: Uint8Array, type: number, len: number, what: string): void {
  if (buf.length < len) throw new DecodeError('short', `${what}: ${buf.length} bytes, need ${len}`);
  if (buf.length > len) throw new DecodeError('oversized', `${what}: ${buf.length} bytes, expected ${len}`);
  if (messageType(buf) !== type) throw new DecodeError('bad-type', `${what}: bad type/reserved bytes`);
}

export function encodeInitiation(m: Initiation): Uint8Array {
  const b = new Uint8Array(INITIATION_LEN);
  b[0] = MESSAGE_INITIATION;
  putU32(b, 4, m.sender);
  b.set(m.ephemeral, 8);
  b.set(m.encryptedStatic, 40);
  b.set(m.encryptedTimestamp, 88);
  b.set(m.mac1, 116);
  b.set(m.mac2, 132);
  return b;
}

export function decodeInitiation(b: Uint8Array): Initiation {
  expect(b, MESSAGE_INITIATION, INITIATION_LEN, 'handshake initiation');
  return {
    sender: u32(b, 4),
    ephemeral: b.subarray(8, 40),
    encryptedStatic: b.subarray(40, 88),
    encryptedTimestamp: b.subarray(88, 116),
    mac1: b.subarray(116, 132),
    mac2: b.subarray(132, 148),
  };
}

export function encodeResponse(m: Response): Uint8Array {
  const b = new Uint8Array(RESPONSE_LEN);
  b[0] = MESSAGE_RESPONSE;
  putU32(b, 4, m.sender);
  putU32(b, 8, m.receiver);
  b.set(m.ephemeral, 12);
  b.set(m.encryptedNothing, 44);
  b.set(m.mac1, 60);
  b.set(m.mac2, 76);
  return b;
}

export function decodeResponse(b: Uint8Array): Response {
  expect(b, MESSAGE_RESPONSE, RESPONSE_LEN, 'handshake response');
  return {
    sender: u32(b, 4),
    receiver: u32(b, 8),
    ephemeral: b.subarray(12, 44),
    encryptedNothing: b.subarray(44, 60),
    mac1: b.subarray(60, 76),
    mac2: b.subarray(76, 92),
  };
}

export function encodeCookieReply(m: CookieReply): Uint8Array {
  const b = new Uint8Array(COOKIE_REPLY_LEN);
  b[0] = MESSAGE_COOKIE_REPLY;
  putU32(b, 4, m.receiver);
  b.set(m.nonce, 8);
  b.set(m.encryptedCookie, 32);
  return b;
}

export function decodeCookieReply(b: Uint8Array): CookieReply {
  expect(b, MESSAGE_COOKIE_REPLY, COOKIE_REPLY_LEN, 'cookie reply');
  return { receiver: u32(b, 4), nonce: b.subarray(8, 32), encryptedCookie: b.subarray(32, 64) };
}

/** Hot path: validate a transport message header in place; returns false instead of throwing. */
export function isTransportMessage(buf: Uint8Array, off: number, len: number): boolean {
  return len >= TRANSPORT_MIN_LEN && buf[off] === MESSAGE_TRANSPORT && buf[off + 1] === 0 &&
    buf[off + 2] === 0 && buf[off + 3] === 0;
}

export function transportReceiver(buf: Uint8Array, off: number): number {
  return u32(buf, off + 4);
}

/**
 * The 64-bit counter as a number, or -1 when it is at or beyond 2^53 (never legitimately reached:
 * such a packet is rejected like one past REJECT_AFTER_MESSAGES).
 */
export function transportCounter(buf: Uint8Array, off: number): number {
  const lo = u32(buf, off + 8);
  const hi = u32(buf, off + 12);
  if (hi >= 0x200000) return -1;
  return hi * 0x100000000 + lo;
}

/** Writes the 16-byte transport header in place. */
export function writeTransportHeader(buf: Uint8Array, off: number, receiver: number, counter: number): void {
  buf[off] = MESSAGE_TRANSPORT;
  buf[off + 1] = 0;
  buf[off + 2] = 0;
  buf[off + 3] = 0;
  putU32(buf, off + 4, receiver);
  putU32(buf, off + 8, counter >>> 0);
  putU32(buf, off + 12, Math.floor(counter / 0x100000000));
}
