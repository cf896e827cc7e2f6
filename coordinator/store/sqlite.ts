// ControlStore on one SQLite file (sqlite3 package): WAL, synchronous=FULL so a commit is on disk
// before the caller acknowledges anything, file mode 0600 (it holds the server's private key).
// Transactions run one at a time through a queue: the sqlite3 connection interleaves statements
// from concurrent callers, and BEGIN..COMMIT must not.
import { chmodSync, closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import sqlite3 from 'sqlite3';
import { DatabaseOpenError, SchemaTooNewError } from './errors.js';
import { MIGRATIONS, SCHEMA_VERSION } from './migrations.js';
import { AuthKeyUsedError, IdentityTakenError } from './interface.js';
import { natKindFromDb } from './nat-kind-column.js';
import type { AuthKeyRow, ControlStore, LivenessRow, NodeRow, PolicyRow, RouteApprovalRow, StoreSnapshot, TakenIdentities } from './interface.js';


type Params = (string | number | null)[];

interface PendingRegistration {
  node: NodeRow;
  authKeyId: number | null;
  resolve(): void;
  reject(err: Error): void;
}
/** Registrations committed together at most (a bound on one transaction's length). */
const MAX_REGISTRATION_GROUP = 256;

interface NodeDbRow {
  id: number; node_key: string; disco_key: string; hostname: string; name: string; ipv4: string; ipv6: string;
  created_at: number; key_expires_at: number | null; ephemeral: number; tags: string; user_name: string | null; auth_key_id: number | null;
  advertised_routes: string; advertised_exit_node: number; approved_routes: string;
  endpoints: string; home_relay: string | null; last_seen: number | null; os: string | null; agent_version: string | null;
  nat_kind: string | null;
}

interface AuthKeyDbRow {
  id: number; prefix: string; secret_hash: string; reusable: number; ephemeral: number; tags: string;
  user_name: string | null; created_at: number; expires_at: number | null; used_count: number; revoked_at: number | null;
}

const NODE_COLUMNS = [
  'id', 'node_key', 'disco_key', 'hostname', 'name', 'ipv4', 'ipv6', 'created_at', 'key_expires_at', 'ephemeral',
  'tags', 'user_name', 'auth_key_id', 'advertised_routes', 'advertised_exit_node', 'approved_routes', 'endpoints', 'home_relay', 'last_seen',
  'os', 'agent_version', 'nat_kind',
];
const LIVENESS_COLUMNS = new Set(['endpoints', 'home_relay', 'last_seen', 'nat_kind']);
// A re-registration replaces what the node declared, never the liveness columns written meanwhile;
// an id held by another node key is left alone (no row changes: IdentityTakenError).
const UPSERT_NODE =
  `INSERT INTO nodes (${NODE_COLUMNS.join(', ')}) VALUES (${NODE_COLUMNS.map(() => '?').join(', ')}) ` +
  `ON CONFLICT(id) DO UPDATE SET ${NODE_COLUMNS.filter((c) => c !== 'id' && !LIVENESS_COLUMNS.has(c)).map((c) => `${c} = excluded.${c}`).join(', ')} ` +
  'WHERE nodes.node_key = excluded.node_key';
// A use is counted only on a key that is not revoked and, single-use, not used yet.
const COUNT_KEY_USE = 'UPDATE auth_keys SET used_count = used_count + 1 WHERE id = ? AND revoked_at IS NULL AND (reusable = 1 OR used_count = 0)';

/** SQLite's "UNIQUE constraint failed: nodes.ipv4" as the interface's error; anything else unchanged. */
function uniqueViolation(err: unknown): unknown {
  const m = /UNIQUE constraint failed: (\w+)\.(\w+)/.exec((err as Error).message ?? '');
  if (!m) return err;
  const field = ({ id: 'id', node_key: 'nodeKey', name: 'name', ipv4: 'address', ipv6: 'address', prefix: 'prefix' } as const)[m[2] as 'id'];
  return field ? new IdentityTakenError(field, `${m[1]}.${m[2]} is taken`) : err;
}

function nodeParams(n: NodeRow): Params {
  return [
    n.id, n.nodeKey, n.discoKey, n.hostname, n.name, n.ipv4, n.ipv6, n.createdAt, n.keyExpiresAt, n.ephemeral ? 1 : 0,
    JSON.stringify(n.tags), n.user, n.authKeyId, JSON.stringify(n.advertisedRoutes), n.advertisedExitNode ? 1 : 0,
    JSON.stringify(n.approvedRoutes), JSON.stringify(n.endpoints), n.homeRelay, n.lastSeen, n.os, n.version, n.natKind,
  ];
}

function nodeFromDb(r: NodeDbRow): NodeRow {
  return {
    id: r.id, nodeKey: r.node_key, discoKey: r.disco_key, hostname: r.hostname, name: r.name, ipv4: r.ipv4, ipv6: r.ipv6,
    createdAt: r.created_at, keyExpiresAt: r.key_expires_at, ephemeral: r.ephemeral === 1, tags: JSON.parse(r.tags) as string[],
    user: r.user_name, authKeyId: r.auth_key_id, advertisedRoutes: JSON.parse(r.advertised_routes) as string[],
    advertisedExitNode: r.advertised_exit_node === 1, approvedRoutes: JSON.parse(r.approved_routes) as string[],
    endpoints: JSON.parse(r.endpoints) as string[], homeRelay: r.home_relay, lastSeen: r.last_seen, os: r.os, version: r.agent_version,
    natKind: natKindFromDb(r.nat_kind),
  };
}

function authKeyFromDb(r: AuthKeyDbRow): AuthKeyRow {
  return {
    id: r.id, prefix: r.prefix, secretHash: r.secret_hash, reusable: r.reusable === 1, ephemeral: r.ephemeral === 1,
    tags: JSON.parse(r.tags) as string[], user: r.user_name, createdAt: r.created_at, expiresAt: r.expires_at, usedCount: r.used_count,
    revokedAt: r.revoked_at,
  };
}

/** Is `pid` a running coordinator? (A stale lock's pid may have been reused by something else.) */
function coordinatorRunning(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('coordinator');
  } catch {
    return false;
  }
}

