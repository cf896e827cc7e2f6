// Disco: the small messages agents exchange to find a direct path to each other. They share the
// agent's one UDP socket with WireGuard and STUN (and travel through relays as ordinary packets),
// so every disco packet starts with a magic prefix that neither of the others can start with.
// Payloads are sealed with NaCl box under the two nodes' disco keys: with the key the two share
// (crypto_box_beforenm, computed once per peer by the agent: agent/magicsock/disco-key.ts), box is
// libsodium's secretbox (XSalsa20-Poly1305), which is what tweetnacl's box.after did before.
import { sodium } from '../sodium.js';
import { DecodeError } from '../errors.js';
import { copyBytes } from '../bytes.js';

/**
 * A disco packet on the wire:
 *
 *   magic "PHdsc\x01" [6] | sender disco public key [32] | nonce [24] | box(payload) [payload + 16]
 *
 * The first byte 'P' (0x50) is not a WireGuard type (1–4), and STUN's first two bits are 00
 * while 0x50's are 01, so the three never collide on one socket.
 *
 * Payload (the plaintext inside the box), integers big-endian:
 *
 *   type u8 | version u8 (1) | sent-at u64 | body
 *   0x01 ping           txid [12] | sender node key [32]
 *   0x02 pong           txid [12] | observed source: address [16] | port u16
 *   0x03 call-me-maybe  endpoints: (address [16] | port u16) × n, n ≤ MAX_CALL_ENDPOINTS
 *   0x04 birthday       nat u8 | phase u8 | sockets u16 | round u32 | public endpoint: address [16] | port u16
 *   0x05 features       flags u32 | (later fields; ignored, at most MAX_FEATURES_EXTRA bytes)
 *
 * features (sent through the relay with each call-me-maybe, and once in answer to the peer's):
 * what the sender accepts from this peer beyond plain WireGuard. Bit 0 (FEATURE_RELAY_TRAINS):
 * a WireGuard message that comes through a relay may carry a train of IP packets back to back
 * (agent/wireguard/relay-train.ts). Unknown bits are ignored. Agents older than the message
 * refuse it as 'bad-type' and so never announce anything: their peers send them plain WireGuard.
 *
 * birthday (sent through the relay, see agent/magicsock/birthday-plan.ts): the sender's NAT
 * mapping kind (0 unknown, 1 easy = endpoint-independent, 2 hard = endpoint-dependent), the phase
 * (0 offer: "here is my NAT kind, shall we try?", 1 go: "my sockets are open, spray now", 2 stop:
 * "done or given up"), how many sockets the hard side opens (0..MAX_BIRTHDAY_SOCKETS), and the
 * attempt's round id (both sides echo it, so a late packet of an old round is ignored), and the
 * sender's public (STUN-reflexive) endpoint: the hard side's sockets ping the easy side's, the
 * easy side sprays the hard side's IP.
 *
 * Addresses are 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d). An all-zero address means
 * "not seen over UDP" (a ping that came through a relay).
 *
 * sent-at (version 1): the sender's clock in microseconds since the Unix epoch, strictly increasing
 * per sender (DiscoClock). It sits inside the box, so only the sender can set it; the receiver
 * keeps a per-sender window (replay-window.ts) and refuses a value it has seen, one far behind the
 * newest, or one far from its own clock: a captured packet re-sent from a spoofed source is refused.
 * Version 0 packets (no sent-at) are refused as 'bad-type'.
 */
export const DISCO_MAGIC = Uint8Array.from([0x50, 0x48, 0x64, 0x73, 0x63, 0x01]);
export const DISCO_KEY_LEN = 32;
export const DISCO_NONCE_LEN = 24;
export const DISCO_HEADER_LEN = DISCO_MAGIC.length + DISCO_KEY_LEN + DISCO_NONCE_LEN;
export const TXID_LEN = 12;
export const MAX_CALL_ENDPOINTS = 32;
const ENDPOINT_LEN = 18;
/** type u8 | version u8 | sent-at u64. */
const PAYLOAD_HEADER_LEN = 10;
/** NaCl box adds a 16-byte Poly1305 tag. */
const BOX_OVERHEAD = 16;
/** The largest payload we produce (a full call-me-maybe); anything longer is refused. */
const MAX_PAYLOAD = PAYLOAD_HEADER_LEN + MAX_CALL_ENDPOINTS * ENDPOINT_LEN;
export const MAX_DISCO_PACKET = DISCO_HEADER_LEN + MAX_PAYLOAD + BOX_OVERHEAD;

