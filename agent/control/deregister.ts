// Logout: tells the coordinator to delete this node, inside a control channel opened with the
// node key (POST /api/v1/deregister {nodeKey}; the coordinator accepts only the channel's own key).
import * as z from 'zod/mini';
import { decodeKey } from '../../proto/wireguard/keys.js';
import { controlCall, markedConnector } from './control-channel.js';

export async function deregisterNode(opts: {
  coordinatorUrl: string; serverKey: string; nodePrivate: Uint8Array; nodeKey: string; socketMark?: number; signal?: AbortSignal;
}): Promise<void> {
  await controlCall({
    url: opts.coordinatorUrl, serverKey: decodeKey(opts.serverKey), staticPrivate: opts.nodePrivate,
    ...(opts.socketMark ? { connect: markedConnector(opts.socketMark)! } : {}), ...(opts.signal ? { signal: opts.signal } : {}),
  }, 'POST', '/api/v1/deregister', z.unknown(), { nodeKey: opts.nodeKey });
}
