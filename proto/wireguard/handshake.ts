// Noise_IKpsk2 handshake of the WireGuard paper (section 5.4.2-5.4.5), as pure functions.
// mac1/mac2 are filled in by macs.ts; indices, timers and state storage belong to the caller.
import { CONSTRUCTION, IDENTIFIER, KEY_LEN, LABEL_COOKIE, LABEL_MAC1, TIMESTAMP_LEN } from './constants.js';
import { HandshakeError, aeadDecrypt, aeadEncrypt, dh, dhGenerate, hash, kdf } from './noise-crypto.js';
import { decodeInitiation, decodeResponse, encodeInitiation, encodeResponse } from './messages.js';

const TEXT = new TextEncoder();
const INITIAL_CHAIN_KEY = hash(TEXT.encode(CONSTRUCTION));
const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, TEXT.encode(IDENTIFIER));
const EMPTY = new Uint8Array(0);
const ZERO_KEY = new Uint8Array(KEY_LEN);
const ZERO_MAC = new Uint8Array(16);

export { HandshakeError };

/** Our static identity, with the keys derived from it that every handshake needs. */
export interface LocalIdentity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** HASH(LABEL_MAC1 || our public key): verifies mac1 of messages sent to us. */
  mac1Key: Uint8Array;
  /** HASH(LABEL_COOKIE || our public key): encrypts the cookie replies we send. */
  cookieKey: Uint8Array;
}

/** What we know about a peer, precomputed once per peer. */
export interface RemoteIdentity {
  publicKey: Uint8Array;
  presharedKey: Uint8Array;
  /** DH(our static private, their static public), fixed for the peer's lifetime. */
  staticStatic: Uint8Array;
  /** HASH(LABEL_MAC1 || their public key): mac1 of messages we send them. */
  mac1Key: Uint8Array;
  /** HASH(LABEL_COOKIE || their public key): decrypts cookie replies they send us. */
  cookieKey: Uint8Array;
}

export function localIdentity(privateKey: Uint8Array, publicKey: Uint8Array): LocalIdentity {
  return {
    privateKey, publicKey,
    mac1Key: hash(TEXT.encode(LABEL_MAC1), publicKey),
    cookieKey: hash(TEXT.encode(LABEL_COOKIE), publicKey),
  };
}

export function remoteIdentity(local: LocalIdentity, publicKey: Uint8Array, presharedKey?: Uint8Array): RemoteIdentity {
  return {
    publicKey,
    presharedKey: presharedKey ?? ZERO_KEY,
    staticStatic: dh(local.privateKey, publicKey),
    mac1Key: hash(TEXT.encode(LABEL_MAC1), publicKey),
    cookieKey: hash(TEXT.encode(LABEL_COOKIE), publicKey),
  };
}

/** Transport keys from a completed handshake. */
export interface SessionKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
}

export interface InitiatorState {
  localIndex: number;
  ephemeralPrivate: Uint8Array;
  chainKey: Uint8Array;
  hash: Uint8Array;
}

/** Builds a handshake initiation (mac fields zero). */
export function createInitiation(
  local: LocalIdentity, remote: RemoteIdentity, localIndex: number, timestamp: Uint8Array,
): { message: Uint8Array; state: InitiatorState } {
  let c = INITIAL_CHAIN_KEY;
  let h = hash(INITIAL_HASH, remote.publicKey);
  const e = dhGenerate();
  [c] = kdf(1, c, e.publicKey) as [Uint8Array];
  h = hash(h, e.publicKey);
  let k: Uint8Array;
  [c, k] = kdf(2, c, dh(e.privateKey, remote.publicKey)) as [Uint8Array, Uint8Array];
  const encryptedStatic = aeadEncrypt(k, local.publicKey, h);
  h = hash(h, encryptedStatic);
  [c, k] = kdf(2, c, remote.staticStatic) as [Uint8Array, Uint8Array];
  const encryptedTimestamp = aeadEncrypt(k, timestamp, h);
  h = hash(h, encryptedTimestamp);
  const message = encodeInitiation({
    sender: localIndex, ephemeral: e.publicKey, encryptedStatic, encryptedTimestamp, mac1: ZERO_MAC, mac2: ZERO_MAC,
  });
  return { message, state: { localIndex, ephemeralPrivate: e.privateKey, chainKey: c, hash: h } };
}

/** What a responder learns from a valid initiation, before it decides to answer. */
export interface ConsumedInitiation {
  remoteIndex: number;
  remoteStatic: Uint8Array;
  remoteEphemeral: Uint8Array;
  timestamp: Uint8Array;
  chainKey: Uint8Array;
  hash: Uint8Array;
}