export const DISCO_TYPE = { PING: 0x01, PONG: 0x02, CALL_ME_MAYBE: 0x03, BIRTHDAY: 0x04, FEATURES: 0x05 } as const;
/** features flag: "a relayed WireGuard message to me may carry a train of packets". */
export const FEATURE_RELAY_TRAINS = 1;
/** Bytes a later version may append to a features body (ignored here; more is refused). */
export const MAX_FEATURES_EXTRA = 60;
/** The most sockets a birthday attempt may ask the hard side to open. */
export const MAX_BIRTHDAY_SOCKETS = 1024;
const BIRTHDAY_BODY_LEN = 8 + ENDPOINT_LEN;
export const BIRTHDAY_NATS = ['unknown', 'easy', 'hard'] as const;
export type BirthdayNat = (typeof BIRTHDAY_NATS)[number];
export const BIRTHDAY_PHASES = ['offer', 'go', 'stop'] as const;
export type BirthdayPhase = (typeof BIRTHDAY_PHASES)[number];
export const DISCO_VERSION = 1;

/** An endpoint as disco carries it: 16 address bytes (IPv4-mapped for IPv4) and a port. */
export interface DiscoEndpoint {
  address: Uint8Array;
  port: number;
}

export type DiscoMessage =
  | { type: 'ping'; txid: Uint8Array; nodeKey: Uint8Array }
  | { type: 'pong'; txid: Uint8Array; src: DiscoEndpoint }
  | { type: 'call-me-maybe'; endpoints: DiscoEndpoint[] }
  | { type: 'birthday'; nat: BirthdayNat; phase: BirthdayPhase; sockets: number; round: number; public: DiscoEndpoint }
  | { type: 'features'; flags: number };

/** A decoded payload: the message and its sender's sent-at (microseconds, see the header comment). */
export interface DiscoEnvelope {
  sentAt: number;
  msg: DiscoMessage;
}

/** The largest sent-at we write or accept: integers above 2^53 would lose precision in a number. */
const MAX_SENT_AT = Number.MAX_SAFE_INTEGER;

/**
 * A sender's sent-at source: microseconds since the epoch, strictly increasing even when two
 * messages fall in one microsecond or the wall clock steps back a little.
 */
export class DiscoClock {
  private last = 0;
  constructor(private readonly nowMs: () => number = Date.now) {}
  next(): number {
    const t = Math.floor(this.nowMs() * 1000);
    this.last = t > this.last ? t : this.last + 1;
    return this.last;
  }
}

/** True if the datagram carries the disco magic (cheap: called for every non-WireGuard datagram). */
export function isDiscoPacket(buf: Uint8Array, off = 0, len = buf.length - off): boolean {
  if (len < DISCO_HEADER_LEN + BOX_OVERHEAD + 2) return false; // (version 0 was 2 bytes shorter: still disco, refused on open)
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (buf[off + i] !== DISCO_MAGIC[i]) return false;
  return true;
}

/** The sender's disco public key (a copy), from a packet isDiscoPacket accepted. */
export function discoSender(buf: Uint8Array): Uint8Array {
  if (!isDiscoPacket(buf)) throw new DecodeError('short', 'not a disco packet');
  return copyBytes(buf, DISCO_MAGIC.length, DISCO_MAGIC.length + DISCO_KEY_LEN);
}

export function encodeDiscoPayload(msg: DiscoMessage, sentAt: number): Uint8Array {
  if (!Number.isSafeInteger(sentAt) || sentAt < 0) throw new RangeError('disco sent-at: a non-negative safe integer');
  const out = encodeBody(msg);
  out[1] = DISCO_VERSION;
  new DataView(out.buffer, out.byteOffset, out.byteLength).setBigUint64(2, BigInt(sentAt));
  return out;
}

