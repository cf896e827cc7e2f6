// The routing preferences `pinhole up` sets, persisted in prefs.json: what this node offers
// (subnet routes, exit node) and what it uses (peers' subnet routes, an exit node). A flag left
// out of `up` keeps its value; "" clears a list or the exit node. The exit node is remembered by
// node key, not by name: names are first come, first served, and a node that later takes the
// name of the one the user chose must not get this node's traffic.
import * as z from 'zod/mini';
import { CidrText, Key32, type Peer } from '../../proto/control/schemas.js';
import { advertisableRoute, RouteRefusedError } from '../../proto/control/routes.js';

/**
 * The exit node `up --exit-node` chose: the peer's node key at that moment, and its name then (to
 * show). nodeKey null: a name saved by an older version, pinned to a key at the first netmap.
 */
export const ExitNodeChoice = z.object({ nodeKey: z.nullable(Key32), name: z.string().check(z.maxLength(200)) });
export type ExitNodeChoice = z.infer<typeof ExitNodeChoice>;

export const RoutingPrefs = z.object({
  advertiseRoutes: z._default(z.array(CidrText).check(z.maxLength(64)), []),
  advertiseExitNode: z._default(z.boolean(), false),
  acceptRoutes: z._default(z.boolean(), false),
  exitNode: z._default(z.nullable(z.union([ExitNodeChoice, z.pipe(z.string().check(z.maxLength(200)), z.transform((name): ExitNodeChoice => ({ nodeKey: null, name })))])), null),
  exitNodeAllowLanAccess: z._default(z.boolean(), false),
});
export type RoutingPrefs = z.infer<typeof RoutingPrefs>;

export const DEFAULT_ROUTING_PREFS: RoutingPrefs = {
  advertiseRoutes: [], advertiseExitNode: false, acceptRoutes: false, exitNode: null, exitNodeAllowLanAccess: false,
};

/** What `up` may change about what this node offers (sent in the registration). */
export const AdvertiseFlags = z.object({
  advertiseRoutes: z.optional(z.array(z.string().check(z.maxLength(64))).check(z.maxLength(64))),
  advertiseExitNode: z.optional(z.boolean()),
});
export type AdvertiseFlags = z.infer<typeof AdvertiseFlags>;

/** What `up` may change about what this node uses. `exitNode: ""` clears it. */
export const ClientRoutingFlags = z.strictObject({
  acceptRoutes: z.optional(z.boolean()),
  exitNode: z.optional(z.string().check(z.maxLength(200))),
  exitNodeAllowLanAccess: z.optional(z.boolean()),
});
export type ClientRoutingFlags = z.infer<typeof ClientRoutingFlags>;

export class RoutingPrefsError extends Error {
  override readonly name = 'RoutingPrefsError';
}

/** Canonical advertised routes from `--advertise-routes` text items; one-line error on a bad one. */
export function parseAdvertisedRoutes(items: readonly string[]): string[] {
  const out: string[] = [];
  for (const item of items) {
    const text = item.trim();
    if (text === '') continue;
    try {
      const r = advertisableRoute(text, { strict: true });
      if (!out.includes(r)) out.push(r);
    } catch (err) {
      if (err instanceof RouteRefusedError) throw new RoutingPrefsError(`--advertise-routes: ${err.message}`);
      throw err;
    }
  }
  return out;
}

/** Applies `up`'s advertise flags to the prefs. */
export function withAdvertised(prefs: RoutingPrefs, flags: AdvertiseFlags): RoutingPrefs {
  const next = { ...prefs };
  if (flags.advertiseRoutes !== undefined) next.advertiseRoutes = parseAdvertisedRoutes(flags.advertiseRoutes);
  if (flags.advertiseExitNode !== undefined) next.advertiseExitNode = flags.advertiseExitNode;
  if (next.advertiseExitNode && next.exitNode !== null) {
    throw new RoutingPrefsError('--advertise-exit-node: this node uses an exit node; clear it first with --exit-node ""');
  }
  return next;
}

/** The peer an --exit-node text names: by name, overlay address or node key. */
export function findPeer(spec: string, peers: Iterable<Peer>): Peer | undefined {
  const s = spec.trim();
  const lower = s.toLowerCase();
  for (const p of peers) {
    if (p.name.toLowerCase() === lower || p.ipv4 === s || p.ipv6.toLowerCase() === lower || p.nodeKey === s) return p;
  }
  return undefined;
}

/**
 * Applies `up`'s client flags; a new exit node must be a peer in the netmap that is an approved
 * exit node. `self` names this node (it cannot be its own exit node).
 */
export function withClientFlags(prefs: RoutingPrefs, flags: ClientRoutingFlags, peers: Iterable<Peer> | null, self: string | null): RoutingPrefs {
  const next = { ...prefs };
  if (flags.acceptRoutes !== undefined) next.acceptRoutes = flags.acceptRoutes;
  if (flags.exitNodeAllowLanAccess !== undefined) next.exitNodeAllowLanAccess = flags.exitNodeAllowLanAccess;
  if (flags.exitNode !== undefined) {
    const spec = flags.exitNode.trim();
    if (spec === '') {
      next.exitNode = null;
    } else {
      if (self !== null && spec.toLowerCase() === self.toLowerCase()) throw new RoutingPrefsError(`--exit-node ${spec}: that is this node`);
      if (prefs.advertiseExitNode) throw new RoutingPrefsError(`--exit-node ${spec}: this node is an exit node itself (pinhole up --no-advertise-exit-node first)`);
      if (peers === null) throw new RoutingPrefsError(`--exit-node ${spec}: no netmap from the coordinator yet; try again once connected`);
      const peer = findPeer(spec, peers);
      if (!peer) throw new RoutingPrefsError(`--exit-node ${spec}: no peer by that name or address in this node's netmap`);
      if (!peer.exitNode) {
        throw new RoutingPrefsError(`--exit-node ${spec}: ${peer.name} is not an approved exit node (it needs pinhole up --advertise-exit-node, then pinhole admin routes approve ${peer.name} 0.0.0.0/0 ::/0)`);
      }
      next.exitNode = { nodeKey: peer.nodeKey, name: peer.name };
    }
  }
  return next;
}

/** The peer an exit node choice means in this netmap: the one with its node key, whatever its name now. */
export function exitPeerOf(choice: ExitNodeChoice, peers: Iterable<Peer>): Peer | undefined {
  if (choice.nodeKey === null) return undefined;
  for (const p of peers) if (p.nodeKey === choice.nodeKey) return p;
  return undefined;
}
