// What the mesh's links and sessions need from the relay around them.
import type { AuthorizationResult } from './authorizer.js';
import type { ClientSession, QueueBudget, SessionConfig } from './client-session.js';
import type { RelayCounters } from './counters.js';
import type { Logger } from './log.js';

export interface MeshHost {
  readonly counters: RelayCounters;
  readonly logger: Logger;
  readonly relayPrivateKey: Uint8Array;
  readonly relayPublicKey: Uint8Array;
  /** MAC key derived from the mesh credential (proto/relay/mesh-auth.ts). */
  readonly meshKey: Uint8Array;
  readonly config: SessionConfig;
  readonly budget: QueueBudget;
  /** Is this static key a relay of the deployment (the coordinator's relay map)? 'allowed' when there is no coordinator. */
  authorizePeer(relayKey: Uint8Array): Promise<AuthorizationResult>;
  /** Node keys of the clients connected here now (for a new peer's presence snapshot). */
  localKeys(): Iterable<Uint8Array>;
  /** The open client session of key `id` (hex) here, if any. */
  localSession(id: string): ClientSession | undefined;
  /** Presence changed: route caches are stale. */
  routesChanged(): void;
}

/** Key `a` equals the 32 bytes of `b` at `at` (relay hot paths: no views, no strings). */
export function sameKey(a: Uint8Array, b: Uint8Array, at = 0): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[at + i]) return false;
  return true;
}

export function keyHex(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, 32).toString('hex');
}

export function keyText(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, 32).toString('base64');
}