function encodeBody(msg: DiscoMessage): Uint8Array {
  const H = PAYLOAD_HEADER_LEN;
  switch (msg.type) {
    case 'ping': {
      if (msg.txid.length !== TXID_LEN || msg.nodeKey.length !== 32) throw new RangeError('ping: txid is 12 bytes, node key 32');
      const out = new Uint8Array(H + TXID_LEN + 32);
      out[0] = DISCO_TYPE.PING;
      out.set(msg.txid, H);
      out.set(msg.nodeKey, H + TXID_LEN);
      return out;
    }
    case 'pong': {
      if (msg.txid.length !== TXID_LEN) throw new RangeError('pong: txid is 12 bytes');
      const out = new Uint8Array(H + TXID_LEN + ENDPOINT_LEN);
      out[0] = DISCO_TYPE.PONG;
      out.set(msg.txid, H);
      writeEndpoint(out, H + TXID_LEN, msg.src);
      return out;
    }
    case 'call-me-maybe': {
      const eps = msg.endpoints.slice(0, MAX_CALL_ENDPOINTS);
      const out = new Uint8Array(H + eps.length * ENDPOINT_LEN);
      out[0] = DISCO_TYPE.CALL_ME_MAYBE;
      eps.forEach((e, i) => writeEndpoint(out, H + i * ENDPOINT_LEN, e));
      return out;
    }
    case 'birthday': {
      const nat = BIRTHDAY_NATS.indexOf(msg.nat);
      const phase = BIRTHDAY_PHASES.indexOf(msg.phase);
      if (nat < 0 || phase < 0) throw new RangeError('birthday: unknown nat kind or phase');
      if (!Number.isInteger(msg.sockets) || msg.sockets < 0 || msg.sockets > MAX_BIRTHDAY_SOCKETS) throw new RangeError(`birthday: sockets 0..${MAX_BIRTHDAY_SOCKETS}`);
      if (!Number.isInteger(msg.round) || msg.round < 0 || msg.round > 0xffffffff) throw new RangeError('birthday: round is a u32');
      const out = new Uint8Array(H + BIRTHDAY_BODY_LEN);
      out[0] = DISCO_TYPE.BIRTHDAY;
      const v = new DataView(out.buffer);
      v.setUint8(H, nat);
      v.setUint8(H + 1, phase);
      v.setUint16(H + 2, msg.sockets);
      v.setUint32(H + 4, msg.round);
      writeEndpoint(out, H + 8, msg.public);
      return out;
    }
    case 'features': {
      if (!Number.isInteger(msg.flags) || msg.flags < 0 || msg.flags > 0xffffffff) throw new RangeError('features: flags is a u32');
      const out = new Uint8Array(H + 4);
      out[0] = DISCO_TYPE.FEATURES;
      new DataView(out.buffer).setUint32(H, msg.flags);
      return out;
    }
  }
}

