// POST /api/v1/register (inside the control channel), in the order that keeps refusals free of
// side effects:
//   1. the caller's address is within its registration rate (429);  2. the body parses (400);
//   3. the node key is the channel's own static key — the Noise handshake proved the caller holds
//   it, and the channel's AEAD covers every field of the request (401);  4. the auth key is good,
//   or the node is known and unexpired (401/403);  5. the node is created or updated in one
//   transaction, and only then acknowledged.
// Nothing is stored, and no auth-key use counted, before step 5.
// POST /api/v1/deregister (logout) is accepted only for the channel's own node key.
import type { AddressRateLimiter } from './address-limits.js';
import type { ChannelCaller } from './control-channels.js';
import { DeregisterRequest, RegisterRequest, describeZodError, type DeregisterResponse, type RegisterResponse } from '../proto/control/schemas.js';
import { advertisableRoute } from '../proto/control/routes.js';
import { IPV6_PREFIX } from './addresses.js';
import { AuthKeyRefusedError, type AuthKeys, type AuthKeyUse } from './authkeys.js';
import { AuthKeyUsedError } from './store/interface.js';
import { BadRequestError, ForbiddenError, NotFoundError, RequestRefusedError, UnauthorizedError } from './errors.js';
import { selfOf } from './peer-records.js';
import type { NodeRegistry } from './registry.js';

export interface RegistrationDeps {
  registry: NodeRegistry;
  authKeys: AuthKeys;
  /** Registrations per source address. */
  registerRate: AddressRateLimiter;
  /** Counted refusals (stats). */
  refusals: { registerRate: number; wrongNodeKey: number };
  /** Every registration's outcome (metrics): created, updated, or refused with its HTTP status. */
  outcomes: RegistrationOutcomes;
}

export interface RegistrationOutcomes {
  created: number;
  updated: number;
  /** HTTP status → count (400 malformed, 401 no/bad auth key or key, 403 expired, 409 in progress, 429 rate). */
  refused: Map<number, number>;
}

export function newRegistrationOutcomes(): RegistrationOutcomes {
  return { created: 0, updated: 0, refused: new Map() };
}

/** The request must be about the channel's own key: that is what the handshake proved. */
function requireOwnKey(nodeKey: string, caller: ChannelCaller, deps: RegistrationDeps): void {
  if (nodeKey !== caller.key) {
    deps.refusals.wrongNodeKey++;
    throw new UnauthorizedError('nodeKey is not the key this control channel was opened with');
  }
}

/**
 * Canonical, de-duplicated routes ("10.1.2.3/8" → "10.0.0.0/8"); 400 on one that is not a prefix,
 * is the exit route (that is advertiseExitNode) or overlaps the overlay.
 */
function canonicalRoutes(routes: string[]): string[] {
  const out = new Set<string>();
  for (const r of routes) {
    try {
      out.add(advertisableRoute(r, { reserved: [IPV6_PREFIX] }));
    } catch (err) {
      throw new BadRequestError(`advertiseRoutes: ${(err as Error).message}`);
    }
  }
  return [...out];
}

export async function register(body: unknown, caller: ChannelCaller, deps: RegistrationDeps): Promise<RegisterResponse> {
  try {
    return await registerOnce(body, caller, deps);
  } catch (err) {
    if (err instanceof RequestRefusedError) deps.outcomes.refused.set(err.status, (deps.outcomes.refused.get(err.status) ?? 0) + 1);
    throw err;
  }
}

async function registerOnce(body: unknown, caller: ChannelCaller, deps: RegistrationDeps): Promise<RegisterResponse> {
  const wait = deps.registerRate.take(caller.address);
  if (wait > 0) {
    deps.refusals.registerRate++;
    throw new RequestRefusedError(429, `too many registrations from ${caller.address}: retry in ${Math.ceil(wait / 1000)} s`);
  }
  const parsed = RegisterRequest.safeParse(body);
  if (!parsed.success) throw new BadRequestError(describeZodError(parsed.error));
  const req = parsed.data;
  requireOwnKey(req.nodeKey, caller, deps);
  const advertisedRoutes = canonicalRoutes(req.advertiseRoutes);

  const known = deps.registry.getByKey(req.nodeKey);
  let use: AuthKeyUse | null = null;
  if (req.authKey !== undefined) {
    use = deps.authKeys.beginUse(req.authKey);
  } else if (!known) {
    throw new UnauthorizedError('an auth key is required to register a new node');
  } else if (deps.registry.isExpired(known)) {
    throw new ForbiddenError('node key expired: re-authenticate with an auth key');
  }
  try {
    const { node, created } = await deps.registry.register({
      nodeKey: req.nodeKey,
      discoKey: req.discoKey,
      hostname: req.hostname,
      advertisedRoutes,
      advertisedExitNode: req.advertiseExitNode,
      os: req.os ?? null,
      version: req.version ?? null,
      authKey: use?.key ?? null,
    });
    use?.commit();
    if (created) deps.outcomes.created++;
    else deps.outcomes.updated++;
    caller.authenticated();
    return { node: selfOf(node) };
  } catch (err) {
    // Used or revoked through another coordinator on the same database: the database said no.
    if (err instanceof AuthKeyUsedError) throw new AuthKeyRefusedError(403, err.message);
    throw err;
  } finally {
    use?.release(); // no-op after commit
  }
}

/** A node deleting itself: only its own key, so nobody can probe which keys exist. */
export async function deregister(body: unknown, caller: ChannelCaller, deps: RegistrationDeps): Promise<DeregisterResponse> {
  const parsed = DeregisterRequest.safeParse(body);
  if (!parsed.success) throw new BadRequestError(describeZodError(parsed.error));
  const req = parsed.data;
  requireOwnKey(req.nodeKey, caller, deps);
  const node = deps.registry.getByKey(req.nodeKey);
  if (!node) throw new NotFoundError('unknown node key: nothing to deregister');
  await deps.registry.delete(node.id);
  return { deregistered: node.id };
}
