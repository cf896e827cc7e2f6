// The node registry: every node in memory (reads never touch the database), written through to
// the store. Owns identity (ids, addresses, unique names), key expiry, liveness (online,
// endpoints) and the ephemeral-node clean-up. Tells its listeners about every change; it knows
// nothing of netmaps or streams.
import { AddressPool } from './addresses.js';
import { ConflictError, NotFoundError } from './errors.js';
import type { NatKind } from '../proto/control/schemas.js';
import type { Logger } from './log.js';
import type { PolicyNode } from './policy.js';
import { IdentityTakenError, type AuthKeyRow, type ControlStore, type LivenessRow, type NodeRow } from './store/interface.js';

export interface NodeRecord extends NodeRow {
  online: boolean;
}

/**
 * `membership`: something policy and visibility depend on changed (name, tags, routes, expiry).
 * `self`: something the node itself is told about changed (name, expiry, tags, served routes).
 * `live`: only endpoints + home relay + NAT kind, or only online + last seen changed.
 */
export type NodeChange =
  | { kind: 'added'; node: NodeRecord }
  | { kind: 'updated'; node: NodeRecord; membership: boolean; self: boolean; live?: 'endpoints' | 'online' }
  | { kind: 'removed'; node: NodeRecord };

export interface RegistrationInput {
  nodeKey: string;
  discoKey: string;
  hostname: string;
  advertisedRoutes: string[];
  advertisedExitNode: boolean;
  /** What the agent says it runs (validated by the request schema); null: an older agent said nothing. */
  os: string | null;
  version: string | null;
  /** The auth key presented, if any: its tags and ephemeral flag apply and the key expiry restarts. */
  authKey: AuthKeyRow | null;
}

export interface RegistryOptions {
  /** Node key lifetime from (re-)authentication; null: keys never expire. */
  nodeKeyExpiryMs: number | null;
  /** An ephemeral node is deleted this long after it went offline. */
  ephemeralTimeoutMs: number;
  log: Logger;
  now?: () => number;
  /** Nodes whose stream another coordinator on the same database holds (replicas). */
  onlineElsewhere?: number[];
}

export const EXIT_ROUTES = ['0.0.0.0/0', '::/0'];

/**
 * Tries at a registration whose id, name or address another coordinator on the same database
 * took first; each retry starts from what the database holds by then.
 */
const MAX_IDENTITY_ATTEMPTS = 32;

/** Approved routes the node actually advertises: what peers may send through it. */
export function servedRoutes(n: NodeRow): string[] {
  return n.approvedRoutes.filter((r) => n.advertisedRoutes.includes(r) || (n.advertisedExitNode && EXIT_ROUTES.includes(r)));
}

export function isExitNode(n: NodeRow): boolean {
  return n.advertisedExitNode && EXIT_ROUTES.every((r) => n.approvedRoutes.includes(r));
}

