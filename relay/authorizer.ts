// Which nodes may use the relay. Without --coordinator every node that proves its key may; with it,
// the coordinator decides, over one small endpoint inside a control channel (Noise IK to the
// pinned coordinator key, opened with the relay's own static key — its only credential; it can
// do nothing else with it):
//
//   GET /api/v1/relay/nodes/{nodeKey as unpadded base64url}
//   → 200 the node is registered and not expired/disabled (body ignored)
//   → 404 (or 403, 410) unknown, deleted, expired or disabled: refused
//   → anything else, or no answer within the timeout: "unavailable", also refused (fail closed)

export type AuthorizationResult = 'allowed' | 'denied' | 'unavailable';

export interface NodeAuthorizer {
  authorize(nodeKey: Uint8Array, signal?: AbortSignal): Promise<AuthorizationResult>;
}

/** Every node that holds its key may connect. */
export const allowAllNodes: NodeAuthorizer = {
  authorize: async () => 'allowed',
};

/** One lookup: the HTTP status the coordinator answered (the transport is coordinator-channel.ts). */
export type MembershipLookup = (path: string, signal: AbortSignal) => Promise<number>;

export interface CoordinatorAuthorizerOptions {
  lookup: MembershipLookup;
  /** Per lookup; default 3 s. */
  timeoutMs?: number;
  /** How long an "allowed" answer is reused; default 30 s. */
  allowedTtlMs?: number;
  /** How long a "denied" answer is reused, so a flood of unknown keys does not hit the coordinator; default 5 s. */
  deniedTtlMs?: number;
  /** Called on lookups that failed (for logs). */
  onError?: (err: unknown) => void;
  /** The path asked for a key; default nodeKeyPath (relayKeyPath for mesh peers). */
  pathOf?: (key: Uint8Array) => string;
}

export function nodeKeyPath(nodeKey: Uint8Array): string {
  return `/api/v1/relay/nodes/${Buffer.from(nodeKey).toString('base64url')}`;
}

/** The mesh's question: is this static key a relay in the coordinator's relay map? (200 yes, 404 no) */
export function relayKeyPath(relayKey: Uint8Array): string {
  return `/api/v1/relay/relays/${Buffer.from(relayKey).toString('base64url')}`;
}

export function createCoordinatorAuthorizer(opts: CoordinatorAuthorizerOptions): NodeAuthorizer {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const cache = new Map<string, { result: AuthorizationResult; until: number }>();
  const inFlight = new Map<string, Promise<AuthorizationResult>>();

  async function lookup(path: string, signal?: AbortSignal): Promise<AuthorizationResult> {
    const timeout = AbortSignal.timeout(timeoutMs);
    try {
      const status = await opts.lookup(path, signal ? AbortSignal.any([signal, timeout]) : timeout);
      if (status === 200) return 'allowed';
      if (status === 404 || status === 410) return 'denied';
      opts.onError?.(new Error(`coordinator answered ${status} for ${path}${status === 403 ? ' (is this relay\'s key in the coordinator\'s --relay-key?)' : ''}`));
      return 'unavailable';
    } catch (err) {
      opts.onError?.(err);
      return 'unavailable';
    }
  }

  return {
    async authorize(nodeKey, signal) {
      const path = (opts.pathOf ?? nodeKeyPath)(nodeKey);
      const now = Date.now();
      const hit = cache.get(path);
      if (hit && hit.until > now) return hit.result;
      let p = inFlight.get(path);
      if (!p) {
        p = lookup(path, signal).finally(() => inFlight.delete(path));
        inFlight.set(path, p);
      }
      const result = await p;
      const ttl = result === 'allowed' ? opts.allowedTtlMs ?? 30_000 : result === 'denied' ? opts.deniedTtlMs ?? 5000 : 0;
      if (ttl > 0) cache.set(path, { result, until: Date.now() + ttl });
      if (cache.size > 10_000) cache.clear();
      return result;
    },
  };
}
