// Logout: tells the coordinator to delete this node, proving possession of the node key the same
// way registration does. (POST /api/v1/deregister {nodeKey, challenge, proof}; the proof covers
// the fields ['deregister', nodeKey].)
import { z } from 'zod';
import { makeProof } from '../../proto/control/proof.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
import { coordinatorCall, fetchServerInfo } from './register.js';

export function deregistrationFields(nodeKey: string): string[] {
  return ['deregister', nodeKey];
}

export async function deregisterNode(opts: { coordinatorUrl: string; nodePrivate: Uint8Array; nodeKey: string; signal?: AbortSignal; socketMark?: number }): Promise<void> {
  const info = await fetchServerInfo(opts.coordinatorUrl, opts.signal, opts.socketMark);
  const proof = makeProof(opts.nodePrivate, decodeKey(info.serverKey), info.challenge, deregistrationFields(opts.nodeKey));
  await coordinatorCall(opts.coordinatorUrl, 'POST', '/api/v1/deregister', z.unknown(), {
    nodeKey: opts.nodeKey, challenge: info.challenge, proof,
  }, opts.signal, opts.socketMark);
}
