// Noise_IK_25519_ChaChaPoly_BLAKE2s: the control channel's handshake (docs/security.md). The
// initiator (agent, admin CLI, relay) knows the coordinator's static key before it sends anything;
// its own static key travels encrypted in message 1, so the coordinator learns who is calling
// (a node's static key is its node key) and both sides end with transport keys bound to both.
//
//   prologue   "pinhole control v1"
//   <- s
//   -> e, es, s, ss    msg1 = e.pub [32] | enc(s.pub) [48] | enc(payload) [len+16]
//   <- e, ee, se       msg2 = e.pub [32] | enc(payload) [len+16]
//
// The same primitives as the data plane's handshake (noise-crypto.ts: HASH = BLAKE2s,
// HKDF = the paper's KDF, AEAD = ChaCha20-Poly1305 with a zero nonce: every handshake key is used
// for exactly one encryption). Pure: no sockets, no clocks.
import { KEY_LEN, TAG_LEN } from '../wireguard/constants.js';
import {
  HandshakeError, aeadDecrypt, aeadEncrypt, dh, dhGenerate, equalConstantTime, hash, kdf,
} from '../wireguard/noise-crypto.js';

const PROTOCOL_NAME = new TextEncoder().encode('Noise_IK_25519_ChaChaPoly_BLAKE2s');
export const CONTROL_PROLOGUE = new TextEncoder().encode('pinhole control v1');
/** msg1 without its payload: e.pub and the encrypted static key. */
export const MSG1_OVERHEAD = KEY_LEN + KEY_LEN + TAG_LEN + TAG_LEN;
export const MSG2_OVERHEAD = KEY_LEN + TAG_LEN;

/** Both directions' transport keys and the handshake hash (a channel binding). */
export interface SessionKeys {
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  handshakeHash: Uint8Array;
}

interface SymmetricState {
  ck: Uint8Array;
  h: Uint8Array;
}

const H0 = hash(PROTOCOL_NAME); // the name is 33 bytes > HASHLEN, so it is hashed
const H_PROLOGUE = hash(H0, CONTROL_PROLOGUE);
/** The last responder key's initial h: a coordinator answers every handshake with one or two keys. */
let lastResponder: { key: Uint8Array; h: Uint8Array } | null = null;

