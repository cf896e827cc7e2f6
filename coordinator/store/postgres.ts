// ControlStore on PostgreSQL (the `pg` client): a bounded pool, every statement under a timeout,
// every write in one transaction that has committed (synchronous_commit on) before the promise
// resolves. Several coordinators may share the database: unique constraints, the single-use CHECK
// and conditional updates decide who wins, never memory (interface.ts). A deadlock or
// serialization failure is retried a few times; anything else goes to the caller.
import pg from 'pg';
import { SCHEMA_VERSION } from './migrations.js';
import { POSTGRES_MIGRATIONS } from './postgres-migrations.js';
import { watchCheckedOut } from './pg-checkout.js';
import { natKindFromDb } from './nat-kind-column.js';
import { DatabaseOpenError, SchemaTooNewError } from './errors.js';
import type { PostgresTarget } from './database-url.js';
import { appendChange, DB_NOW_MS, newReplicaId, PostgresChangeFeed, type ChangeSet } from './postgres-feed.js';
import { AuthKeyUsedError, IdentityTakenError } from './interface.js';
import type { AuthKeyRow, ControlStore, LivenessRow, NodeRow, PolicyRow, RouteApprovalRow, StoreSnapshot, TakenIdentities } from './interface.js';

export interface PostgresStoreOptions {
  target: PostgresTarget;
  /** undefined: PGPASSWORD or the pgpass file (PGPASSFILE, ~/.pgpass), as libpq does. */
  password?: string;
  /** Connections at most (default 8). */
  poolSize?: number;
  /** Server-side limit on one statement, and the client-side wait for its answer (default 10 s). */
  statementTimeoutMs?: number;
  /** Connecting at most (default 5 s). */
  connectTimeoutMs?: number;
  /** An idle pooled connection failed (the pool drops it and opens another when needed). */
  onIdleError?: (err: Error) => void;
}

export class TargetNotEmptyError extends Error {
  override readonly name = 'TargetNotEmptyError';
}

type Queryable = pg.ClientBase;
type Row = Record<string, unknown>;

/** Both stores' schema versions must agree: a database moves between them (migrate-db). */
if (POSTGRES_MIGRATIONS[POSTGRES_MIGRATIONS.length - 1]!.version !== SCHEMA_VERSION) {
  throw new Error('postgres-migrations.ts and migrations.ts disagree on the schema version');
}

// Any constant shared by every pinhole coordinator: serializes schema migrations and imports.
const MIGRATION_LOCK = 0x70696e68; // "pinh"
const RETRYABLE = new Set(['40001', '40P01']); // serialization failure, deadlock
const MAX_ATTEMPTS = 3;

const NODE_COLUMNS = [
  'id', 'node_key', 'disco_key', 'hostname', 'name', 'ipv4', 'ipv6', 'created_at', 'key_expires_at', 'ephemeral',
  'tags', 'user_name', 'auth_key_id', 'advertised_routes', 'advertised_exit_node', 'approved_routes', 'endpoints', 'home_relay', 'last_seen',
  'os', 'agent_version', 'nat_kind',
];
const LIVENESS_COLUMNS = new Set(['endpoints', 'home_relay', 'last_seen', 'nat_kind']);
const NODE_VALUES = NODE_COLUMNS.map((_, i) => `$${i + 1}`).join(', ');
// As in sqlite.ts: a re-registration keeps the liveness columns; an id held by another node key
// is left alone (no row: IdentityTakenError).
const UPSERT_NODE =
  `INSERT INTO nodes (${NODE_COLUMNS.join(', ')}) VALUES (${NODE_VALUES}) ` +
  `ON CONFLICT (id) DO UPDATE SET ${NODE_COLUMNS.filter((c) => c !== 'id' && !LIVENESS_COLUMNS.has(c)).map((c) => `${c} = EXCLUDED.${c}`).join(', ')} ` +
  'WHERE nodes.node_key = EXCLUDED.node_key';
const INSERT_NODE = `INSERT INTO nodes (${NODE_COLUMNS.join(', ')}) VALUES (${NODE_VALUES})`;
const COUNT_KEY_USE = 'UPDATE auth_keys SET used_count = used_count + 1 WHERE id = $1 AND revoked_at IS NULL AND (reusable OR used_count = 0)';
const INSERT_AUTH_KEY =
  'INSERT INTO auth_keys (id, prefix, secret_hash, reusable, ephemeral, tags, user_name, created_at, expires_at, used_count, revoked_at) ' +
  'VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)';
