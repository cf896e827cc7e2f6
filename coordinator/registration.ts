// POST /api/v1/register, in the order that keeps refusals free of side effects:
//   1. the body parses (400);  2. the auth key is good, or the node is known and unexpired
//   (401/403);  3. the challenge is ours and unused, and the proof holds (401);  4. the node is
//   created or updated in one transaction, and only then acknowledged.
// Nothing is stored, and no auth-key use counted, before step 4.
// POST /api/v1/deregister (logout) proves possession the same way, then deletes the node.
import { checkProof, deregistrationFields, registrationFields } from '../proto/control/proof.js';
import { DeregisterRequest, RegisterRequest, describeZodError, type DeregisterResponse, type RegisterResponse } from '../proto/control/schemas.js';
import { advertisableRoute } from '../proto/control/routes.js';
import { decodeKey } from '../proto/wireguard/keys.js';
import { IPV6_PREFIX } from './addresses.js';
import type { AuthKeys, AuthKeyUse } from './authkeys.js';
import type { Challenges } from './challenges.js';
import { BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError } from './errors.js';
import { selfOf } from './peer-records.js';
import type { NodeRegistry } from './registry.js';

export interface RegistrationDeps {
  registry: NodeRegistry;
  authKeys: AuthKeys;
  challenges: Challenges;
  serverPrivateKey: Uint8Array;
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

export async function register(body: unknown, deps: RegistrationDeps): Promise<RegisterResponse> {
  const parsed = RegisterRequest.safeParse(body);
  if (!parsed.success) throw new BadRequestError(describeZodError(parsed.error));
  const req = parsed.data;
  const advertisedRoutes = canonicalRoutes(req.advertiseRoutes);
  const nodePublic = decodeKey(req.nodeKey);

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
    if (!deps.challenges.consume(req.challenge)) throw new UnauthorizedError('unknown, used or expired challenge: fetch a new one from /api/v1/server');
    if (!checkProof(deps.serverPrivateKey, nodePublic, req.challenge, registrationFields(req), req.proof)) {
      throw new UnauthorizedError('proof of possession of the node key failed');
    }
    const { node } = await deps.registry.register({
      nodeKey: req.nodeKey,
      discoKey: req.discoKey,
      hostname: req.hostname,
      advertisedRoutes,
      advertisedExitNode: req.advertiseExitNode,
      authKey: use?.key ?? null,
    });
    use?.commit();
    return { node: selfOf(node) };
  } finally {
    use?.release(); // no-op after commit
  }
}

/** A node deleting itself: the challenge and proof first, so nobody can probe which keys exist. */
export async function deregister(body: unknown, deps: RegistrationDeps): Promise<DeregisterResponse> {
  const parsed = DeregisterRequest.safeParse(body);
  if (!parsed.success) throw new BadRequestError(describeZodError(parsed.error));
  const req = parsed.data;
  if (!deps.challenges.consume(req.challenge)) throw new UnauthorizedError('unknown, used or expired challenge: fetch a new one from /api/v1/server');
  if (!checkProof(deps.serverPrivateKey, decodeKey(req.nodeKey), req.challenge, deregistrationFields(req.nodeKey), req.proof)) {
    throw new UnauthorizedError('proof of possession of the node key failed');
  }
  const node = deps.registry.getByKey(req.nodeKey);
  if (!node) throw new NotFoundError('unknown node key: nothing to deregister');
  await deps.registry.delete(node.id);
  return { deregistered: node.id };
}
