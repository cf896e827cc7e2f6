// Relay mesh frames: what two relays of one deployment say over one WebSocket at MESH_PATH. The
// framing is the client protocol's (type u8 | length u32be | payload, frame-reader.ts); the relay
// that is dialled opens with the client protocol's server-key frame (its key and a challenge).
import { DecodeError } from '../errors.js';
import { FRAME, FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, NODE_KEY_LEN, PROOF_LEN, CLIENT_NONCE_LEN, RECV_HEADER_LEN, SEND_FLAG_PRIORITY, writeRecvFrame } from './frames.js';

/**
 * Payloads by type (keys are 32-byte X25519 public keys, integers big-endian):
 *
 *   0x21 mesh-hello    dialer → dialled   version u8 | dialer relay key [32] | nonce [32] | key proof [16] | mesh proof [16]
 *   0x22 mesh-welcome  dialled → dialer   key proof [16] | mesh proof [16]
 *   0x23 presence      dialled → dialer   count u16 | count × (state u8 (1 connected, 0 gone) | node key [32]),
 *                                         count ≤ MAX_PRESENCE_ENTRIES
 *   0x24 forward       dialer → dialled   flags u8 | dst node key [32] | src node key [32] | packet
 *   0x25 forward-run   dialer → dialled   flags u8 | dst node key [32] | one or more recv frames for dst, whole
 *                                         (05 | len u32 | src node key [32] | packet), filling the payload exactly
 *   0x06 keepalive     both ways          (empty; the client protocol's)
 *
 * The dialled relay announces only its own clients, and delivers a forward frame only to its own
 * clients: a frame crosses the mesh at most once (no loops). forward puts src after dst so the
 * dialled relay turns it into the client protocol's recv frame in place (meshForwardToRecvInPlace).
 * forward flags: bit 0 = priority, as in the client's send frame.
 *
 * forward-run (protocol version 2) is what a dialer sends: the packets of one sender burst for one
 * destination, already in the client protocol's recv frames, so the dialled relay checks their
 * headers and queues the run for its client as it is: no rewrite, no copy, one queue entry. Version
 * 1 dialers send forward (one frame per packet, rewritten in place); the dialled side takes both.
 *
 * Handshake (proto/relay/mesh-auth.ts): the key proofs are the client protocol's node/relay
 * proofs (DH of the two relays' static keys); the mesh proofs are MACs under the shared mesh
 * credential over the same challenge, nonce and both keys.
 */
export const MESH_FRAME = {
  HELLO: 0x21,
  WELCOME: 0x22,
  PRESENCE: 0x23,
  FORWARD: 0x24,
  FORWARD_RUN: 0x25,
} as const;

/** The HTTP path relays upgrade to for the mesh. */
export const MESH_PATH = '/relay/mesh';
export const MESH_PROTOCOL_VERSION = 2;
/** The oldest dialer version a dialled relay accepts (1: no forward-run). */
export const MIN_MESH_PROTOCOL_VERSION = 1;
export const MESH_HELLO_LEN = 1 + NODE_KEY_LEN + CLIENT_NONCE_LEN + 2 * PROOF_LEN;
export const MESH_WELCOME_LEN = 2 * PROOF_LEN;
export const PRESENCE_ENTRY_LEN = 1 + NODE_KEY_LEN;
/** Entries in one presence frame (a snapshot is split into as many frames as it needs). */
export const MAX_PRESENCE_ENTRIES = 1024;
export const FORWARD_HEADER_LEN = 1 + 2 * NODE_KEY_LEN;
export const MAX_FORWARD_PACKET = MAX_FRAME_PAYLOAD - FORWARD_HEADER_LEN;
/** flags | dst: what precedes a forward-run's recv frames. */
export const RUN_HEADER_LEN = 1 + NODE_KEY_LEN;
/** A recv frame's bytes beyond its packet. */
export const RECV_FRAME_OVERHEAD = FRAME_HEADER_LEN + RECV_HEADER_LEN;
/** Largest packet a forward-run can carry (one recv frame in the run). */
export const MAX_RUN_PACKET = MAX_FRAME_PAYLOAD - RUN_HEADER_LEN - RECV_FRAME_OVERHEAD;

export interface PresenceEntry {
  connected: boolean;
  nodeKey: Uint8Array;
}

