// The admin API, inside the control channel only, behind `Authorization: Bearer TOKEN` (the token
// from --admin-token-file, compared in constant time). Without a token file it answers 403 to
// everything; so does it to a relay's channel (a relay's key may only look up members).
//   POST   /api/v1/admin/authkeys            AuthKeyCreate → 201 AuthKeyCreated (the secret, once)
//   GET    /api/v1/admin/authkeys            → {authKeys}
//   DELETE /api/v1/admin/authkeys/:id        revoke → AuthKeyInfo
//   GET    /api/v1/admin/nodes               → {nodes}
//   DELETE /api/v1/admin/nodes/:id           → NodeInfo (as it was)
//   POST   /api/v1/admin/nodes/:id/expire    → NodeInfo
//   POST   /api/v1/admin/nodes/:id/rename    NodeRename → NodeInfo (409: the name is taken)
//   POST   /api/v1/admin/nodes/:id/routes    RoutesApprove → NodeInfo
//   POST   /api/v1/admin/nodes/:id/routes/unapprove  RoutesApprove → NodeInfo (approvals withdrawn)
//   GET    /api/v1/admin/routes              → {routes}
//   GET    /api/v1/admin/policy              → PolicyReply
//   PUT    /api/v1/admin/policy              Policy → PolicyReply
//   DELETE /api/v1/admin/policy              → PolicyReply (no policy: everyone sees everyone)
//   GET    /api/v1/admin/stats               → CoordinatorStats
//   GET    /api/v1/admin/paths               → AdminPaths (admin-paths.ts: the live mesh)
// The web console (console/) serves the same operations under /admin/api/ behind a session.
import { createHash, timingSafeEqual } from 'node:crypto';
import { AuthKeyCreate, NodeRename, RoutesApprove, type CoordinatorKeyState, type CoordinatorStats, type NodeInfo, type RouteInfo } from '../proto/control/schemas.js';
import { formatCidr } from '../proto/ip/address.js';
import { canonicalRoute } from '../proto/control/routes.js';
import type { AccessPolicy } from './access-policy.js';
import type { AuthKeys } from './authkeys.js';
import { BadRequestError, ForbiddenError, UnauthorizedError } from './errors.js';
import { parseId, parseWith, requireCaller, type ApiRequest, type Route } from './http.js';
import { peerOf } from './peer-records.js';
import { EXIT_ROUTES, type NodeRecord, type NodeRegistry } from './registry.js';
import type { ServerKeys } from './server-keys.js';

/** The admin API's bodies (a policy of a thousand rules); read only after the token checked. */
export const ADMIN_BODY_LIMIT = 1024 * 1024;

export interface AdminDeps {
  /** True for the static key of a relay this coordinator knows (relay-authorization.ts). */
  isRelayKey: (key: string) => boolean;
  /** Key rotation (server-keys.ts). */
  keys: ServerKeys;
  /** Closes the control channels opened with a key (so their callers reconnect and learn the next one). */
  closeChannelsOn: (key: string) => number;
  /** SHA-256 of the admin token; null: admin API disabled. */
  tokenHash: Buffer | null;
  authKeys: AuthKeys;
  registry: NodeRegistry;
  policy: AccessPolicy;
  stats: () => CoordinatorStats;
  /** Counted refusals of the guard (metrics). */
  refusals: AdminRefusals;
}

export interface AdminRefusals { relayCredential: number; disabled: number; missingToken: number; badToken: number }

export function newAdminRefusals(): AdminRefusals {
  return { relayCredential: 0, disabled: 0, missingToken: 0, badToken: 0 };
}

export function hashAdminToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function nodeInfo(n: NodeRecord): NodeInfo {
  return {
    ...peerOf(n),
    user: n.user,
    createdAt: new Date(n.createdAt).toISOString(),
    keyExpiresAt: n.keyExpiresAt === null ? null : new Date(n.keyExpiresAt).toISOString(),
    ephemeral: n.ephemeral,
    advertisedRoutes: n.advertisedRoutes,
    advertisedExitNode: n.advertisedExitNode,
    os: n.os,
    version: n.version,
  };
}

export function routeList(registry: NodeRegistry): RouteInfo[] {
  const out: RouteInfo[] = [];
  for (const n of registry.all()) {
    for (const route of n.advertisedRoutes) out.push({ nodeId: n.id, node: n.name, route, approved: n.approvedRoutes.includes(route), exitNode: false });
    if (n.advertisedExitNode) {
      for (const route of EXIT_ROUTES) out.push({ nodeId: n.id, node: n.name, route, approved: n.approvedRoutes.includes(route), exitNode: true });
    }
  }
  return out;
}

/** One admin operation, without its path prefix or guard: the admin API and the web console share them. */
export interface AdminOperation {
  method: Route['method'];
  /** Path after the prefix (/api/v1/admin/ or /admin/api/), as a regular expression source. */
  path: string;
  handle: Route['handle'];
}

