// Relay frames: what a client and the relay say over one byte stream (a WebSocket carrying a
// byte stream; frames may be split across or packed into WebSocket messages). The relay reads only
// the frame header and the destination key of `send`: packet bytes are WireGuard/disco ciphertext.
import { DecodeError } from '../errors.js';

/**
 * Every frame:
 *
 *   type u8 | length u32be | payload (length bytes, at most MAX_FRAME_PAYLOAD)
 *
 * Payloads by type (keys are 32-byte X25519 node public keys, integers big-endian):
 *
 *   0x01 server-key   relay → client   version u8 | relay public key [32] | relay challenge [32]
 *   0x02 client-info  client → relay   version u8 | node public key [32] | client nonce [32] | node proof [16]
 *   0x03 server-info  relay → client   keepalive ms u32 | idle timeout ms u32 | rate bytes/s u32 (0 = none) | burst bytes u32
 *                                      | relay proof [16]
 *   0x04 send         client → relay   flags u8 | dst node key [32] | packet
 *   0x05 recv         relay → client   src node key [32] | packet
 *   0x06 keepalive    both ways        (empty)
 *   0x07 peer-gone    relay → client   node key [32] | reason u8 (1 disconnected, 2 not connected here)
 *   0x08 ping         both ways        data [8]
 *   0x09 pong         both ways        data [8] (echo of the ping's)
 *   0x0a notice       relay → client   code u8 | UTF-8 text (≤ 1024 bytes); sent before the relay closes
 *
 * send flags: bit 0 = priority. Clients set it on disco frames (ping/pong/call-me-maybe): the relay
 * queues them ahead of data and never drops them to make room for data; a priority packet over
 * MAX_PRIORITY_PACKET bytes is demoted to the data lane (and counted). Other bits are zero.
 *
 * Handshake (version 2), both sides proving their static key with one shared secret
 * K = HASH(label || DH(node, relay)) (BLAKE2s, keyed BLAKE2s-128 as MAC; auth.ts):
 *   1. relay → server-key: its key and a fresh challenge. The client compares the key with the one
 *      the netmap published and closes on a mismatch, before sending anything.
 *   2. client → client-info: node key, a fresh client nonce, node proof = MAC(K, "client" ||
 *      challenge || nonce || node key || relay key).
 *   3. relay → server-info: relay proof = MAC(K, "server" || challenge || nonce || node key ||
 *      relay key). Only the holder of the relay's private key can compute K for this node; the
 *      client sends no data frame before this proof verified.
 */
export const FRAME = {
  SERVER_KEY: 0x01,
  CLIENT_INFO: 0x02,
  SERVER_INFO: 0x03,
  SEND: 0x04,
  RECV: 0x05,
  KEEPALIVE: 0x06,
  PEER_GONE: 0x07,
  PING: 0x08,
  PONG: 0x09,
  NOTICE: 0x0a,
} as const;

/** The HTTP path a relay upgrades to WebSocket at (anything else answers 404). */
export const RELAY_PATH = '/relay';
export const RELAY_PROTOCOL_VERSION = 2;
export const FRAME_HEADER_LEN = 5;
/** Largest payload accepted; a frame announcing more is DecodeError('oversized') at its header. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;
export const NODE_KEY_LEN = 32;
export const CHALLENGE_LEN = 32;
export const PROOF_LEN = 16;
export const CLIENT_NONCE_LEN = 32;
export const SERVER_INFO_LEN = 16 + PROOF_LEN;
export const CLIENT_INFO_LEN = 1 + NODE_KEY_LEN + CLIENT_NONCE_LEN + PROOF_LEN;
/** Largest packet the relay keeps in the priority lane (disco messages are ~100-300 bytes). */
export const MAX_PRIORITY_PACKET = 1024;
export const PING_LEN = 8;
export const SEND_HEADER_LEN = 1 + NODE_KEY_LEN;
export const RECV_HEADER_LEN = NODE_KEY_LEN;
/** Largest packet a send frame can carry. */
export const MAX_PACKET_LEN = MAX_FRAME_PAYLOAD - SEND_HEADER_LEN;
export const MAX_NOTICE_TEXT = 1024;
export const SEND_FLAG_PRIORITY = 0x01;