/** What the access policy evaluates about a node. */
export function policyNodeOf(n: NodeRow): PolicyNode {
  return { id: n.id, name: n.name, user: n.user, ipv4: n.ipv4, ipv6: n.ipv6, tags: n.tags, routes: servedRoutes(n) };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export class NodeRegistry {
  private readonly nodes = new Map<number, NodeRecord>();
  private readonly byKey = new Map<string, NodeRecord>();
  /** name → node id, including names reserved by registrations in flight. */
  private readonly names = new Map<string, number>();
  private readonly addresses = new AddressPool();
  private readonly registering = new Set<string>();
  private readonly listeners: ((c: NodeChange) => void)[] = [];
  private readonly ephemeralTimers = new Map<number, NodeJS.Timeout>();
  private readonly expired = new Set<number>();
  private readonly livenessDirty = new Set<number>();
  /** Nodes whose stream is held here, and nodes another replica says it holds: online is either. */
  private readonly localOnline = new Set<number>();
  private readonly remoteOnline = new Set<number>();
  private flushing = false;
  private readonly now: () => number;
  private lastId: number;
  private conflicts = 0;
  private learning: Promise<void> | null = null;
  /** Routes a policy approves by itself for a node (set by the policy holder). */
  autoApprove: (node: NodeRow) => string[] = () => [];

  constructor(private readonly store: ControlStore, rows: NodeRow[], lastId: number, private readonly opts: RegistryOptions) {
    this.now = opts.now ?? Date.now;
    for (const id of opts.onlineElsewhere ?? []) this.remoteOnline.add(id);
    for (const r of rows) this.insert({ ...r, online: this.remoteOnline.has(r.id) });
    this.lastId = Math.max(lastId, ...rows.map((r) => r.id), 0);
    const now = this.now();
    for (const n of this.nodes.values()) {
      if (this.isExpired(n, now)) this.expired.add(n.id);
      if (n.ephemeral && !n.online) this.scheduleEphemeralDeletion(n); // offline unless another replica streams it
    }
  }

  onChange(listener: (c: NodeChange) => void): void {
    this.listeners.push(listener);
  }

  get(id: number): NodeRecord | undefined { return this.nodes.get(id); }
  getByKey(nodeKey: string): NodeRecord | undefined { return this.byKey.get(nodeKey); }
  all(): IterableIterator<NodeRecord> { return this.nodes.values(); }
  get size(): number { return this.nodes.size; }
  /** Registrations retried because another coordinator on the database took the id, name or address first. */
  get identityConflicts(): number { return this.conflicts; }

  isExpired(n: NodeRow, now = this.now()): boolean {
    return n.keyExpiresAt !== null && n.keyExpiresAt <= now;
  }

  /** Creates a node, or re-registers a known one (same node key: same id and addresses). */
  async register(input: RegistrationInput): Promise<{ node: NodeRecord; created: boolean }> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.registerOnce(input);
      } catch (err) {
        if (!(err instanceof IdentityTakenError)) throw err;
        if (err.field === 'nodeKey') throw new ConflictError('this node key was registered through another coordinator on the same database a moment ago: retry');
        if (attempt >= MAX_IDENTITY_ATTEMPTS) throw new ConflictError('could not find a free id, name and address: too many concurrent registrations, retry');
        this.conflicts++;
        // A random pause, growing with the attempts, so coordinators that raced do not race again in step.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * Math.min(100, 5 * 2 ** attempt)));
        await this.learnTaken();
      }
    }
  }

  /** Marks every id, name and address the database holds as taken here too (one read for all who lost meanwhile). */
  private learnTaken(): Promise<void> {
    this.learning ??= this.readTaken().finally(() => { this.learning = null; });
    return this.learning;
  }

  private async readTaken(): Promise<void> {
    const taken = await this.store.takenIdentities();
    this.lastId = Math.max(this.lastId, taken.lastNodeId);
    for (const t of taken.nodes) {
      if (this.nodes.get(t.id)?.nodeKey === t.nodeKey) continue;
      this.lastId = Math.max(this.lastId, t.id);
      this.addresses.claim(t.ipv4);
      if (!this.names.has(t.name)) this.names.set(t.name, t.id);
    }
  }

  private async registerOnce(input: RegistrationInput): Promise<{ node: NodeRecord; created: boolean }> {
    if (this.registering.has(input.nodeKey)) throw new ConflictError('a registration for this node key is already in progress');
    const existing = this.byKey.get(input.nodeKey);
    const now = this.now();
    const id = existing?.id ?? ++this.lastId;
    const hostname = input.hostname.toLowerCase();
    const keepName = existing !== undefined && existing.hostname === hostname;
    const name = keepName ? existing.name : this.reserveName(hostname, id);
    const addrs = existing ? { ipv4: existing.ipv4, ipv6: existing.ipv6 } : this.addresses.allocate();
    const key = input.authKey;
    const row: NodeRow = {
      id, nodeKey: input.nodeKey, discoKey: input.discoKey, hostname, name, ...addrs,
      createdAt: existing?.createdAt ?? now,
      keyExpiresAt: key || !existing ? (this.opts.nodeKeyExpiryMs === null ? null : now + this.opts.nodeKeyExpiryMs) : existing.keyExpiresAt,
      ephemeral: key ? key.ephemeral : existing?.ephemeral ?? false,
      tags: key ? [...key.tags] : [...(existing?.tags ?? [])],
      // The owner comes only from an admin-made key, never from anything the node says.
      user: key ? key.user : existing?.user ?? null,
      authKeyId: key ? key.id : existing?.authKeyId ?? null,
      advertisedRoutes: input.advertisedRoutes,
      advertisedExitNode: input.advertisedExitNode,
      approvedRoutes: [...(existing?.approvedRoutes ?? [])],
      os: input.os, version: input.version,
      endpoints: existing?.endpoints ?? [], homeRelay: existing?.homeRelay ?? null, natKind: existing?.natKind ?? null,
      lastSeen: existing?.lastSeen ?? null,
    };
    row.approvedRoutes = [...new Set([...row.approvedRoutes, ...this.autoApprove(row)])];
    this.registering.add(input.nodeKey);
    try {
      await this.store.saveRegistration(row, key?.id ?? null);
    } catch (err) {
      if (!keepName && this.names.get(name) === id) this.names.delete(name);
      if (!existing) this.addresses.release(addrs.ipv4);
      throw err;
    } finally {
      this.registering.delete(input.nodeKey);
    }
    const current = this.nodes.get(id);
    if (!current) {
      const node = this.insert({ ...row, online: false });
      if (this.isExpired(node)) this.expired.add(id);
      else this.expired.delete(id);
      if (node.ephemeral) this.scheduleEphemeralDeletion(node);
      this.emit({ kind: 'added', node });
      return { node, created: true };
    }
    if (current.name !== name && this.names.get(current.name) === id) this.names.delete(current.name);
    const { endpoints: _e, homeRelay: _h, natKind: _n, lastSeen: _l, ...declared } = row;
    Object.assign(current, declared);
    if (this.isExpired(current)) this.expired.add(id);
    else this.expired.delete(id);
    if (!current.ephemeral) this.cancelEphemeralDeletion(id);
    else if (!current.online) this.scheduleEphemeralDeletion(current);
    this.emit({ kind: 'updated', node: current, membership: true, self: true });
    return { node: current, created: false };
  }

  async delete(id: number): Promise<NodeRecord> {
    const node = this.require(id);
    await this.store.deleteNode(id);
    this.forget(node);
    return node;
  }

  private forget(node: NodeRecord): void {
    const id = node.id;
    if (this.nodes.get(id) !== node) return; // deleted meanwhile
    this.nodes.delete(id);
    this.byKey.delete(node.nodeKey);
    if (this.names.get(node.name) === id) this.names.delete(node.name);
    this.addresses.release(node.ipv4);
    this.cancelEphemeralDeletion(id);
    this.expired.delete(id);
    this.livenessDirty.delete(id);
    this.localOnline.delete(id);
    this.remoteOnline.delete(id);
    this.emit({ kind: 'removed', node });
  }

  /**
   * Applies rows another replica committed (read back from the database), without writing them:
   * `ids` are the nodes the changes named, `rows` those that still exist. Emits the events a
   * local write emits. The liveness of a node streamed here is this replica's to say, so its
   * endpoints are kept; every other node's endpoints and online state come from the rows.
   */
  applyStored(ids: number[], rows: NodeRow[], onlineElsewhere: number[]): void {
    const present = new Map(rows.map((r) => [r.id, r]));
    const elsewhere = new Set(onlineElsewhere);
    for (const id of ids) {
      const node = this.nodes.get(id);
      if (node && !present.has(id)) this.forget(node);
    }
    for (const row of rows) {
      this.lastId = Math.max(this.lastId, row.id);
      if (elsewhere.has(row.id)) this.remoteOnline.add(row.id);
      else this.remoteOnline.delete(row.id);
      const online = this.localOnline.has(row.id) || this.remoteOnline.has(row.id);
      let node = this.nodes.get(row.id);
      if (!node) {
        const other = this.byKey.get(row.nodeKey);
        if (other) this.forget(other);
        node = this.insert({ ...row, online });
        this.syncExpired(node);
        if (node.ephemeral && !online) this.scheduleEphemeralDeletion(node);
        this.emit({ kind: 'added', node });
        continue;
      }
      const { endpoints, homeRelay, natKind, lastSeen, ...declared } = row;
      const membership = node.name !== declared.name || node.keyExpiresAt !== declared.keyExpiresAt || node.user !== declared.user ||
        !sameList(node.tags, declared.tags) || !sameList(node.approvedRoutes, declared.approvedRoutes) ||
        !sameList(node.advertisedRoutes, declared.advertisedRoutes) || node.advertisedExitNode !== declared.advertisedExitNode;
      const identity = membership || node.nodeKey !== declared.nodeKey || node.discoKey !== declared.discoKey ||
        node.hostname !== declared.hostname || node.ephemeral !== declared.ephemeral || node.authKeyId !== declared.authKeyId ||
        node.os !== declared.os || node.version !== declared.version;
      if (identity) {
        if (node.name !== declared.name && this.names.get(node.name) === node.id) this.names.delete(node.name);
        if (node.nodeKey !== declared.nodeKey) this.byKey.delete(node.nodeKey);
        Object.assign(node, declared);
        this.names.set(node.name, node.id);
        this.byKey.set(node.nodeKey, node);
        this.syncExpired(node);
        if (!node.ephemeral) this.cancelEphemeralDeletion(node.id);
        else if (!online) this.scheduleEphemeralDeletion(node);
        this.emit({ kind: 'updated', node, membership: true, self: true });
      }
      if (this.localOnline.has(row.id)) continue;
      if (node.homeRelay !== homeRelay || node.natKind !== natKind || !sameList(node.endpoints, endpoints)) {
        node.endpoints = endpoints;
        node.homeRelay = homeRelay;
        node.natKind = natKind;
        this.emit({ kind: 'updated', node, membership: false, self: false, live: 'endpoints' });
      }
      node.lastSeen = lastSeen;
      if (node.online !== online) {
        node.online = online;
        if (node.ephemeral) {
          if (online) this.cancelEphemeralDeletion(node.id);
          else this.scheduleEphemeralDeletion(node);
        }
        this.emit({ kind: 'updated', node, membership: false, self: false, live: 'online' });
      }
    }
  }

  /** Writes every node streamed here again at the next flush (another replica had declared this one dead). */
  markLocalLivenessDirty(): void {
    for (const id of this.localOnline) this.livenessDirty.add(id);
  }

  private syncExpired(node: NodeRecord): void {
    if (this.isExpired(node)) this.expired.add(node.id);
    else this.expired.delete(node.id);
  }

  /** Expires the node key now: the node drops out of every netmap until it re-authenticates. */
  async expire(id: number): Promise<NodeRecord> {
    const node = this.require(id);
    const at = this.now();
    await this.store.setNodeKeyExpiry(id, at);
    node.keyExpiresAt = at;
    this.sweepExpiry();
    return node;
  }

  /**
   * An admin's rename, under the rules of a registration's hostname (the caller validated the
   * syntax). 409 when another node holds the name, here or in the database. Peers learn it through
   * their netmaps (and MagicDNS answers it); the node keeps it across re-registrations with the
   * same hostname. Resolves after the commit.
   */
  async rename(id: number, newName: string): Promise<NodeRecord> {
    const node = this.require(id);
    const name = newName.toLowerCase();
    if (name === node.name) return node;
    const holder = this.names.get(name);
    if (holder !== undefined && holder !== id) throw new ConflictError(`name ${name} is taken by ${this.nodes.has(holder) ? `node ${holder}` : 'a registration in progress'}`);
    this.names.set(name, id);
    try {
      await this.store.renameNode(id, name);
    } catch (err) {
      if (this.names.get(name) === id) this.names.delete(name);
      if (err instanceof IdentityTakenError && err.field === 'name') throw new ConflictError(`name ${name} is taken (by a node of another coordinator on the same database)`);
      throw err;
    }
    if (this.nodes.get(id) !== node) { // deleted meanwhile
      if (this.names.get(name) === id) this.names.delete(name);
      return node;
    }
    if (this.names.get(node.name) === id) this.names.delete(node.name);
    node.name = name;
    this.emit({ kind: 'updated', node, membership: true, self: true });
    return node;
  }

  /** Adds approved routes; each must be advertised by the node (an exit node: 0.0.0.0/0, ::/0). */
  async approveRoutes(id: number, routes: string[]): Promise<NodeRecord> {
    const node = this.require(id);
    for (const r of routes) {
      if (!node.advertisedRoutes.includes(r) && !(node.advertisedExitNode && EXIT_ROUTES.includes(r))) {
        throw new ConflictError(`node ${node.name} does not advertise ${r}`);
      }
    }
    const approvedRoutes = [...new Set([...node.approvedRoutes, ...routes])];
    await this.store.setApprovedRoutes([{ id, approvedRoutes }]);
    node.approvedRoutes = approvedRoutes;
    // self: the node learns the routes it now serves (its NAT takes traffic for them).
    this.emit({ kind: 'updated', node, membership: true, self: true });
    return node;
  }

  /** Withdraws approvals (a route the policy auto-approves comes back at the node's next registration). */
  async unapproveRoutes(id: number, routes: string[]): Promise<NodeRecord> {
    const node = this.require(id);
    for (const r of routes) {
      if (!node.approvedRoutes.includes(r)) throw new ConflictError(`node ${node.name} has no approved route ${r}`);
    }
    const approvedRoutes = node.approvedRoutes.filter((r) => !routes.includes(r));
    await this.store.setApprovedRoutes([{ id, approvedRoutes }]);
    node.approvedRoutes = approvedRoutes;
    this.emit({ kind: 'updated', node, membership: true, self: true });
    return node;
  }

  /** Applies approvals already committed by someone else (the policy holder, with its policy). */
  applyApprovals(approvals: { id: number; approvedRoutes: string[] }[]): void {
    for (const a of approvals) {
      const node = this.nodes.get(a.id);
      if (!node) continue;
      node.approvedRoutes = a.approvedRoutes;
      this.emit({ kind: 'updated', node, membership: true, self: true });
    }
  }

  /** A stream held here opened (true) or closed (false). */
  setOnline(id: number, local: boolean): void {
    const node = this.nodes.get(id);
    if (!node || this.localOnline.has(id) === local) return;
    if (local) this.localOnline.add(id);
    else this.localOnline.delete(id);
    node.lastSeen = this.now();
    this.livenessDirty.add(id);
    const online = local || this.remoteOnline.has(id);
    if (node.online === online) return;
    node.online = online;
    if (node.ephemeral) {
      if (online) this.cancelEphemeralDeletion(id);
      else this.scheduleEphemeralDeletion(node);
    }
    this.emit({ kind: 'updated', node, membership: false, self: false, live: 'online' });
  }

  /** What the node's stream reported; natKind undefined (an agent older than the field): keep what is known. */
  setEndpoints(id: number, endpoints: string[], homeRelay: string | null, natKind?: NatKind | null): void {
    const node = this.nodes.get(id);
    if (!node) return;
    const kind = natKind === undefined ? node.natKind : natKind;
    if (node.homeRelay === homeRelay && node.natKind === kind && sameList(node.endpoints, endpoints)) return;
    node.endpoints = endpoints;
    node.homeRelay = homeRelay;
    node.natKind = kind;
    this.livenessDirty.add(id);
    this.emit({ kind: 'updated', node, membership: false, self: false, live: 'endpoints' });
  }

  /** Tells listeners about keys that expired since the last sweep (call every second or so). */
  sweepExpiry(): void {
    const now = this.now();
    for (const node of this.nodes.values()) {
      if (!this.expired.has(node.id) && this.isExpired(node, now)) {
        this.expired.add(node.id);
        this.emit({ kind: 'updated', node, membership: true, self: true });
      }
    }
  }

  /** Writes the endpoints, NAT kinds and last-seen times that changed since the last call, in one batch. */
  async flushLiveness(): Promise<void> {
    // One flush at a time: an older batch committing after a newer one would bring back old values.
    if (this.livenessDirty.size === 0 || this.flushing) return;
    const rows: LivenessRow[] = [];
    for (const id of this.livenessDirty) {
      const n = this.nodes.get(id);
      if (n) rows.push({ id, endpoints: n.endpoints, homeRelay: n.homeRelay, natKind: n.natKind, lastSeen: n.lastSeen, online: this.localOnline.has(id) });
    }
    this.livenessDirty.clear();
    this.flushing = true;
    try {
      await this.store.saveLiveness(rows);
    } catch (err) {
      for (const r of rows) if (this.nodes.has(r.id)) this.livenessDirty.add(r.id); // next flush tries again
      throw err;
    } finally {
      this.flushing = false;
    }
  }

  close(): void {
    for (const t of this.ephemeralTimers.values()) clearTimeout(t);
    this.ephemeralTimers.clear();
  }

  private require(id: number): NodeRecord {
    const node = this.nodes.get(id);
    if (!node) throw new NotFoundError(`no node with id ${id}`);
    return node;
  }

  private insert(node: NodeRecord): NodeRecord {
    this.nodes.set(node.id, node);
    this.byKey.set(node.nodeKey, node);
    this.names.set(node.name, node.id);
    this.addresses.claim(node.ipv4);
    return node;
  }

  /** hostname, or hostname-1, hostname-2, ... : the first one nobody else holds. */
  private reserveName(hostname: string, id: number): string {
    let name = hostname;
    for (let i = 1; this.names.has(name) && this.names.get(name) !== id; i++) {
      const suffix = `-${i}`;
      name = `${hostname.slice(0, 63 - suffix.length).replace(/-+$/, '')}${suffix}`;
    }
    this.names.set(name, id);
    return name;
  }

  private scheduleEphemeralDeletion(node: NodeRecord): void {
    this.cancelEphemeralDeletion(node.id);
    const timer = setTimeout(() => {
      this.ephemeralTimers.delete(node.id);
      if (this.nodes.get(node.id) !== node || node.online) return;
      this.delete(node.id).then(
        () => this.opts.log.info({ node: node.name, id: node.id }, 'ephemeral node deleted after going offline'),
        (err: Error) => {
          this.opts.log.error({ err: err.message, id: node.id }, 'ephemeral node deletion failed; retrying');
          this.scheduleEphemeralDeletion(node);
        },
      );
    }, this.opts.ephemeralTimeoutMs);
    timer.unref();
    this.ephemeralTimers.set(node.id, timer);
  }

  private cancelEphemeralDeletion(id: number): void {
    const t = this.ephemeralTimers.get(id);
    if (t) clearTimeout(t);
    this.ephemeralTimers.delete(id);
  }

  private emit(change: NodeChange): void {
    for (const l of this.listeners) l(change);
  }
}