/**
 * Decrypts an initiation sent to us. `staticStaticFor` returns DH(our private, their public) for a
 * known peer, or undefined: unknown peers are refused before any further work.
 */
export function consumeInitiation(
  local: LocalIdentity, message: Uint8Array, staticStaticFor: (remoteStatic: Uint8Array) => Uint8Array | undefined,
): ConsumedInitiation {
  const m = decodeInitiation(message);
  let c = INITIAL_CHAIN_KEY;
  let h = hash(INITIAL_HASH, local.publicKey);
  [c] = kdf(1, c, m.ephemeral) as [Uint8Array];
  h = hash(h, m.ephemeral);
  let k: Uint8Array;
  [c, k] = kdf(2, c, dh(local.privateKey, m.ephemeral)) as [Uint8Array, Uint8Array];
  const remoteStatic = aeadDecrypt(k, m.encryptedStatic, h);
  h = hash(h, m.encryptedStatic);
  const ss = staticStaticFor(remoteStatic);
  if (!ss) throw new HandshakeError('initiation from an unknown peer');
  [c, k] = kdf(2, c, ss) as [Uint8Array, Uint8Array];
  const timestamp = aeadDecrypt(k, m.encryptedTimestamp, h);
  if (timestamp.length !== TIMESTAMP_LEN) throw new HandshakeError('bad timestamp length');
  h = hash(h, m.encryptedTimestamp);
  return {
    remoteIndex: m.sender, remoteStatic, remoteEphemeral: Uint8Array.from(m.ephemeral), timestamp, chainKey: c, hash: h,
  };
}

/** Builds the response to a consumed initiation (mac fields zero) and derives the session keys. */
export function createResponse(
  consumed: ConsumedInitiation, remote: RemoteIdentity, localIndex: number,
): { message: Uint8Array; keys: SessionKeys } {
  let c = consumed.chainKey;
  let h = consumed.hash;
  const e = dhGenerate();
  [c] = kdf(1, c, e.publicKey) as [Uint8Array];
  h = hash(h, e.publicKey);
  [c] = kdf(1, c, dh(e.privateKey, consumed.remoteEphemeral)) as [Uint8Array];
  [c] = kdf(1, c, dh(e.privateKey, remote.publicKey)) as [Uint8Array];
  const [c2, tau, k] = kdf(3, c, remote.presharedKey) as [Uint8Array, Uint8Array, Uint8Array];
  c = c2;
  h = hash(h, tau);
  const encryptedNothing = aeadEncrypt(k, EMPTY, h);
  h = hash(h, encryptedNothing);
  const message = encodeResponse({
    sender: localIndex, receiver: consumed.remoteIndex, ephemeral: e.publicKey, encryptedNothing,
    mac1: ZERO_MAC, mac2: ZERO_MAC,
  });
  const [receiveKey, sendKey] = kdf(2, c, EMPTY) as [Uint8Array, Uint8Array];
  e.privateKey.fill(0);
  return { message, keys: { sendKey, receiveKey } };
}

/** The receiver index of a response, to find the initiator state it answers. */
export function responseReceiver(message: Uint8Array): number {
  return decodeResponse(message).receiver;
}

/** Completes the handshake as initiator; throws HandshakeError if the response does not verify. */
export function consumeResponse(
  local: LocalIdentity, remote: RemoteIdentity, state: InitiatorState, message: Uint8Array,
): { remoteIndex: number; keys: SessionKeys } {
  const m = decodeResponse(message);
  if (m.receiver !== state.localIndex) throw new HandshakeError('response for another handshake');
  let c = state.chainKey;
  let h = state.hash;
  [c] = kdf(1, c, m.ephemeral) as [Uint8Array];
  h = hash(h, m.ephemeral);
  [c] = kdf(1, c, dh(state.ephemeralPrivate, m.ephemeral)) as [Uint8Array];
  [c] = kdf(1, c, dh(local.privateKey, m.ephemeral)) as [Uint8Array];
  const [c2, tau, k] = kdf(3, c, remote.presharedKey) as [Uint8Array, Uint8Array, Uint8Array];
  c = c2;
  h = hash(h, tau);
  aeadDecrypt(k, m.encryptedNothing, h);
  const [sendKey, receiveKey] = kdf(2, c, EMPTY) as [Uint8Array, Uint8Array];
  return { remoteIndex: m.sender, keys: { sendKey, receiveKey } };
}