export const PEER_GONE_REASON = { disconnected: 1, 'not-here': 2 } as const;
export type PeerGoneReason = keyof typeof PEER_GONE_REASON;

/** Why the relay is about to close a connection (notice frame codes). */
export const NOTICE = {
  unauthenticated: 1,
  'not-authorized': 2,
  oversized: 3,
  'protocol-error': 4,
  replaced: 5,
  'idle-timeout': 6,
  'shutting-down': 7,
  'authorizer-unavailable': 8,
  /** The client did not read what the relay had for it within the write timeout. */
  'write-timeout': 9,
} as const;
export type NoticeName = keyof typeof NOTICE;

export function noticeName(code: number): NoticeName | 'unknown' {
  for (const [name, c] of Object.entries(NOTICE)) if (c === code) return name as NoticeName;
  return 'unknown';
}

export type RelayFrame =
  | { type: 'server-key'; version: number; serverKey: Uint8Array; challenge: Uint8Array }
  | { type: 'client-info'; version: number; nodeKey: Uint8Array; clientNonce: Uint8Array; proof: Uint8Array }
  | { type: 'server-info'; keepaliveMs: number; idleTimeoutMs: number; rateBytesPerSec: number; rateBurstBytes: number; relayProof: Uint8Array }
  | { type: 'send'; priority: boolean; dst: Uint8Array; data: Uint8Array }
  | { type: 'recv'; src: Uint8Array; data: Uint8Array }
  | { type: 'keepalive' }
  | { type: 'peer-gone'; nodeKey: Uint8Array; reason: PeerGoneReason }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'notice'; code: number; message: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

function frameOf(type: number, payloadLen: number): Uint8Array {
  if (payloadLen > MAX_FRAME_PAYLOAD) throw new RangeError(`relay frame payload of ${payloadLen} bytes (max ${MAX_FRAME_PAYLOAD})`);
  const f = new Uint8Array(FRAME_HEADER_LEN + payloadLen);
  writeHeader(f, 0, type, payloadLen);
  return f;
}

function writeHeader(out: Uint8Array, off: number, type: number, len: number): void {
  out[off] = type;
  out[off + 1] = len >>> 24;
  out[off + 2] = (len >>> 16) & 0xff;
  out[off + 3] = (len >>> 8) & 0xff;
  out[off + 4] = len & 0xff;
}

function checkLen(b: Uint8Array, len: number, what: string): void {
  if (b.length !== len) throw new RangeError(`${what} must be ${len} bytes, not ${b.length}`);
}