// Only rises: a row lock is taken only by a transaction that raises it.
const RAISE_HIGH_WATER = 'UPDATE id_high_water SET last_id = $2 WHERE name = $1 AND last_id < $2';

const CONSTRAINT_FIELDS: Record<string, IdentityTakenError['field']> = {
  nodes_pkey: 'id', nodes_node_key_unique: 'nodeKey', nodes_name_unique: 'name', nodes_ipv4_unique: 'address', nodes_ipv6_unique: 'address',
  auth_keys_pkey: 'id', auth_keys_prefix_unique: 'prefix',
};

function nodeParams(n: NodeRow): unknown[] {
  return [
    n.id, n.nodeKey, n.discoKey, n.hostname, n.name, n.ipv4, n.ipv6, n.createdAt, n.keyExpiresAt, n.ephemeral,
    JSON.stringify(n.tags), n.user, n.authKeyId, JSON.stringify(n.advertisedRoutes), n.advertisedExitNode,
    JSON.stringify(n.approvedRoutes), JSON.stringify(n.endpoints), n.homeRelay, n.lastSeen, n.os, n.version, n.natKind,
  ];
}

function authKeyParams(k: AuthKeyRow): unknown[] {
  return [k.id, k.prefix, k.secretHash, k.reusable, k.ephemeral, JSON.stringify(k.tags), k.user, k.createdAt, k.expiresAt, k.usedCount, k.revokedAt];
}

// BIGINT arrives as a string (it may exceed 2^53; ours are ids and millisecond times, which do not).
const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null ? null : Number(v));
const strings = (v: unknown): string[] => JSON.parse(v as string) as string[];

function nodeFromDb(r: Row): NodeRow {
  return {
    id: num(r.id), nodeKey: r.node_key as string, discoKey: r.disco_key as string, hostname: r.hostname as string, name: r.name as string,
    ipv4: r.ipv4 as string, ipv6: r.ipv6 as string, createdAt: num(r.created_at), keyExpiresAt: numOrNull(r.key_expires_at),
    ephemeral: r.ephemeral as boolean, tags: strings(r.tags), user: r.user_name as string | null, authKeyId: numOrNull(r.auth_key_id),
    advertisedRoutes: strings(r.advertised_routes), advertisedExitNode: r.advertised_exit_node as boolean, approvedRoutes: strings(r.approved_routes),
    endpoints: strings(r.endpoints), homeRelay: r.home_relay as string | null, lastSeen: numOrNull(r.last_seen),
    os: r.os as string | null, version: r.agent_version as string | null, natKind: natKindFromDb(r.nat_kind),
  };
}

function authKeyFromDb(r: Row): AuthKeyRow {
  return {
    id: num(r.id), prefix: r.prefix as string, secretHash: r.secret_hash as string, reusable: r.reusable as boolean,
    ephemeral: r.ephemeral as boolean, tags: strings(r.tags), user: r.user_name as string | null, createdAt: num(r.created_at),
    expiresAt: numOrNull(r.expires_at), usedCount: num(r.used_count), revokedAt: numOrNull(r.revoked_at),
  };
}

/** The first line of a pg or socket error (a refused connection to several addresses is an AggregateError without a message). */
function describe(err: unknown): string {
  const e = err as Error & { code?: string; errors?: Error[] };
  const text = e.message || e.errors?.[0]?.message || e.code || String(err);
  return text.split('\n')[0]!;
}

/** A pg error as the interface's error, when it is one of the outcomes the interface names. */
function translate(err: unknown): unknown {
  const e = err as { code?: string; constraint?: string };
  if (e.code === '23505' && e.constraint && CONSTRAINT_FIELDS[e.constraint]) {
    return new IdentityTakenError(CONSTRAINT_FIELDS[e.constraint]!, `${e.constraint}: taken`);
  }
  if (e.code === '23514' && e.constraint === 'auth_keys_single_use') return new AuthKeyUsedError('single-use auth key already used');
  return err;
}

/** A replica silent this long is dead to load(): its nodes do not count as online. */
const REPLICA_STALE_MS = 10_000;

export class PostgresStore implements ControlStore {
  private closed = false;
  readonly feed: PostgresChangeFeed;
  private readonly replica = newReplicaId();

  private constructor(private readonly pool: pg.Pool, readonly display: string, clientConfig: pg.ClientConfig) {
    this.feed = new PostgresChangeFeed(this.replica, (body, begin) => this.transaction(body, begin), clientConfig, nodeFromDb, authKeyFromDb, () => this.load());
  }