export type MeshFrame =
  | { type: 'mesh-hello'; version: number; relayKey: Uint8Array; nonce: Uint8Array; keyProof: Uint8Array; meshProof: Uint8Array }
  | { type: 'mesh-welcome'; keyProof: Uint8Array; meshProof: Uint8Array }
  | { type: 'presence'; entries: PresenceEntry[] }
  | { type: 'forward'; priority: boolean; dst: Uint8Array; src: Uint8Array; data: Uint8Array }
  | { type: 'forward-run'; priority: boolean; dst: Uint8Array; packets: Array<{ src: Uint8Array; data: Uint8Array }> };

function header(type: number, payloadLen: number): Uint8Array {
  if (payloadLen > MAX_FRAME_PAYLOAD) throw new RangeError(`mesh frame payload of ${payloadLen} bytes (max ${MAX_FRAME_PAYLOAD})`);
  const f = new Uint8Array(FRAME_HEADER_LEN + payloadLen);
  f[0] = type;
  new DataView(f.buffer).setUint32(1, payloadLen);
  return f;
}

function checkLen(b: Uint8Array, len: number, what: string): void {
  if (b.length !== len) throw new RangeError(`${what} must be ${len} bytes, not ${b.length}`);
}

/** Encodes a mesh frame (header included) into a fresh buffer. */
export function encodeMeshFrame(f: MeshFrame): Uint8Array {
  switch (f.type) {
    case 'mesh-hello': {
      checkLen(f.relayKey, NODE_KEY_LEN, 'relay key');
      checkLen(f.nonce, CLIENT_NONCE_LEN, 'nonce');
      checkLen(f.keyProof, PROOF_LEN, 'key proof');
      checkLen(f.meshProof, PROOF_LEN, 'mesh proof');
      const out = header(MESH_FRAME.HELLO, MESH_HELLO_LEN);
      out[5] = f.version;
      out.set(f.relayKey, 6);
      out.set(f.nonce, 6 + NODE_KEY_LEN);
      out.set(f.keyProof, 6 + NODE_KEY_LEN + CLIENT_NONCE_LEN);
      out.set(f.meshProof, 6 + NODE_KEY_LEN + CLIENT_NONCE_LEN + PROOF_LEN);
      return out;
    }
    case 'mesh-welcome': {
      checkLen(f.keyProof, PROOF_LEN, 'key proof');
      checkLen(f.meshProof, PROOF_LEN, 'mesh proof');
      const out = header(MESH_FRAME.WELCOME, MESH_WELCOME_LEN);
      out.set(f.keyProof, 5);
      out.set(f.meshProof, 5 + PROOF_LEN);
      return out;
    }
    case 'presence': {
      if (f.entries.length > MAX_PRESENCE_ENTRIES) throw new RangeError(`presence frame of ${f.entries.length} entries (max ${MAX_PRESENCE_ENTRIES})`);
      const out = header(MESH_FRAME.PRESENCE, 2 + f.entries.length * PRESENCE_ENTRY_LEN);
      out[5] = f.entries.length >>> 8;
      out[6] = f.entries.length & 0xff;
      let at = 7;
      for (const e of f.entries) {
        checkLen(e.nodeKey, NODE_KEY_LEN, 'node key');
        out[at] = e.connected ? 1 : 0;
        out.set(e.nodeKey, at + 1);
        at += PRESENCE_ENTRY_LEN;
      }
      return out;
    }
    case 'forward':
      return encodeForward(f.dst, f.src, f.data, f.priority);
    case 'forward-run': {
      if (f.packets.length === 0) throw new RangeError('forward-run of no packets');
      const len = f.packets.reduce((n, p) => n + RECV_FRAME_OVERHEAD + p.data.length, FRAME_HEADER_LEN + RUN_HEADER_LEN);
      if (len - FRAME_HEADER_LEN > MAX_FRAME_PAYLOAD) throw new RangeError(`forward-run of ${len} bytes`);
      const out = new Uint8Array(len);
      let at = writeRunHeader(out, 0, f.dst, f.priority);
      for (const p of f.packets) at += writeRecvFrame(out, at, p.src, p.data);
      setRunLength(out, 0, len);
      return out;
    }
  }
}