/** Every admin operation (the business logic behind both the admin API and the web console). */
export function adminOperations(deps: Omit<AdminDeps, 'isRelayKey' | 'tokenHash' | 'refusals'>): AdminOperation[] {
  const op = (method: Route['method'], path: string, handle: Route['handle']): AdminOperation => ({ method, path, handle });
  const keyState = (): CoordinatorKeyState => ({
    current: { key: deps.keys.current.text, fingerprint: deps.keys.current.fingerprint },
    next: deps.keys.next ? { key: deps.keys.next.text, fingerprint: deps.keys.next.fingerprint } : null,
    authKeyFingerprint: deps.keys.authKeyFingerprint(),
  });
  const { authKeys, registry, policy } = deps;
  const node = (req: ApiRequest): number => parseId(req.params[0], 'node');
  const routesOf = async (req: ApiRequest): Promise<string[]> => {
    const { routes } = parseWith(RoutesApprove, await req.body());
    // Host bits set is refused, as `up --advertise-routes` refuses it: approving 192.0.2.129/26
    // must not quietly serve 192.0.2.128/26.
    return routes.map((r) => {
      try {
        return formatCidr(canonicalRoute(r, { strict: true }));
      } catch (err) {
        throw new BadRequestError(`routes: ${(err as Error).message}`);
      }
    });
  };
  return [
    op('POST', 'authkeys', async (req) => ({ status: 201, body: await authKeys.create(parseWith(AuthKeyCreate, await req.body())) })),
    op('GET', 'authkeys', async () => ({ body: { authKeys: authKeys.list() } })),
    op('DELETE', 'authkeys/([^/]+)', async (req) => ({ body: await authKeys.revoke(parseId(req.params[0], 'auth key')) })),
    op('GET', 'nodes', async () => ({ body: { nodes: [...registry.all()].map(nodeInfo) } })),
    op('DELETE', 'nodes/([^/]+)', async (req) => ({ body: nodeInfo(await registry.delete(node(req))) })),
    op('POST', 'nodes/([^/]+)/expire', async (req) => ({ body: nodeInfo(await registry.expire(node(req))) })),
    op('POST', 'nodes/([^/]+)/rename', async (req) => {
      const id = node(req);
      return { body: nodeInfo(await registry.rename(id, parseWith(NodeRename, await req.body()).name)) };
    }),
    op('POST', 'nodes/([^/]+)/routes', async (req) => {
      const id = node(req);
      return { body: nodeInfo(await registry.approveRoutes(id, await routesOf(req))) };
    }),
    op('POST', 'nodes/([^/]+)/routes/unapprove', async (req) => {
      const id = node(req);
      return { body: nodeInfo(await registry.unapproveRoutes(id, await routesOf(req))) };
    }),
    op('GET', 'routes', async () => ({ body: { routes: routeList(registry) } })),
    op('GET', 'policy', async () => ({ body: policy.reply() })),
    op('PUT', 'policy', async (req) => {
      const body = await req.body();
      if (body === null) throw new BadRequestError('policy: expected an object (DELETE /api/v1/admin/policy removes the policy)');
      return { body: await policy.set(body) };
    }),
    op('DELETE', 'policy', async () => ({ body: await policy.set(null) })),
    op('GET', 'stats', async () => ({ body: deps.stats() })),
    op('GET', 'coordinator-key', async () => ({ body: keyState() })),
    op('POST', 'coordinator-key/rotate', async () => {
      await deps.keys.rotate();
      // After this reply: every channel on the current key reopens and learns the next key.
      const current = deps.keys.current.text;
      setTimeout(() => deps.closeChannelsOn(current), 200).unref();
      return { body: keyState() };
    }),
    op('POST', 'coordinator-key/finish', async () => {
      const old = deps.keys.current.text;
      await deps.keys.finish();
      setTimeout(() => deps.closeChannelsOn(old), 200).unref();
      return { body: keyState() };
    }),
  ];
}

/** The admin API's check, before any body is read: inside the channel, not a relay, the right token. */
export function adminGuard(deps: Pick<AdminDeps, 'isRelayKey' | 'tokenHash' | 'refusals'>): (req: ApiRequest) => void {
  return (req: ApiRequest): void => {
    const caller = requireCaller(req);
    const { refusals } = deps;
    if (deps.isRelayKey(caller.key)) { refusals.relayCredential++; throw new ForbiddenError('a relay\'s credential may only look up members'); }
    if (!deps.tokenHash) { refusals.disabled++; throw new ForbiddenError('admin API disabled: start the coordinator with --admin-token-file FILE'); }
    const header = req.headers.authorization;
    const m = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!m) { refusals.missingToken++; throw new UnauthorizedError('missing admin token (Authorization: Bearer TOKEN)'); }
    if (!timingSafeEqual(hashAdminToken(m[1]!), deps.tokenHash)) { refusals.badToken++; throw new UnauthorizedError('bad admin token'); }
    caller.authenticated();
  };
}

export function adminRoutes(deps: AdminDeps): Route[] {
  const guard = adminGuard(deps);
  return adminOperations(deps).map((o) => ({
    method: o.method, path: new RegExp(`^/api/v1/admin/${o.path}$`), guard, handle: o.handle, bodyLimit: ADMIN_BODY_LIMIT,
  }));
}
