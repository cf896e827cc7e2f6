// What the coordinator keeps durably, behind one small interface (SQLite now, PostgreSQL later).
// The live state is in memory; a store only loads it once at start and writes changes through.
// Every method that takes several rows commits them in one transaction, and resolves only once
// that transaction is durable: callers acknowledge a request after the promise resolves.

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
  /** Last known endpoints, home relay and last-seen time (written lazily, in batches). */
  endpoints: string[];
  homeRelay: string | null;
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
  lastSeen: number | null;
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
}

export interface ControlStore {
  load(): Promise<StoreSnapshot>;
  /** The coordinator's static key(s), replacing what was stored. */
  saveServerKeys(current: string, next: string | null): Promise<void>;
  insertAuthKey(key: AuthKeyRow): Promise<void>;
  revokeAuthKey(id: number, at: number): Promise<void>;
  /**
   * A registration: the node inserted, or its identity columns replaced (not the liveness ones),
   * and one use of the auth key counted, together.
   */
  saveRegistration(node: NodeRow, authKeyId: number | null): Promise<void>;
  setNodeKeyExpiry(id: number, keyExpiresAt: number | null): Promise<void>;
  setApprovedRoutes(approvals: RouteApprovalRow[]): Promise<void>;
  deleteNode(id: number): Promise<void>;
  /** The policy and the routes it auto-approves, together. */
  savePolicy(policy: PolicyRow, approvals: RouteApprovalRow[]): Promise<void>;
  saveLiveness(rows: LivenessRow[]): Promise<void>;
  close(): Promise<void>;
}