/**
 * Writes a forward-run's header at out[off] (its length set to no packets yet: grow it with
 * writeRecvFrame after it, then setRunLength) and returns FRAME_HEADER_LEN + RUN_HEADER_LEN.
 */
export function writeRunHeader(out: Uint8Array, off: number, dst: Uint8Array, priority: boolean): number {
  checkLen(dst, NODE_KEY_LEN, 'node key');
  out[off] = MESH_FRAME.FORWARD_RUN;
  out[off + 5] = priority ? SEND_FLAG_PRIORITY : 0;
  out.set(dst, off + 6);
  setRunLength(out, off, FRAME_HEADER_LEN + RUN_HEADER_LEN);
  return FRAME_HEADER_LEN + RUN_HEADER_LEN;
}

/** Sets the length of the forward-run at out[off] to `frameLen` bytes, header included. */
export function setRunLength(out: Uint8Array, off: number, frameLen: number): void {
  const payloadLen = frameLen - FRAME_HEADER_LEN;
  out[off + 1] = payloadLen >>> 24;
  out[off + 2] = (payloadLen >>> 16) & 0xff;
  out[off + 3] = (payloadLen >>> 8) & 0xff;
  out[off + 4] = payloadLen & 0xff;
}

/**
 * Checks a forward-run's payload without decoding it (the dialled relay's hot path): flags, then
 * recv frames that fill it exactly. Returns how many packets it carries, or -1 if it is malformed.
 */
export function forwardRunPackets(payload: Uint8Array): number {
  const len = payload.length;
  if (len < RUN_HEADER_LEN + RECV_FRAME_OVERHEAD || (payload[0]! & ~SEND_FLAG_PRIORITY) !== 0) return -1;
  let n = 0;
  for (let at = RUN_HEADER_LEN; at < len; n++) {
    if (len - at < RECV_FRAME_OVERHEAD || payload[at] !== FRAME.RECV) return -1;
    const l = ((payload[at + 1]! << 24) | (payload[at + 2]! << 16) | (payload[at + 3]! << 8) | payload[at + 4]!) >>> 0;
    if (l < RECV_HEADER_LEN || l > len - at - FRAME_HEADER_LEN) return -1;
    at += FRAME_HEADER_LEN + l;
  }
  return n;
}

/** A forward frame for `data` from `src` to `dst` (protocol 1; a protocol 2 dialer sends forward-runs). */
export function encodeForward(dst: Uint8Array, src: Uint8Array, data: Uint8Array, priority: boolean): Uint8Array {
  checkLen(dst, NODE_KEY_LEN, 'node key');
  checkLen(src, NODE_KEY_LEN, 'node key');
  if (data.length > MAX_FORWARD_PACKET) throw new RangeError(`mesh packet of ${data.length} bytes (max ${MAX_FORWARD_PACKET})`);
  const out = header(MESH_FRAME.FORWARD, FORWARD_HEADER_LEN + data.length);
  out[5] = priority ? SEND_FLAG_PRIORITY : 0;
  out.set(dst, 6);
  out.set(src, 6 + NODE_KEY_LEN);
  out.set(data, 6 + 2 * NODE_KEY_LEN);
  return out;
}

/**
 * The dialled relay's delivery step without a copy: rewrites a whole forward frame into the recv
 * frame for its destination, in place, and returns it (a view starting 33 bytes in):
 *
 *   forward: | 24 | len u32 | flags | dst [32] | src [32] | packet |
 *   recv:                          | 05 | len u32 | src [32] | packet |   (at offset 33)
 *
 * The caller must own `frame`: its bytes are overwritten.
 */
export function meshForwardToRecvInPlace(frame: Uint8Array): Uint8Array {
  const at = 1 + NODE_KEY_LEN;
  const payloadLen = frame.length - FRAME_HEADER_LEN - FORWARD_HEADER_LEN + NODE_KEY_LEN;
  frame[at] = 0x05; // FRAME.RECV
  frame[at + 1] = payloadLen >>> 24;
  frame[at + 2] = (payloadLen >>> 16) & 0xff;
  frame[at + 3] = (payloadLen >>> 8) & 0xff;
  frame[at + 4] = payloadLen & 0xff;
  return frame.subarray(at);
}