function initialState(responderStatic: Uint8Array): SymmetricState {
  if (!lastResponder || !equalBytes(lastResponder.key, responderStatic)) {
    lastResponder = { key: Uint8Array.from(responderStatic), h: hash(H_PROLOGUE, responderStatic) };
  }
  // Never mutated in place: mixKey and the hash steps replace ck and h with new arrays.
  return { ck: H0, h: lastResponder.h };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function mixKey(st: SymmetricState, dhOut: Uint8Array): Uint8Array {
  const [ck, k] = kdf(2, st.ck, dhOut);
  st.ck = ck!;
  return k!;
}

function encryptAndHash(st: SymmetricState, k: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const ct = aeadEncrypt(k, plaintext, st.h);
  st.h = hash(st.h, ct);
  return ct;
}

function decryptAndHash(st: SymmetricState, k: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const pt = aeadDecrypt(k, ciphertext, st.h);
  st.h = hash(st.h, ciphertext);
  return pt;
}

function split(st: SymmetricState, initiator: boolean): SessionKeys {
  const [k1, k2] = kdf(2, st.ck, new Uint8Array(0));
  return initiator
    ? { sendKey: k1!, recvKey: k2!, handshakeHash: st.h }
    : { sendKey: k2!, recvKey: k1!, handshakeHash: st.h };
}

/** The initiator between message 1 and message 2. */
export interface InitiatorPending {
  st: SymmetricState;
  ePrivate: Uint8Array;
  sPrivate: Uint8Array;
}

export function initiatorMessage1(
  responderStatic: Uint8Array, staticPrivate: Uint8Array, staticPublic: Uint8Array, payload: Uint8Array,
  ephemeral = dhGenerate(),
): { msg1: Uint8Array; pending: InitiatorPending } {
  const st = initialState(responderStatic);
  st.h = hash(st.h, ephemeral.publicKey);
  let k = mixKey(st, dh(ephemeral.privateKey, responderStatic));
  const encStatic = encryptAndHash(st, k, staticPublic);
  k = mixKey(st, dh(staticPrivate, responderStatic));
  const encPayload = encryptAndHash(st, k, payload);
  const msg1 = new Uint8Array(KEY_LEN + encStatic.length + encPayload.length);
  msg1.set(ephemeral.publicKey, 0);
  msg1.set(encStatic, KEY_LEN);
  msg1.set(encPayload, KEY_LEN + encStatic.length);
  return { msg1, pending: { st, ePrivate: ephemeral.privateKey, sPrivate: staticPrivate } };
}

export function initiatorReadMessage2(pending: InitiatorPending, msg2: Uint8Array): { payload: Uint8Array; keys: SessionKeys } {
  if (msg2.length < MSG2_OVERHEAD) throw new HandshakeError('handshake reply too short');
  const { st } = pending;
  const re = msg2.subarray(0, KEY_LEN);
  st.h = hash(st.h, re);
  mixKey(st, dh(pending.ePrivate, re));
  const k = mixKey(st, dh(pending.sPrivate, re));
  const payload = decryptAndHash(st, k, msg2.subarray(KEY_LEN));
  return { payload, keys: split(st, true) };
}

/** The responder after message 1: who called, what they said, and what is needed to answer. */
export interface ResponderPending {
  st: SymmetricState;
  initiatorStatic: Uint8Array;
  initiatorEphemeral: Uint8Array;
  payload: Uint8Array;
  /** Which of the responder's static keys the initiator used (a rotation serves two). */
  keyIndex: number;
}

/**
 * Reads message 1 under each of the responder's static key pairs in turn (at most two, during a
 * key rotation); HandshakeError when none opens it (garbage, or a key this server does not hold).
 */
export function responderReadMessage1(
  msg1: Uint8Array, statics: ReadonlyArray<{ privateKey: Uint8Array; publicKey: Uint8Array }>,
): ResponderPending {
  if (msg1.length < MSG1_OVERHEAD) throw new HandshakeError('handshake message too short');
  const ie = msg1.subarray(0, KEY_LEN);
  const encStatic = msg1.subarray(KEY_LEN, KEY_LEN + KEY_LEN + TAG_LEN);
  const encPayload = msg1.subarray(KEY_LEN + KEY_LEN + TAG_LEN);
  for (let i = 0; i < statics.length; i++) {
    const s = statics[i]!;
    const st = initialState(s.publicKey);
    st.h = hash(st.h, ie);
    let k: Uint8Array;
    let initiatorStatic: Uint8Array;
    try {
      k = mixKey(st, dh(s.privateKey, ie));
      initiatorStatic = decryptAndHash(st, k, encStatic);
    } catch {
      continue; // not encrypted to this key
    }
    k = mixKey(st, dh(s.privateKey, initiatorStatic));
    const payload = decryptAndHash(st, k, encPayload);
    return { st, initiatorStatic, initiatorEphemeral: Uint8Array.from(ie), payload, keyIndex: i };
  }
  throw new HandshakeError('handshake not addressed to any key this coordinator holds');
}

export function responderMessage2(pending: ResponderPending, payload: Uint8Array, ephemeral = dhGenerate()): { msg2: Uint8Array; keys: SessionKeys } {
  const { st } = pending;
  st.h = hash(st.h, ephemeral.publicKey);
  mixKey(st, dh(ephemeral.privateKey, pending.initiatorEphemeral));
  const k = mixKey(st, dh(ephemeral.privateKey, pending.initiatorStatic));
  const encPayload = encryptAndHash(st, k, payload);
  const msg2 = new Uint8Array(KEY_LEN + encPayload.length);
  msg2.set(ephemeral.publicKey, 0);
  msg2.set(encPayload, KEY_LEN);
  return { msg2, keys: split(st, false) };
}

/** True when two handshake hashes match (tests; a channel binding compare). */
export function sameHandshake(a: SessionKeys, b: SessionKeys): boolean {
  return equalConstantTime(a.handshakeHash, b.handshakeHash);
}