export function decodeDiscoPayload(p: Uint8Array): DiscoEnvelope {
  const H = PAYLOAD_HEADER_LEN;
  if (p.length < 2) throw new DecodeError('short', 'disco payload shorter than its header');
  if (p.length > MAX_PAYLOAD) throw new DecodeError('oversized', `disco payload of ${p.length} bytes`);
  if (p[1] !== DISCO_VERSION) throw new DecodeError('bad-type', `disco version ${p[1]}`);
  if (p.length < H) throw new DecodeError('short', 'disco payload shorter than its header');
  const sentAt = Number(new DataView(p.buffer, p.byteOffset, p.byteLength).getBigUint64(2));
  if (sentAt > MAX_SENT_AT) throw new DecodeError('bad-value', 'disco sent-at beyond 2^53');
  const body = p.length - H;
  switch (p[0]) {
    case DISCO_TYPE.PING:
      if (body !== TXID_LEN + 32) throw new DecodeError('bad-length', `disco ping of ${p.length} bytes`);
      return { sentAt, msg: { type: 'ping', txid: copyBytes(p, H, H + TXID_LEN), nodeKey: copyBytes(p, H + TXID_LEN, p.length) } };
    case DISCO_TYPE.PONG:
      if (body !== TXID_LEN + ENDPOINT_LEN) throw new DecodeError('bad-length', `disco pong of ${p.length} bytes`);
      return { sentAt, msg: { type: 'pong', txid: copyBytes(p, H, H + TXID_LEN), src: readEndpoint(p, H + TXID_LEN) } };
    case DISCO_TYPE.CALL_ME_MAYBE: {
      if (body % ENDPOINT_LEN !== 0) throw new DecodeError('bad-length', `call-me-maybe of ${p.length} bytes`);
      const endpoints: DiscoEndpoint[] = [];
      for (let off = H; off < p.length; off += ENDPOINT_LEN) endpoints.push(readEndpoint(p, off));
      return { sentAt, msg: { type: 'call-me-maybe', endpoints } };
    }
    case DISCO_TYPE.BIRTHDAY: {
      if (body !== BIRTHDAY_BODY_LEN) throw new DecodeError('bad-length', `disco birthday of ${p.length} bytes`);
      const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
      const nat = BIRTHDAY_NATS[v.getUint8(H)];
      const phase = BIRTHDAY_PHASES[v.getUint8(H + 1)];
      const sockets = v.getUint16(H + 2);
      if (nat === undefined) throw new DecodeError('bad-value', `birthday nat kind ${v.getUint8(H)}`);
      if (phase === undefined) throw new DecodeError('bad-value', `birthday phase ${v.getUint8(H + 1)}`);
      if (sockets > MAX_BIRTHDAY_SOCKETS) throw new DecodeError('bad-value', `birthday of ${sockets} sockets`);
      return { sentAt, msg: { type: 'birthday', nat, phase, sockets, round: v.getUint32(H + 4), public: readEndpoint(p, H + 8) } };
    }
    case DISCO_TYPE.FEATURES:
      if (body < 4 || body > 4 + MAX_FEATURES_EXTRA) throw new DecodeError('bad-length', `disco features of ${p.length} bytes`);
      return { sentAt, msg: { type: 'features', flags: new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(H) } };
    default:
      throw new DecodeError('bad-type', `disco message type ${p[0]}`);
  }
}

/** Seals a payload from us (our disco secret) to the peer (its disco public key, via the shared key). */
export function sealDisco(payload: Uint8Array, senderPublic: Uint8Array, sharedKey: Uint8Array): Uint8Array {
  const out = new Uint8Array(DISCO_HEADER_LEN + payload.length + BOX_OVERHEAD);
  out.set(DISCO_MAGIC, 0);
  out.set(senderPublic, DISCO_MAGIC.length);
  const nonce = out.subarray(DISCO_MAGIC.length + DISCO_KEY_LEN, DISCO_HEADER_LEN);
  sodium().randombytes_buf(nonce);
  sodium().crypto_secretbox_easy(out.subarray(DISCO_HEADER_LEN), payload, nonce, sharedKey);
  return out;
}

/** Opens a packet with the shared key of (our secret, its sender); DecodeError if it fails to open. */
export function openDisco(packet: Uint8Array, sharedKey: Uint8Array): DiscoEnvelope {
  if (!isDiscoPacket(packet)) throw new DecodeError('short', 'not a disco packet');
  if (packet.length > MAX_DISCO_PACKET) throw new DecodeError('oversized', `disco packet of ${packet.length} bytes`);
  const nonce = packet.subarray(DISCO_MAGIC.length + DISCO_KEY_LEN, DISCO_HEADER_LEN);
  const boxed = packet.subarray(DISCO_HEADER_LEN);
  if (boxed.length < BOX_OVERHEAD) throw new DecodeError('bad-box', `disco packet of ${packet.length} bytes: shorter than its box`);
  const opened = new Uint8Array(boxed.length - BOX_OVERHEAD);
  if (!sodium().crypto_secretbox_open_easy(opened, boxed, nonce, sharedKey)) throw new DecodeError('bad-box', 'disco packet failed to open');
  return decodeDiscoPayload(opened);
}

function writeEndpoint(out: Uint8Array, off: number, e: DiscoEndpoint): void {
  if (e.address.length !== 16 || !Number.isInteger(e.port) || e.port < 0 || e.port > 65535) throw new RangeError('disco endpoint: 16-byte address and a port');
  out.set(e.address, off);
  out[off + 16] = e.port >> 8;
  out[off + 17] = e.port & 0xff;
}

function readEndpoint(p: Uint8Array, off: number): DiscoEndpoint {
  return { address: copyBytes(p, off, off + 16), port: (p[off + 16]! << 8) | p[off + 17]! };
}
