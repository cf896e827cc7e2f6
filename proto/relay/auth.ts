// Both ends of a relay connection prove their static key with one secret only they can compute:
//
//   K = HASH("pinhole relay proof v2" || DH(node, relay))          (BLAKE2s-256)
//   node proof  = MAC(K, "client" || challenge || nonce || node key || relay key)   (keyed BLAKE2s-128)
//   relay proof = MAC(K, "server" || challenge || nonce || node key || relay key)
//
// The relay's challenge makes the node proof single-use; the client's nonce does the same for the
// relay proof; the "client"/"server" labels keep one from being reflected as the other.
import { dh, equalConstantTime, hash, mac } from '../wireguard/noise-crypto.js';
import { CHALLENGE_LEN, CLIENT_NONCE_LEN, NODE_KEY_LEN, PROOF_LEN } from './frames.js';

const LABEL = new TextEncoder().encode('pinhole relay proof v2');
const CLIENT = new TextEncoder().encode('client');
const SERVER = new TextEncoder().encode('server');

/** The four inputs both proofs cover. */
export interface RelayHandshake {
  nodeKey: Uint8Array;
  relayKey: Uint8Array;
  challenge: Uint8Array;
  clientNonce: Uint8Array;
}

function wellFormed(h: RelayHandshake): boolean {
  return h.nodeKey.length === NODE_KEY_LEN && h.relayKey.length === NODE_KEY_LEN
    && h.challenge.length === CHALLENGE_LEN && h.clientNonce.length === CLIENT_NONCE_LEN;
}

/** null for a low-order peer key (DH gives all zeros). */
function sharedKey(privateKey: Uint8Array, peerPublic: Uint8Array): Uint8Array | null {
  try {
    return hash(LABEL, dh(privateKey, peerPublic));
  } catch {
    return null;
  }
}

function proofOf(k: Uint8Array, role: Uint8Array, h: RelayHandshake): Uint8Array {
  const input = new Uint8Array(role.length + CHALLENGE_LEN + CLIENT_NONCE_LEN + 2 * NODE_KEY_LEN);
  let at = 0;
  for (const part of [role, h.challenge, h.clientNonce, h.nodeKey, h.relayKey]) {
    input.set(part, at);
    at += part.length;
  }
  return mac(k, input);
}

/**
 * Keys for one connection, computed once by either side: the node with (node private, relay
 * public), the relay with (relay private, node public). null for malformed fields or a low-order key.
 */
export function relayHandshakeKey(privateKey: Uint8Array, peerPublic: Uint8Array, h: RelayHandshake): Uint8Array | null {
  if (!wellFormed(h)) return null;
  return sharedKey(privateKey, peerPublic);
}

/** Client side: the 16-byte node proof for client-info. */
export function makeNodeProof(k: Uint8Array, h: RelayHandshake): Uint8Array {
  return proofOf(k, CLIENT, h);
}

/** Relay side: the 16-byte relay proof for server-info. */
export function makeRelayProof(k: Uint8Array, h: RelayHandshake): Uint8Array {
  return proofOf(k, SERVER, h);
}

export function checkNodeProof(k: Uint8Array, h: RelayHandshake, proof: Uint8Array): boolean {
  return proof.length === PROOF_LEN && equalConstantTime(proofOf(k, CLIENT, h), proof);
}

export function checkRelayProof(k: Uint8Array, h: RelayHandshake, proof: Uint8Array): boolean {
  return proof.length === PROOF_LEN && equalConstantTime(proofOf(k, SERVER, h), proof);
}