  /** Runs `body` and appends its change (the last statement: postgres-feed.ts says why). */
  private write(change: ChangeSet | ((c: Queryable) => Promise<ChangeSet>), body?: (c: Queryable) => Promise<void>): Promise<void> {
    return this.transaction(async (c) => {
      await body?.(c);
      await appendChange(c, this.replica, typeof change === 'function' ? await change(c) : change);
    });
  }

  /** Connects (failing fast with one line if the database cannot be reached) and migrates. */
  static async open(opts: PostgresStoreOptions): Promise<PostgresStore> {
    const { target } = opts;
    const timeout = opts.statementTimeoutMs ?? 10_000;
    const clientConfig: pg.ClientConfig = {
      host: target.host, port: target.port, database: target.database,
      ...(target.user !== null ? { user: target.user } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ssl: target.ssl,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
      statement_timeout: timeout,
      query_timeout: timeout + 1000,
      lock_timeout: timeout,
      idle_in_transaction_session_timeout: timeout * 3,
      application_name: 'pinhole-coordinator',
      // Acknowledged means committed to disk, whatever the server's default says.
      options: '-c synchronous_commit=on',
    };
    const pool = new pg.Pool({ ...clientConfig, max: opts.poolSize ?? 8, idleTimeoutMillis: 30_000 });
    pool.on('error', (err) => opts.onIdleError?.(err));
    const store = new PostgresStore(pool, target.display, clientConfig);
    try {
      const client = await pool.connect();
      const lost = watchCheckedOut(client);
      lost.done();
      client.release(lost.error !== null);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw new DatabaseOpenError(`cannot connect to PostgreSQL at ${target.display}: ${describe(err)}`);
    }
    try {
      await store.migrate();
    } catch (err) {
      await pool.end().catch(() => undefined);
      if (err instanceof SchemaTooNewError) throw err;
      throw new DatabaseOpenError(`cannot prepare PostgreSQL database ${target.display}: ${describe(err)}`);
    }
    return store;
  }

  /** Runs `body` in BEGIN..COMMIT on one pooled connection; retried on deadlock or serialization failure. */
  private async transaction<T>(body: (c: Queryable) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    if (this.closed) throw new Error('the PostgreSQL store is closed');
    for (let attempt = 1; ; attempt++) {
      const client = await this.pool.connect();
      const lost = watchCheckedOut(client);
      let broken = false;
      try {
        await client.query(begin);
        const out = await body(client);
        await client.query('COMMIT');
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => { broken = true; });
        if (attempt < MAX_ATTEMPTS && RETRYABLE.has((err as { code?: string }).code ?? '')) continue;
        throw translate(err);
      } finally {
        lost.done();
        client.release(broken || lost.error !== null);
      }
    }
  }

  private async migrate(): Promise<void> {
    for (;;) {
      const done = await this.transaction(async (c) => {
        await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
        // Created only when missing: a role without CREATE on the schema may still run on it.
        if ((await c.query("SELECT to_regclass('schema_migrations') AS t")).rows[0]?.t === null) {
          await c.query('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)');
        }
        const { rows } = await c.query<{ v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations');
        const current = rows[0]?.v ?? 0;
        if (current > SCHEMA_VERSION) {
          throw new SchemaTooNewError(`database schema v${current} is newer than this coordinator (v${SCHEMA_VERSION})`);
        }
        const next = POSTGRES_MIGRATIONS.find((m) => m.version > current);
        if (!next) return true;
        await c.query(next.sql);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [next.version, next.name, Date.now()]);
        return false;
      });
      if (done) return;
    }
  }