/** Encodes any frame into a fresh buffer (header included). */
export function encodeRelayFrame(f: RelayFrame): Uint8Array {
  switch (f.type) {
    case 'server-key': {
      checkLen(f.serverKey, NODE_KEY_LEN, 'relay key');
      checkLen(f.challenge, CHALLENGE_LEN, 'challenge');
      const out = frameOf(FRAME.SERVER_KEY, 1 + NODE_KEY_LEN + CHALLENGE_LEN);
      out[5] = f.version;
      out.set(f.serverKey, 6);
      out.set(f.challenge, 6 + NODE_KEY_LEN);
      return out;
    }
    case 'client-info': {
      checkLen(f.nodeKey, NODE_KEY_LEN, 'node key');
      checkLen(f.clientNonce, CLIENT_NONCE_LEN, 'client nonce');
      checkLen(f.proof, PROOF_LEN, 'proof');
      const out = frameOf(FRAME.CLIENT_INFO, CLIENT_INFO_LEN);
      out[5] = f.version;
      out.set(f.nodeKey, 6);
      out.set(f.clientNonce, 6 + NODE_KEY_LEN);
      out.set(f.proof, 6 + NODE_KEY_LEN + CLIENT_NONCE_LEN);
      return out;
    }
    case 'server-info': {
      checkLen(f.relayProof, PROOF_LEN, 'relay proof');
      const out = frameOf(FRAME.SERVER_INFO, SERVER_INFO_LEN);
      const v = new DataView(out.buffer);
      v.setUint32(5, f.keepaliveMs);
      v.setUint32(9, f.idleTimeoutMs);
      v.setUint32(13, f.rateBytesPerSec);
      v.setUint32(17, f.rateBurstBytes);
      out.set(f.relayProof, 21);
      return out;
    }
    case 'send': {
      const out = new Uint8Array(FRAME_HEADER_LEN + SEND_HEADER_LEN + f.data.length);
      writeSendFrame(out, 0, f.dst, f.data, f.priority);
      return out;
    }
    case 'recv': {
      checkLen(f.src, NODE_KEY_LEN, 'node key');
      const out = frameOf(FRAME.RECV, RECV_HEADER_LEN + f.data.length);
      out.set(f.src, 5);
      out.set(f.data, 5 + NODE_KEY_LEN);
      return out;
    }
    case 'keepalive':
      return frameOf(FRAME.KEEPALIVE, 0);
    case 'peer-gone': {
      checkLen(f.nodeKey, NODE_KEY_LEN, 'node key');
      const out = frameOf(FRAME.PEER_GONE, NODE_KEY_LEN + 1);
      out.set(f.nodeKey, 5);
      out[5 + NODE_KEY_LEN] = PEER_GONE_REASON[f.reason];
      return out;
    }
    case 'ping':
    case 'pong': {
      checkLen(f.data, PING_LEN, `${f.type} data`);
      const out = frameOf(f.type === 'ping' ? FRAME.PING : FRAME.PONG, PING_LEN);
      out.set(f.data, 5);
      return out;
    }
    case 'notice': {
      let text = utf8Encoder.encode(f.message);
      if (text.length > MAX_NOTICE_TEXT) text = utf8Encoder.encode(f.message.slice(0, MAX_NOTICE_TEXT / 4));
      const out = frameOf(FRAME.NOTICE, 1 + text.length);
      out[5] = f.code;
      out.set(text, 6);
      return out;
    }
  }
}

/**
 * Writes a send frame at out[off] (the client's hot path: frames go straight into a batch
 * buffer) and returns its length: 5 + 33 + data.length.
 */
export function writeSendFrame(out: Uint8Array, off: number, dst: Uint8Array, data: Uint8Array, priority: boolean): number {
  checkLen(dst, NODE_KEY_LEN, 'node key');
  const payloadLen = SEND_HEADER_LEN + data.length;
  if (payloadLen > MAX_FRAME_PAYLOAD) throw new RangeError(`relay packet of ${data.length} bytes (max ${MAX_PACKET_LEN})`);
  writeHeader(out, off, FRAME.SEND, payloadLen);
  out[off + 5] = priority ? SEND_FLAG_PRIORITY : 0;
  out.set(dst, off + 6);
  out.set(data, off + 6 + NODE_KEY_LEN);
  return FRAME_HEADER_LEN + payloadLen;
}

/** Writes a recv frame at out[off] and returns its length: 5 + 32 + data.length. */
export function writeRecvFrame(out: Uint8Array, off: number, src: Uint8Array, data: Uint8Array): number {
  checkLen(src, NODE_KEY_LEN, 'node key');
  const payloadLen = RECV_HEADER_LEN + data.length;
  if (payloadLen > MAX_FRAME_PAYLOAD) throw new RangeError(`relay packet of ${data.length} bytes (max ${MAX_FRAME_PAYLOAD - RECV_HEADER_LEN})`);
  writeHeader(out, off, FRAME.RECV, payloadLen);
  out.set(src, off + FRAME_HEADER_LEN);
  out.set(data, off + FRAME_HEADER_LEN + NODE_KEY_LEN);
  return FRAME_HEADER_LEN + payloadLen;
}

/**
 * The relay's forwarding step without a copy: rewrites a whole send frame (header included) into
 * the recv frame for its destination, in place, and returns it (a view starting one byte later):
 *
 *   send: | 04 | len u32 | flags | dst [32] | packet |
 *   recv:      | 05 | len-1 u32 | src [32]  | packet |
 *
 * The caller must own `sendFrame`: its bytes are overwritten.
 */