/**
 * Decodes one mesh frame's payload; keys and data are views into `payload`. Throws DecodeError
 * 'bad-type', 'bad-length', 'bad-value' or 'oversized'.
 */
export function decodeMeshFrame(type: number, payload: Uint8Array): MeshFrame {
  const len = payload.length;
  if (len > MAX_FRAME_PAYLOAD) throw new DecodeError('oversized', `mesh frame payload of ${len} bytes`);
  switch (type) {
    case MESH_FRAME.HELLO: {
      if (len !== MESH_HELLO_LEN) throw new DecodeError('bad-length', `mesh-hello: ${len} bytes, expected ${MESH_HELLO_LEN}`);
      const k = 1 + NODE_KEY_LEN;
      return {
        type: 'mesh-hello', version: payload[0]!, relayKey: payload.subarray(1, k), nonce: payload.subarray(k, k + CLIENT_NONCE_LEN),
        keyProof: payload.subarray(k + CLIENT_NONCE_LEN, k + CLIENT_NONCE_LEN + PROOF_LEN), meshProof: payload.subarray(k + CLIENT_NONCE_LEN + PROOF_LEN),
      };
    }
    case MESH_FRAME.WELCOME:
      if (len !== MESH_WELCOME_LEN) throw new DecodeError('bad-length', `mesh-welcome: ${len} bytes, expected ${MESH_WELCOME_LEN}`);
      return { type: 'mesh-welcome', keyProof: payload.subarray(0, PROOF_LEN), meshProof: payload.subarray(PROOF_LEN) };
    case MESH_FRAME.PRESENCE: {
      if (len < 2) throw new DecodeError('bad-length', `presence: ${len} bytes`);
      const count = (payload[0]! << 8) | payload[1]!;
      if (count > MAX_PRESENCE_ENTRIES) throw new DecodeError('oversized', `presence: ${count} entries (max ${MAX_PRESENCE_ENTRIES})`);
      if (len !== 2 + count * PRESENCE_ENTRY_LEN) throw new DecodeError('bad-length', `presence: ${len} bytes for ${count} entries`);
      const entries: PresenceEntry[] = [];
      for (let i = 0, at = 2; i < count; i++, at += PRESENCE_ENTRY_LEN) {
        const state = payload[at]!;
        if (state > 1) throw new DecodeError('bad-value', `presence: state ${state}`);
        entries.push({ connected: state === 1, nodeKey: payload.subarray(at + 1, at + PRESENCE_ENTRY_LEN) });
      }
      return { type: 'presence', entries };
    }
    case MESH_FRAME.FORWARD: {
      if (len < FORWARD_HEADER_LEN) throw new DecodeError('bad-length', `forward: ${len} bytes`);
      const flags = payload[0]!;
      if ((flags & ~SEND_FLAG_PRIORITY) !== 0) throw new DecodeError('bad-value', `forward: unknown flags 0x${flags.toString(16)}`);
      return {
        type: 'forward', priority: flags !== 0, dst: payload.subarray(1, 1 + NODE_KEY_LEN),
        src: payload.subarray(1 + NODE_KEY_LEN, FORWARD_HEADER_LEN), data: payload.subarray(FORWARD_HEADER_LEN),
      };
    }
    case MESH_FRAME.FORWARD_RUN: {
      if (forwardRunPackets(payload) < 0) throw new DecodeError('bad-value', `forward-run: malformed (${len} bytes)`);
      const packets: Array<{ src: Uint8Array; data: Uint8Array }> = [];
      for (let at = RUN_HEADER_LEN; at < len;) {
        const end = at + FRAME_HEADER_LEN + (((payload[at + 1]! << 24) | (payload[at + 2]! << 16) | (payload[at + 3]! << 8) | payload[at + 4]!) >>> 0);
        packets.push({ src: payload.subarray(at + FRAME_HEADER_LEN, at + RECV_FRAME_OVERHEAD), data: payload.subarray(at + RECV_FRAME_OVERHEAD, end) });
        at = end;
      }
      return { type: 'forward-run', priority: payload[0] !== 0, dst: payload.subarray(1, RUN_HEADER_LEN), packets };
    }
    default:
      throw new DecodeError('bad-type', `mesh frame type 0x${type.toString(16)}`);
  }
}