  load(): Promise<StoreSnapshot> {
    return this.transaction(async (c) => {
      const meta = (await c.query('SELECT key, value FROM meta')).rows as { key: string; value: string }[];
      const nodes = (await c.query('SELECT * FROM nodes ORDER BY id')).rows as Row[];
      const keys = (await c.query('SELECT * FROM auth_keys ORDER BY id')).rows as Row[];
      const policy = (await c.query('SELECT json, updated_at FROM policy WHERE id = 1')).rows as Row[];
      const high = (await c.query('SELECT name, last_id FROM id_high_water')).rows as Row[];
      const last = (table: string): number => num(high.find((h) => h.name === table)?.last_id ?? 0);
      const online = (await c.query(
        `SELECT n.id FROM nodes n JOIN replicas r ON r.id = n.online_by WHERE r.id <> $1 AND r.heartbeat_at >= ${DB_NOW_MS} - $2`,
        [this.replica, REPLICA_STALE_MS],
      )).rows as Row[];
      return {
        lastChangeId: last('changes'),
        onlineElsewhere: online.map((r) => num(r.id)),
        serverPrivateKey: meta.find((m) => m.key === 'server_private_key')?.value ?? null,
        nextServerPrivateKey: meta.find((m) => m.key === 'next_server_private_key')?.value ?? null,
        nodes: nodes.map(nodeFromDb),
        authKeys: keys.map(authKeyFromDb),
        policy: { json: (policy[0]?.json as string | null) ?? null, updatedAt: numOrNull(policy[0]?.updated_at ?? null) },
        lastNodeId: last('nodes'),
        lastAuthKeyId: last('auth_keys'),
      };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  initServerKey(current: string): Promise<string> {
    return this.transaction(async (c) => {
      await c.query("INSERT INTO meta (key, value) VALUES ('server_private_key', $1) ON CONFLICT (key) DO NOTHING", [current]);
      const { rows } = await c.query<{ value: string }>("SELECT value FROM meta WHERE key = 'server_private_key'");
      return rows[0]!.value;
    });
  }

  saveServerKeys(current: string, next: string | null): Promise<void> {
    // A change of its own: the other replicas take the keys from the database (replica-feed.ts).
    return this.write({ serverKeys: true }, async (c) => {
      await c.query("INSERT INTO meta (key, value) VALUES ('server_private_key', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [current]);
      if (next === null) await c.query("DELETE FROM meta WHERE key = 'next_server_private_key'");
      else await c.query("INSERT INTO meta (key, value) VALUES ('next_server_private_key', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", [next]);
    });
  }

  insertAuthKey(k: AuthKeyRow): Promise<void> {
    return this.write({ authKeyIds: [k.id] }, async (c) => {
      await c.query(INSERT_AUTH_KEY, authKeyParams(k));
      await c.query(RAISE_HIGH_WATER, ['auth_keys', k.id]);
    });
  }

  revokeAuthKey(id: number, at: number): Promise<void> {
    return this.write({ authKeyIds: [id] }, async (c) => { await c.query('UPDATE auth_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, at]); });
  }

  saveRegistration(node: NodeRow, authKeyId: number | null): Promise<void> {
    return this.write({ nodeIds: [node.id], authKeyIds: authKeyId === null ? [] : [authKeyId] }, async (c) => {
      if ((await c.query(UPSERT_NODE, nodeParams(node))).rowCount === 0) {
        throw new IdentityTakenError('id', `node id ${node.id} belongs to another node key`);
      }
      await c.query(RAISE_HIGH_WATER, ['nodes', node.id]);
      if (authKeyId !== null && (await c.query(COUNT_KEY_USE, [authKeyId])).rowCount === 0) {
        throw new AuthKeyUsedError('auth key revoked or, single-use, already used');
      }
    });
  }

  takenIdentities(): Promise<TakenIdentities> {
    return this.transaction(async (c) => {
      const nodes = (await c.query('SELECT id, node_key, name, ipv4 FROM nodes')).rows as Row[];
      const prefixes = (await c.query('SELECT prefix FROM auth_keys')).rows as Row[];
      const high = (await c.query('SELECT name, last_id FROM id_high_water')).rows as Row[];
      const last = (table: string): number => num(high.find((h) => h.name === table)?.last_id ?? 0);
      return {
        lastNodeId: last('nodes'), lastAuthKeyId: last('auth_keys'),
        nodes: nodes.map((n) => ({ id: num(n.id), nodeKey: n.node_key as string, name: n.name as string, ipv4: n.ipv4 as string })),
        authKeyPrefixes: prefixes.map((p) => p.prefix as string),
      };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  setNodeKeyExpiry(id: number, keyExpiresAt: number | null): Promise<void> {
    return this.write({ nodeIds: [id] }, async (c) => { await c.query('UPDATE nodes SET key_expires_at = $2 WHERE id = $1', [id, keyExpiresAt]); });
  }

  renameNode(id: number, name: string): Promise<void> {
    return this.write({ nodeIds: [id] }, async (c) => { await c.query('UPDATE nodes SET name = $2 WHERE id = $1', [id, name]); });
  }

  setApprovedRoutes(approvals: RouteApprovalRow[]): Promise<void> {
    return this.write({ nodeIds: approvals.map((a) => a.id) }, (c) => this.runApprovals(c, approvals));
  }

  private async runApprovals(c: Queryable, approvals: RouteApprovalRow[]): Promise<void> {
    if (approvals.length === 0) return;
    await c.query(
      'UPDATE nodes SET approved_routes = v.routes FROM unnest($1::bigint[], $2::text[]) AS v(id, routes) WHERE nodes.id = v.id',
      [approvals.map((a) => a.id), approvals.map((a) => JSON.stringify(a.approvedRoutes))],
    );
  }

  deleteNode(id: number): Promise<void> {
    return this.write({ nodeIds: [id] }, async (c) => { await c.query('DELETE FROM nodes WHERE id = $1', [id]); });
  }

  savePolicy(policy: PolicyRow, approvals: RouteApprovalRow[]): Promise<void> {
    return this.write({ nodeIds: approvals.map((a) => a.id), policy: true }, async (c) => {
      await c.query('UPDATE policy SET json = $1, updated_at = $2 WHERE id = 1', [policy.json, policy.updatedAt]);
      await this.runApprovals(c, approvals);
    });
  }

  saveLiveness(rows: LivenessRow[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    const sorted = [...rows].sort((a, b) => a.id - b.id); // one lock order for every writer
    // online_by: this replica when it holds the stream; cleared only if it is still this replica
    // (the node may have moved to another one meanwhile); left alone when online is not given.
    // One transaction and one change for the whole batch.
    return this.write(async (c) => {
      const { rows: changed } = await c.query<{ id: string }>(
        'UPDATE nodes SET endpoints = v.endpoints, home_relay = v.home_relay, nat_kind = v.nat_kind, last_seen = v.last_seen, ' +
        'online_by = CASE WHEN v.online IS NULL THEN nodes.online_by WHEN v.online THEN $5 WHEN nodes.online_by = $5 THEN NULL ELSE nodes.online_by END ' +
        'FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $6::boolean[], $7::text[]) AS v(id, endpoints, home_relay, last_seen, online, nat_kind) WHERE nodes.id = v.id RETURNING nodes.id',
        [sorted.map((r) => r.id), sorted.map((r) => JSON.stringify(r.endpoints)), sorted.map((r) => r.homeRelay), sorted.map((r) => r.lastSeen),
          this.replica, sorted.map((r) => r.online ?? null), sorted.map((r) => r.natKind)],
      );
      return { nodeIds: changed.map((r) => Number(r.id)) };
    });
  }

  /**
   * Copies a whole snapshot (another store's load()) into this database in one transaction;
   * refuses with TargetNotEmptyError if it holds any node, auth key, coordinator key or policy.
   */
  importSnapshot(snap: StoreSnapshot): Promise<void> {
    return this.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const { rows } = await c.query<{ nodes: string; keys: string; meta: string; policy: string | null }>(
        'SELECT (SELECT count(*) FROM nodes) AS nodes, (SELECT count(*) FROM auth_keys) AS keys, (SELECT count(*) FROM meta) AS meta, (SELECT json FROM policy WHERE id = 1) AS policy',
      );
      const r = rows[0]!;
      if (Number(r.nodes) + Number(r.keys) + Number(r.meta) > 0 || r.policy !== null) {
        throw new TargetNotEmptyError(`${this.display} is not empty (${r.nodes} nodes, ${r.keys} auth keys${Number(r.meta) > 0 ? ', a coordinator key' : ''}${r.policy !== null ? ', a policy' : ''}): migrate into a fresh database`);
      }
      if (snap.serverPrivateKey !== null) await c.query("INSERT INTO meta (key, value) VALUES ('server_private_key', $1)", [snap.serverPrivateKey]);
      if (snap.nextServerPrivateKey !== null) await c.query("INSERT INTO meta (key, value) VALUES ('next_server_private_key', $1)", [snap.nextServerPrivateKey]);
      for (const k of snap.authKeys) await c.query(INSERT_AUTH_KEY, authKeyParams(k));
      for (const n of snap.nodes) await c.query(INSERT_NODE, nodeParams(n));
      await c.query('UPDATE policy SET json = $1, updated_at = $2 WHERE id = 1', [snap.policy.json, snap.policy.updatedAt]);
      await c.query(RAISE_HIGH_WATER, ['nodes', snap.nodes.reduce((m, n) => Math.max(m, n.id), snap.lastNodeId)]);
      await c.query(RAISE_HIGH_WATER, ['auth_keys', snap.authKeys.reduce((m, k) => Math.max(m, k.id), snap.lastAuthKeyId)]);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end(); // waits for the connections in use to be released
  }
}