export function sendFrameToRecvInPlace(sendFrame: Uint8Array, src: Uint8Array): Uint8Array {
  const payloadLen = sendFrame.length - FRAME_HEADER_LEN - 1;
  writeHeader(sendFrame, 1, FRAME.RECV, payloadLen);
  sendFrame.set(src, 1 + FRAME_HEADER_LEN);
  return sendFrame.subarray(1);
}

/**
 * Decodes one frame's payload. Keys and data are views into `payload`. Throws DecodeError:
 * 'bad-type' (unknown type), 'bad-length', 'bad-value'.
 */
export function decodeRelayFrame(type: number, payload: Uint8Array): RelayFrame {
  const len = payload.length;
  if (len > MAX_FRAME_PAYLOAD) throw new DecodeError('oversized', `relay frame payload of ${len} bytes`);
  const need = (n: number, what: string): void => {
    if (len !== n) throw new DecodeError('bad-length', `relay ${what}: ${len} bytes, expected ${n}`);
  };
  switch (type) {
    case FRAME.SERVER_KEY:
      need(1 + NODE_KEY_LEN + CHALLENGE_LEN, 'server-key');
      return { type: 'server-key', version: payload[0]!, serverKey: payload.subarray(1, 33), challenge: payload.subarray(33, 65) };
    case FRAME.CLIENT_INFO:
      need(CLIENT_INFO_LEN, 'client-info');
      return { type: 'client-info', version: payload[0]!, nodeKey: payload.subarray(1, 33), clientNonce: payload.subarray(33, 65), proof: payload.subarray(65, 81) };
    case FRAME.SERVER_INFO: {
      need(SERVER_INFO_LEN, 'server-info');
      const v = new DataView(payload.buffer, payload.byteOffset, 16);
      return {
        type: 'server-info', keepaliveMs: v.getUint32(0), idleTimeoutMs: v.getUint32(4), rateBytesPerSec: v.getUint32(8), rateBurstBytes: v.getUint32(12),
        relayProof: payload.subarray(16, 16 + PROOF_LEN),
      };
    }
    case FRAME.SEND: {
      if (len < SEND_HEADER_LEN) throw new DecodeError('bad-length', `relay send: ${len} bytes`);
      const flags = payload[0]!;
      if ((flags & ~SEND_FLAG_PRIORITY) !== 0) throw new DecodeError('bad-value', `relay send: unknown flags 0x${flags.toString(16)}`);
      return { type: 'send', priority: flags !== 0, dst: payload.subarray(1, 33), data: payload.subarray(33) };
    }
    case FRAME.RECV:
      if (len < RECV_HEADER_LEN) throw new DecodeError('bad-length', `relay recv: ${len} bytes`);
      return { type: 'recv', src: payload.subarray(0, 32), data: payload.subarray(32) };
    case FRAME.KEEPALIVE:
      need(0, 'keepalive');
      return { type: 'keepalive' };
    case FRAME.PEER_GONE: {
      need(NODE_KEY_LEN + 1, 'peer-gone');
      const r = payload[NODE_KEY_LEN];
      const reason = r === 1 ? 'disconnected' : r === 2 ? 'not-here' : null;
      if (!reason) throw new DecodeError('bad-value', `relay peer-gone: reason ${r}`);
      return { type: 'peer-gone', nodeKey: payload.subarray(0, 32), reason };
    }
    case FRAME.PING:
    case FRAME.PONG:
      need(PING_LEN, type === FRAME.PING ? 'ping' : 'pong');
      return { type: type === FRAME.PING ? 'ping' : 'pong', data: payload };
    case FRAME.NOTICE: {
      if (len < 1) throw new DecodeError('bad-length', 'relay notice: empty');
      if (len > 1 + MAX_NOTICE_TEXT) throw new DecodeError('oversized', `relay notice: ${len} bytes`);
      let message: string;
      try {
        message = utf8.decode(payload.subarray(1));
      } catch {
        throw new DecodeError('bad-value', 'relay notice: text is not UTF-8');
      }
      return { type: 'notice', code: payload[0]!, message };
    }
    default:
      throw new DecodeError('bad-type', `relay frame type 0x${type.toString(16)}`);
  }
}
