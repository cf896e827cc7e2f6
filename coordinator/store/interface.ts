// What the coordinator keeps durably, behind one small interface (SQLite file or PostgreSQL).
// The live state is in memory; a store only loads it once at start and writes changes through.
// Every method that takes several rows commits them in one transaction, and resolves only once
// that transaction is durable: callers acknowledge a request after the promise resolves.
// Several coordinators may share one PostgreSQL database, so the facts that must be unique are
// enforced by the database, not by memory: a single-use key counts one use at most
// (AuthKeyUsedError), ids, node keys, names and addresses are unique (IdentityTakenError).
import type { NatKind } from '../../proto/control/schemas.js';

/** A node as stored. Times are milliseconds since the epoch. */
export interface NodeRow {
  id: number;
  nodeKey: string;
  discoKey: string;
  /** The hostname the node asked for. */
  hostname: string;
  /** The unique name it was given (hostname, or hostname-N on a clash). */
  name: string;
  ipv4: string;
  ipv6: string;
  createdAt: number;
  keyExpiresAt: number | null;
  ephemeral: boolean;
  tags: string[];
  /** Owner, from the auth key it (re-)registered with; null: none. */
  user: string | null;
  authKeyId: number | null;
  advertisedRoutes: string[];
  advertisedExitNode: boolean;
  approvedRoutes: string[];
  /** What the agent said at its last registration about its OS and pinhole version (null: not said). */
  os: string | null;
  version: string | null;
  /** Last known endpoints, home relay, NAT kind and last-seen time (written lazily, in batches). */
  endpoints: string[];
  homeRelay: string | null;
  /** The NAT the node reported with its endpoints (null: not reported). */
  natKind: NatKind | null;
  lastSeen: number | null;
}

export interface AuthKeyRow {
  id: number;
  /** Public lookup part of the key (phk_<prefix>_<secret>). */
  prefix: string;
  /** SHA-256 of the secret part, hex. */
  secretHash: string;
  reusable: boolean;
  ephemeral: boolean;
  tags: string[];
  /** Owner given to every node registered with it (`authkey create --user`); null: none. */
  user: string | null;
  createdAt: number;
  expiresAt: number | null;
  usedCount: number;
  revokedAt: number | null;
}

export interface PolicyRow {
  /** The policy as the admin sent it (JSON text), or null: no policy, every node sees every node. */
  json: string | null;
  updatedAt: number | null;
}

export interface RouteApprovalRow {
  id: number;
  approvedRoutes: string[];
}

/** Endpoints and last-seen: not acknowledged to anyone, so saved in batches. */
export interface LivenessRow {
  id: number;
  endpoints: string[];
  homeRelay: string | null;
  natKind: NatKind | null;
  lastSeen: number | null;
  /** Whether this coordinator holds the node's stream (undefined: leave what is stored; PostgreSQL only). */
  online?: boolean;
}

export interface StoreSnapshot {
  serverPrivateKey: string | null;
  /** During a key rotation: the key that replaces it. */
  nextServerPrivateKey: string | null;
  nodes: NodeRow[];
  authKeys: AuthKeyRow[];
  policy: PolicyRow;
  /** Highest ids ever handed out (ids are never reused, even after a delete). */
  lastNodeId: number;
  lastAuthKeyId: number;
  /** PostgreSQL (replicas): the last change id this snapshot includes. */
  lastChangeId?: number;
  /** PostgreSQL (replicas): nodes whose stream another live replica holds. */
  onlineElsewhere?: number[];
}

/** One committed transaction of some replica: what it changed (feed readers load the rows). */
export interface ChangeRow {
  id: number;
  replica: string;
  nodeIds: number[];
  authKeyIds: number[];
  policy: boolean;
  /** The coordinator key(s) changed: a rotation started or finished on that replica. */
  serverKeys: boolean;
}

/**
 * The change feed of a database shared by several coordinators (replicas). Ids are gapless and
 * become visible in id order, so a reader that has applied id N only ever needs the ids after N.
 */
