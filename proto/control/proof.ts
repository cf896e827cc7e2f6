// Proof that a node holds the private half of its node key, without ever sending it: a MAC over
// the challenge and the request's identity fields, keyed by HASH(DH(node private, server public)).
// The relay recomputes it with DH(relay private, node public) (proto/relay/auth.ts). The control
// plane no longer uses it: its channel's Noise handshake proves the node key (noise-ik.ts).
import { dh, equalConstantTime, hash, mac } from '../wireguard/noise-crypto.js';

const LABEL = new TextEncoder().encode('pinhole control proof v1');

function proofKey(shared: Uint8Array): Uint8Array {
  return hash(LABEL, shared);
}

function transcript(challenge: string, fields: string[]): Uint8Array {
  return new TextEncoder().encode([challenge, ...fields].join('\n'));
}

/** Agent side. `fields` are the identity fields of the request, in a fixed order. */
export function makeProof(nodePrivate: Uint8Array, serverPublic: Uint8Array, challenge: string, fields: string[]): string {
  const key = proofKey(dh(nodePrivate, serverPublic));
  return Buffer.from(mac(key, transcript(challenge, fields))).toString('base64');
}

/** Coordinator side. */
export function checkProof(serverPrivate: Uint8Array, nodePublic: Uint8Array, challenge: string, fields: string[], proof: string): boolean {
  let key: Uint8Array;
  try {
    key = proofKey(dh(serverPrivate, nodePublic));
  } catch {
    return false; // low-order public key
  }
  const expected = mac(key, transcript(challenge, fields));
  const got = Buffer.from(proof, 'base64');
  return got.length === expected.length && equalConstantTime(expected, got);
}