/**
 * One coordinator per database: each keeps the whole state in memory, so two on one file would
 * hand out the same ids and addresses. A lock file holds the owner's pid; a dead owner's lock
 * (after kill -9) is taken over.
 */
function lockDatabase(path: string): () => void {
  const lock = `${path}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(lock, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(lock, 'utf8').trim() === String(process.pid)) unlinkSync(lock);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) {
        throw new DatabaseOpenError(`cannot lock database ${path}: ${(err as Error).message}`);
      }
      let owner = NaN;
      try {
        owner = Number(readFileSync(lock, 'utf8').trim());
      } catch {
        // unreadable or vanished: treat as stale
      }
      if (owner > 0 && owner !== process.pid && coordinatorRunning(owner)) {
        throw new DatabaseOpenError(`database ${path} is in use by another coordinator (pid ${owner})`);
      }
      try {
        unlinkSync(lock);
      } catch {
        // someone else removed it first
      }
    }
  }
}

export class SqliteStore implements ControlStore {
  private queue: Promise<void> = Promise.resolve();
  /** Registrations waiting for the next transaction (saveRegistration), or null. */
  private registrations: PendingRegistration[] | null = null;

  private constructor(private readonly db: sqlite3.Database, private readonly unlock: () => void) {}

  /** Opens (creating with mode 0600 if needed) and migrates the database at `path`. */
  static async open(path: string): Promise<SqliteStore> {
    try {
      closeSync(openSync(path, 'a', 0o600));
      chmodSync(path, 0o600);
    } catch (err) {
      throw new DatabaseOpenError(`cannot open database ${path}: ${(err as Error).message}`);
    }
    const unlock = lockDatabase(path);
    let store: SqliteStore | null = null;
    try {
      const db = await new Promise<sqlite3.Database>((resolve, reject) => {
        const d = new sqlite3.Database(path, sqlite3.OPEN_READWRITE, (err) => (err ? reject(err) : resolve(d)));
      }).catch((err: Error) => { throw new DatabaseOpenError(`cannot open database ${path}: ${err.message}`); });
      store = new SqliteStore(db, unlock);
      db.configure('busyTimeout', 5000);
      await store.run('PRAGMA journal_mode = WAL');
      await store.run('PRAGMA synchronous = FULL');
      await store.run('PRAGMA foreign_keys = ON');
      await store.migrate();
      return store;
    } catch (err) {
      if (store) await store.close().catch(() => undefined);
      else unlock();
      throw err;
    }
  }

  private run(sql: string, params: Params = []): Promise<void> {
    return this.change(sql, params).then(() => undefined);
  }

  /** Runs one statement; resolves with the number of rows it changed. */
  private change(sql: string, params: Params = []): Promise<number> {
    return new Promise((resolve, reject) => this.db.run(sql, params, function (this: sqlite3.RunResult, err) {
      if (err) reject(uniqueViolation(err));
      else resolve(this.changes);
    }));
  }

  private all<T>(sql: string, params: Params = []): Promise<T[]> {
    return new Promise((resolve, reject) => this.db.all<T>(sql, params, (err, rows) => (err ? reject(err) : resolve(rows))));
  }

  /** One prepared statement run for every parameter list, without a round trip per row. */
  private runMany(sql: string, paramLists: Params[]): Promise<void> {
    return new Promise((resolve, reject) => {
      let failed: Error | null = null;
      const stmt = this.db.prepare(sql, (err) => { if (err) failed ??= err; });
      for (const params of paramLists) stmt.run(params, (err: Error | null) => { if (err) failed ??= err; });
      stmt.finalize(() => (failed ? reject(failed) : resolve()));
    });
  }

  private exec(sql: string): Promise<void> {
    return new Promise((resolve, reject) => this.db.exec(sql, (err) => (err ? reject(err) : resolve())));
  }

  /** Runs `body` inside BEGIN IMMEDIATE..COMMIT, after every transaction queued before it. */
  private transaction(body: () => Promise<void>): Promise<void> {
    const done = this.queue.then(async () => {
      await this.run('BEGIN IMMEDIATE');
      try {
        await body();
        await this.run('COMMIT');
      } catch (err) {
        await this.run('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
    this.queue = done.catch(() => undefined);
    return done;
  }

  private async migrate(): Promise<void> {
    await this.run('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const rows = await this.all<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
    const current = rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new SchemaTooNewError(`database schema v${current} is newer than this coordinator (v${SCHEMA_VERSION})`);
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      await this.transaction(async () => {
        await this.exec(m.sql);
        await this.run('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, Date.now()]);
      });
    }
  }

  async load(): Promise<StoreSnapshot> {
    const meta = await this.all<{ key: string; value: string }>('SELECT key, value FROM meta');
    const nodes = await this.all<NodeDbRow>('SELECT * FROM nodes ORDER BY id');
    const keys = await this.all<AuthKeyDbRow>('SELECT * FROM auth_keys ORDER BY id');
    const policy = await this.all<{ json: string | null; updated_at: number | null }>('SELECT json, updated_at FROM policy WHERE id = 1');
    const seqs = await this.all<{ name: string; seq: number }>('SELECT name, seq FROM sqlite_sequence');
    const seq = (table: string): number => seqs.find((s) => s.name === table)?.seq ?? 0;
    return {
      serverPrivateKey: meta.find((m) => m.key === 'server_private_key')?.value ?? null,
      nextServerPrivateKey: meta.find((m) => m.key === 'next_server_private_key')?.value ?? null,
      nodes: nodes.map(nodeFromDb),
      authKeys: keys.map(authKeyFromDb),
      policy: { json: policy[0]?.json ?? null, updatedAt: policy[0]?.updated_at ?? null },
      lastNodeId: seq('nodes'),
      lastAuthKeyId: seq('auth_keys'),
    };
  }

  async initServerKey(current: string): Promise<string> {
    await this.transaction(() => this.run("INSERT OR IGNORE INTO meta (key, value) VALUES ('server_private_key', ?)", [current]));
    const rows = await this.all<{ value: string }>("SELECT value FROM meta WHERE key = 'server_private_key'");
    return rows[0]!.value;
  }

  saveServerKeys(current: string, next: string | null): Promise<void> {
    return this.transaction(async () => {
      await this.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('server_private_key', ?)", [current]);
      if (next === null) await this.run("DELETE FROM meta WHERE key = 'next_server_private_key'");
      else await this.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('next_server_private_key', ?)", [next]);
    });
  }

  insertAuthKey(k: AuthKeyRow): Promise<void> {
    return this.transaction(() => this.run(
      'INSERT INTO auth_keys (id, prefix, secret_hash, reusable, ephemeral, tags, user_name, created_at, expires_at, used_count, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      [k.id, k.prefix, k.secretHash, k.reusable ? 1 : 0, k.ephemeral ? 1 : 0, JSON.stringify(k.tags), k.user, k.createdAt, k.expiresAt, k.usedCount, k.revokedAt],
    ));
  }

  revokeAuthKey(id: number, at: number): Promise<void> {
    return this.transaction(() => this.run('UPDATE auth_keys SET revoked_at = ? WHERE id = ?', [at, id]));
  }

  /**
   * Registrations are committed in groups: those that arrive while earlier transactions run share
   * the next one (one fsync for all), each inside its own savepoint, so one that fails (a taken
   * identity, a used key) is rolled back alone and the rest still commit. Each caller hears back
   * only after the commit that holds its row.
   */
  saveRegistration(node: NodeRow, authKeyId: number | null): Promise<void> {
    return new Promise((resolve, reject) => {
      const item: PendingRegistration = { node, authKeyId, resolve, reject };
      if (this.registrations && this.registrations.length < MAX_REGISTRATION_GROUP) {
        this.registrations.push(item);
        return;
      }
      const group = [item];
      this.registrations = group;
      const failures = new Map<PendingRegistration, Error>();
      this.transaction(async () => {
        if (this.registrations === group) this.registrations = null; // later arrivals start the next group
        for (const r of group) {
          await this.run('SAVEPOINT registration');
          try {
            await this.insertRegistration(r.node, r.authKeyId);
          } catch (err) {
            failures.set(r, err as Error);
            await this.run('ROLLBACK TO registration');
          }
          await this.run('RELEASE registration');
        }
      }).then(
        () => { for (const r of group) { const err = failures.get(r); if (err) r.reject(err); else r.resolve(); } },
        (err: Error) => { for (const r of group) r.reject(failures.get(r) ?? err); },
      );
    });
  }

  private async insertRegistration(node: NodeRow, authKeyId: number | null): Promise<void> {
    if (await this.change(UPSERT_NODE, nodeParams(node)) === 0) throw new IdentityTakenError('id', `node id ${node.id} belongs to another node key`);
    if (authKeyId !== null && await this.change(COUNT_KEY_USE, [authKeyId]) === 0) {
      throw new AuthKeyUsedError('auth key revoked or, single-use, already used');
    }
  }

  async takenIdentities(): Promise<TakenIdentities> {
    const nodes = await this.all<{ id: number; node_key: string; name: string; ipv4: string }>('SELECT id, node_key, name, ipv4 FROM nodes');
    const prefixes = await this.all<{ prefix: string }>('SELECT prefix FROM auth_keys');
    const seqs = await this.all<{ name: string; seq: number }>('SELECT name, seq FROM sqlite_sequence');
    const seq = (table: string): number => seqs.find((s) => s.name === table)?.seq ?? 0;
    return {
      lastNodeId: seq('nodes'), lastAuthKeyId: seq('auth_keys'),
      nodes: nodes.map((n) => ({ id: n.id, nodeKey: n.node_key, name: n.name, ipv4: n.ipv4 })),
      authKeyPrefixes: prefixes.map((p) => p.prefix),
    };
  }

  setNodeKeyExpiry(id: number, keyExpiresAt: number | null): Promise<void> {
    return this.transaction(() => this.run('UPDATE nodes SET key_expires_at = ? WHERE id = ?', [keyExpiresAt, id]));
  }

  renameNode(id: number, name: string): Promise<void> {
    return this.transaction(() => this.run('UPDATE nodes SET name = ? WHERE id = ?', [name, id]));
  }

  setApprovedRoutes(approvals: RouteApprovalRow[]): Promise<void> {
    return this.transaction(() => this.runApprovals(approvals));
  }

  private runApprovals(approvals: RouteApprovalRow[]): Promise<void> {
    return this.runMany('UPDATE nodes SET approved_routes = ? WHERE id = ?', approvals.map((a) => [JSON.stringify(a.approvedRoutes), a.id]));
  }

  deleteNode(id: number): Promise<void> {
    return this.transaction(() => this.run('DELETE FROM nodes WHERE id = ?', [id]));
  }

  savePolicy(policy: PolicyRow, approvals: RouteApprovalRow[]): Promise<void> {
    return this.transaction(async () => {
      await this.run('UPDATE policy SET json = ?, updated_at = ? WHERE id = 1', [policy.json, policy.updatedAt]);
      await this.runApprovals(approvals);
    });
  }

  saveLiveness(rows: LivenessRow[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return this.transaction(() => this.runMany(
      'UPDATE nodes SET endpoints = ?, home_relay = ?, nat_kind = ?, last_seen = ? WHERE id = ?',
      rows.map((r) => [JSON.stringify(r.endpoints), r.homeRelay, r.natKind, r.lastSeen, r.id]),
    ));
  }

  async close(): Promise<void> {
    await this.queue;
    try {
      await new Promise<void>((resolve, reject) => this.db.close((err) => (err ? reject(err) : resolve())));
    } finally {
      this.unlock();
    }
  }
}
