// Mesh credential proofs: two relays prove they hold the deployment's shared mesh credential,
// bound to this connection's challenge and nonce and to both relays' static keys (whose own
// proofs are the client protocol's, auth.ts):
//
//   M = HASH("pinhole relay mesh v1" || credential)                            (BLAKE2s-256)
//   dialer proof  = MAC(M, "mesh-dialer" || challenge || nonce || dialer key || dialled key)
//   dialled proof = MAC(M, "mesh-dialled" || challenge || nonce || dialer key || dialled key)
import { equalConstantTime, hash, mac } from '../wireguard/noise-crypto.js';
import { CHALLENGE_LEN, CLIENT_NONCE_LEN, NODE_KEY_LEN, PROOF_LEN } from './frames.js';

const LABEL = new TextEncoder().encode('pinhole relay mesh v1');
const DIALER = new TextEncoder().encode('mesh-dialer');
const DIALLED = new TextEncoder().encode('mesh-dialled');

export interface MeshHandshake {
  dialerKey: Uint8Array;
  dialledKey: Uint8Array;
  challenge: Uint8Array;
  nonce: Uint8Array;
}

/** The MAC key both relays derive from the credential file's bytes. */
export function meshKeyFromCredential(credential: Uint8Array): Uint8Array {
  return hash(LABEL, credential);
}

function proof(meshKey: Uint8Array, role: Uint8Array, h: MeshHandshake): Uint8Array {
  if (h.dialerKey.length !== NODE_KEY_LEN || h.dialledKey.length !== NODE_KEY_LEN || h.challenge.length !== CHALLENGE_LEN || h.nonce.length !== CLIENT_NONCE_LEN) {
    throw new RangeError('mesh handshake fields have the wrong lengths');
  }
  const input = new Uint8Array(role.length + CHALLENGE_LEN + CLIENT_NONCE_LEN + 2 * NODE_KEY_LEN);
  let at = 0;
  for (const part of [role, h.challenge, h.nonce, h.dialerKey, h.dialledKey]) {
    input.set(part, at);
    at += part.length;
  }
  return mac(meshKey, input);
}

export function makeMeshProof(meshKey: Uint8Array, h: MeshHandshake, role: 'dialer' | 'dialled'): Uint8Array {
  return proof(meshKey, role === 'dialer' ? DIALER : DIALLED, h);
}

/** Constant-time comparison of a received mesh proof. */
export function checkMeshProof(meshKey: Uint8Array, h: MeshHandshake, role: 'dialer' | 'dialled', got: Uint8Array): boolean {
  return got.length === PROOF_LEN && equalConstantTime(makeMeshProof(meshKey, h, role), got);
}