export interface ChangeFeedStore {
  /** This coordinator's name in the changes and replicas tables (random per process). */
  readonly replicaId: string;
  /**
   * Up to `limit` changes after `after`, in order, and the last id committed. A first id above
   * after + 1 (or none while lastId > after) means the rows were pruned: reload the snapshot.
   */
  changesAfter(after: number, limit: number): Promise<{ changes: ChangeRow[]; lastId: number }>;
  /** The nodes among `ids` that still exist, and which of them another replica streams. */
  loadNodes(ids: number[]): Promise<{ rows: NodeRow[]; onlineElsewhere: number[] }>;
  loadAuthKeys(ids: number[]): Promise<AuthKeyRow[]>;
  loadPolicy(): Promise<PolicyRow>;
  /** The stored coordinator keys (private, base64), current and, during a rotation, next. */
  loadServerKeys(): Promise<{ current: string | null; next: string | null }>;
  /** Everything, with lastChangeId and onlineElsewhere (ControlStore.load). */
  loadSnapshot(): Promise<StoreSnapshot>;
  /**
   * Records this replica alive; declares replicas silent for staleMs dead (their nodes offline,
   * as a change); prunes changes older than retentionMs or more than maxRows behind the last.
   * reinstated: this replica had itself been declared dead (its nodes' online state was cleared).
   */
  heartbeat(opts: { staleMs: number; retentionMs: number; maxRows: number }): Promise<{ reinstated: boolean; reaped: string[] }>;
  /** A dedicated connection LISTENing for commits; reconnects by itself, onConnected after each (re)connect. */
  listen(handlers: { onNotify: () => void; onConnected: () => void; onError: (err: Error) => void }): { close(): Promise<void> };
  /** Removes this replica's row and its nodes' online state (a clean shutdown). */
  leave(): Promise<void>;
}

/** The auth key was revoked or, single-use, already used (by this or another coordinator). */
export class AuthKeyUsedError extends Error {
  override readonly name = 'AuthKeyUsedError';
}

/** Another row already holds this id, node key, name or address (another coordinator took it). */
export class IdentityTakenError extends Error {
  override readonly name = 'IdentityTakenError';
  constructor(readonly field: 'id' | 'nodeKey' | 'name' | 'address' | 'prefix', message: string) {
    super(message);
  }
}

/** What is taken in the database, for a coordinator that lost a race to another one. */
export interface TakenIdentities {
  lastNodeId: number;
  lastAuthKeyId: number;
  nodes: { id: number; nodeKey: string; name: string; ipv4: string }[];
  authKeyPrefixes: string[];
}

export interface ControlStore {
  /** Present when several coordinators may share the database (PostgreSQL). */
  readonly feed?: ChangeFeedStore;
  load(): Promise<StoreSnapshot>;
  /** Stores `current` as the first coordinator key unless one is stored already; returns the stored one. */
  initServerKey(current: string): Promise<string>;
  /** The coordinator's static key(s), replacing what was stored. */
  saveServerKeys(current: string, next: string | null): Promise<void>;
  /** Throws IdentityTakenError when the id or prefix is taken. */
  insertAuthKey(key: AuthKeyRow): Promise<void>;
  revokeAuthKey(id: number, at: number): Promise<void>;
  /**
   * A registration: the node inserted, or its identity columns replaced (not the liveness ones),
   * and one use of the auth key counted, together. Throws AuthKeyUsedError when the key is revoked
   * or a used single-use key, IdentityTakenError when the id belongs to another node key or the
   * name or address is held by another node; nothing is written then.
   */
  saveRegistration(node: NodeRow, authKeyId: number | null): Promise<void>;
  /** Ids, names and addresses held in the database (after an IdentityTakenError). */
  takenIdentities(): Promise<TakenIdentities>;
  setNodeKeyExpiry(id: number, keyExpiresAt: number | null): Promise<void>;
  /** An admin's rename. Throws IdentityTakenError('name') when another node holds the name; nothing is written then. */
  renameNode(id: number, name: string): Promise<void>;
  setApprovedRoutes(approvals: RouteApprovalRow[]): Promise<void>;
  deleteNode(id: number): Promise<void>;
  /** The policy and the routes it auto-approves, together. */
  savePolicy(policy: PolicyRow, approvals: RouteApprovalRow[]): Promise<void>;
  saveLiveness(rows: LivenessRow[]): Promise<void>;
  close(): Promise<void>;
}
