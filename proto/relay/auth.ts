// How a relay client proves it holds its node key: the control plane's proof (proto/control/
// proof.ts: a MAC under HASH(label || DH(node private, relay public))) over the relay's
// single-use challenge and fields that bind it to this relay and this node.
import { checkProof, makeProof } from '../control/proof.js';
import { CHALLENGE_LEN, NODE_KEY_LEN, PROOF_LEN } from './frames.js';

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

/** The identity fields the relay proof covers; 'relay' keeps it from being valid anywhere else. */
export function relayProofFields(nodeKey: Uint8Array, relayKey: Uint8Array): string[] {
  return ['relay', b64(nodeKey), b64(relayKey)];
}

/** Client side: the 16-byte proof for client-info. */
export function makeRelayProof(nodePrivate: Uint8Array, nodePublic: Uint8Array, relayPublic: Uint8Array, challenge: Uint8Array): Uint8Array {
  const text = makeProof(nodePrivate, relayPublic, b64(challenge), relayProofFields(nodePublic, relayPublic));
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** Relay side: false for a wrong proof, a wrong-sized field or a low-order node key. */
export function checkRelayProof(relayPrivate: Uint8Array, relayPublic: Uint8Array, nodePublic: Uint8Array, challenge: Uint8Array, proof: Uint8Array): boolean {
  if (nodePublic.length !== NODE_KEY_LEN || challenge.length !== CHALLENGE_LEN || proof.length !== PROOF_LEN) return false;
  return checkProof(relayPrivate, nodePublic, b64(challenge), relayProofFields(nodePublic, relayPublic), b64(proof));
}
