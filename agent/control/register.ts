// Registration: inside a control channel opened with the node key as the Noise static key (so the
// handshake is the proof of possession), POST /api/v1/register with the node's keys, hostname and
// offers. The coordinator key is pinned before anything is sent: from the registration on file, or
// for a first contact from the fingerprint the auth key (or --coordinator-key) carries.
import { isFingerprint, keyFingerprint, parseAuthKey } from '../../proto/control/coordinator-key.js';
import { RegisterResponse, type RegisterRequest, type SelfNode } from '../../proto/control/schemas.js';
import { decodeKey, encodeKey } from '../../proto/wireguard/keys.js';
import {
  CoordinatorKeyMismatchError, CoordinatorProtocolError, CoordinatorRefusedError, controlCall, markedConnector, resolvePinnedKey,
} from './control-channel.js';

export {
  CoordinatorKeyMismatchError, CoordinatorProtocolError, CoordinatorRefusedError, CoordinatorUnreachableError,
} from './control-channel.js';

/** The whole of one registration must fit the local API's 10 s patience. */
export const REGISTRATION_DEADLINE_MS = 9_000;

/** Nothing names the coordinator's key: the auth key predates fingerprints and no --coordinator-key. */
export class CoordinatorKeyUnknownError extends Error {
  override readonly name = 'CoordinatorKeyUnknownError';
}

export interface RegisterOptions {
  coordinatorUrl: string;
  nodePrivate: Uint8Array;
  nodeKey: string;
  discoKey: string;
  hostname: string;
  authKey?: string;
  /** The key on file for this coordinator (a re-registration), base64. */
  pinnedKey?: string;
  /** A fingerprint or a base64 key the user gave (--coordinator-key). */
  coordinatorKey?: string;
  /** Subnet routes and exit node this node offers (pending until approved on the coordinator). */
  advertiseRoutes?: string[];
  advertiseExitNode?: boolean;
  /** What the agent runs (platform-info.ts); left out, an older agent's registration. */
  platform?: { os: string; version: string };
  /** SO_MARK on the connections, so they stay out of an exit node's default route (socket-mark.ts). */
  socketMark?: number;
  signal?: AbortSignal;
}

export interface Registered {
  node: SelfNode;
  /** The coordinator key the registration went through (to pin), base64. */
  serverKey: string;
}

/**
 * The key to open the channel with: the pinned one; else a full key given by the user; else the
 * one the coordinator publishes whose fingerprint matches the user's or the auth key's.
 */
export async function keyToPin(opts: Pick<RegisterOptions, 'coordinatorUrl' | 'authKey' | 'pinnedKey' | 'coordinatorKey' | 'signal' | 'socketMark'>): Promise<Uint8Array> {
  if (opts.pinnedKey) return decodeKey(opts.pinnedKey);
  const given = opts.coordinatorKey?.trim();
  if (given && !isFingerprint(given)) {
    try {
      return decodeKey(given);
    } catch {
      throw new CoordinatorKeyUnknownError('--coordinator-key: expected a 32-hex-digit fingerprint or a base64 key');
    }
  }
  let fingerprint = given ?? null;
  if (opts.authKey !== undefined) {
    let fromAuthKey: string | null = null;
    try {
      fromAuthKey = parseAuthKey(opts.authKey).fingerprint;
    } catch (err) {
      // Refused here, before anything is sent, unless the key to pin is known anyway.
      if (!fingerprint) throw new CoordinatorKeyUnknownError((err as Error).message);
    }
    if (fingerprint && fromAuthKey && fromAuthKey !== fingerprint) {
      throw new CoordinatorKeyMismatchError(`the auth key names coordinator key ${fromAuthKey}, --coordinator-key names ${fingerprint}`);
    }
    fingerprint ??= fromAuthKey;
  }
  if (!fingerprint) {
    throw new CoordinatorKeyUnknownError('this auth key does not name the coordinator\'s key: pass --coordinator-key FINGERPRINT (printed by the coordinator at start) or create a new auth key');
  }
  return resolvePinnedKey(opts.coordinatorUrl, fingerprint, opts.signal, opts.socketMark);
}

export async function registerNode(opts: RegisterOptions): Promise<Registered> {
  const serverKey = await keyToPin(opts);
  const req: RegisterRequest = {
    nodeKey: opts.nodeKey,
    discoKey: opts.discoKey,
    hostname: opts.hostname,
    ...(opts.authKey !== undefined ? { authKey: opts.authKey } : {}),
    advertiseRoutes: opts.advertiseRoutes ?? [],
    advertiseExitNode: opts.advertiseExitNode ?? false,
    ...(opts.platform ?? {}),
  };
  let pin = encodeKey(serverKey);
  const call = (body: RegisterRequest): Promise<RegisterResponse> => controlCall({
    url: opts.coordinatorUrl, serverKey, staticPrivate: opts.nodePrivate,
    // A rotation's next key arrives inside the channel the current key authenticated: pin it.
    onWelcome: (w) => { if (w.nextKey) pin = w.nextKey; },
    ...(opts.socketMark ? { connect: markedConnector(opts.socketMark)! } : {}), ...(opts.signal ? { signal: opts.signal } : {}),
  }, 'POST', '/api/v1/register', RegisterResponse, body);
  let reply: RegisterResponse;
  try {
    reply = await call(req);
  } catch (err) {
    // A coordinator older than this agent refuses the fields it does not know (os, version): an
    // agent upgraded first still registers, without them, rather than dropping off the network.
    if (!opts.platform || !refusedPlatformFields(err)) throw err;
    const { os: _os, version: _version, ...older } = req;
    reply = await call(older);
  }
  if (reply.node.nodeKey !== opts.nodeKey) throw new CoordinatorProtocolError('the coordinator registered a different node key');
  return { node: reply.node, serverKey: pin };
}

/** The coordinator refused the registration for carrying os/version, the only fields it may not know. */
export function refusedPlatformFields(err: unknown): boolean {
  return err instanceof CoordinatorRefusedError && err.status === 400 && /^Unrecognized keys?: "(os|version)"(, "(os|version)")?$/.test(err.reason);
}

/** "key 1a2b…" for messages. */
export function describeKey(key: string): string {
  return keyFingerprint(decodeKey(key));
}
