// The change feed of coordinators sharing one PostgreSQL database (replicas). Every write
// transaction of postgres.ts ends with appendChange: one row naming what it changed, and a
// NOTIFY that PostgreSQL delivers at commit. Readers (coordinator/replica-feed.ts) apply the
// changes after the last id they applied, in order.
//
// Why the ids have no gaps a reader could skip: a sequence hands out ids at the start of a
// transaction, so id 8 may commit before id 7, and a reader that saw 8 would move past 7 for
// good. Here the id comes from `UPDATE id_high_water SET last_id = last_id + 1`: the row lock it
// takes is held until commit, so the next writer waits on it, and reads the incremented value
// only once the holder has committed (or reuses it if the holder rolled back). Ids therefore
// commit in order, one at a time, and an id is visible before the next one can be handed out
// (PostgreSQL makes a commit visible before it releases the transaction's locks). The append is
// the last statement of each transaction, so the lock is held only for the INSERT and the commit.
// The price, one commit at a time for the whole database, is what a single coordinator pays on
// SQLite anyway; the liveness flush batches endpoint changes into one transaction per interval.
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { AuthKeyRow, ChangeFeedStore, ChangeRow, NodeRow, PolicyRow, StoreSnapshot } from './interface.js';

type Queryable = pg.ClientBase;
type Row = Record<string, unknown>;
type Transaction = <T>(body: (c: Queryable) => Promise<T>, begin?: string) => Promise<T>;

export const CHANGES_CHANNEL = 'pinhole_changes';
/** The database's clock in ms: replicas compare heartbeats on one clock, not on their own. */
export const DB_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

export interface ChangeSet {
  nodeIds?: number[];
  authKeyIds?: number[];
  policy?: boolean;
  /** The coordinator key(s) changed (a rotation started or finished). */
  serverKeys?: boolean;
}

export function newReplicaId(): string {
  return randomBytes(6).toString('hex');
}

/** Appends one change row and its NOTIFY; call as the last statement of a write transaction. */
export async function appendChange(c: Queryable, replica: string, change: ChangeSet): Promise<void> {
  const { rows } = await c.query<{ last_id: string }>("UPDATE id_high_water SET last_id = last_id + 1 WHERE name = 'changes' RETURNING last_id");
  const id = rows[0]!.last_id;
  await c.query(
    `INSERT INTO changes (id, at, replica, node_ids, auth_key_ids, policy, server_keys) VALUES ($1, ${DB_NOW_MS}, $2, $3::bigint[], $4::bigint[], $5, $6)`,
    [id, replica, [...new Set(change.nodeIds ?? [])], [...new Set(change.authKeyIds ?? [])], change.policy ?? false, change.serverKeys ?? false],
  );
  await c.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, id]);
}

const ids = (v: unknown): number[] => (v as (string | number)[]).map(Number);

export class PostgresChangeFeed implements ChangeFeedStore {
  constructor(
    readonly replicaId: string,
    private readonly transaction: Transaction,
    private readonly clientConfig: pg.ClientConfig,
    private readonly nodeFromDb: (r: Row) => NodeRow,
    private readonly authKeyFromDb: (r: Row) => AuthKeyRow,
    readonly loadSnapshot: () => Promise<StoreSnapshot>,
  ) {}

  changesAfter(after: number, limit: number): Promise<{ changes: ChangeRow[]; lastId: number }> {
    return this.transaction(async (c) => {
      const { rows } = await c.query('SELECT id, replica, node_ids, auth_key_ids, policy, server_keys FROM changes WHERE id > $1 ORDER BY id LIMIT $2', [after, limit]);
      const last = await c.query<{ last_id: string }>("SELECT last_id FROM id_high_water WHERE name = 'changes'");
      return {
        changes: (rows as Row[]).map((r) => ({
          id: Number(r.id), replica: r.replica as string, nodeIds: ids(r.node_ids), authKeyIds: ids(r.auth_key_ids), policy: r.policy as boolean, serverKeys: r.server_keys as boolean,
        })),
        lastId: Number(last.rows[0]?.last_id ?? 0),
      };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  loadNodes(nodeIds: number[]): Promise<{ rows: NodeRow[]; onlineElsewhere: number[] }> {
    return this.transaction(async (c) => {
      const { rows } = await c.query('SELECT * FROM nodes WHERE id = ANY($1::bigint[]) ORDER BY id', [nodeIds]);
      return {
        rows: (rows as Row[]).map(this.nodeFromDb),
        onlineElsewhere: (rows as Row[]).filter((r) => r.online_by !== null && r.online_by !== this.replicaId).map((r) => Number(r.id)),
      };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  loadAuthKeys(keyIds: number[]): Promise<AuthKeyRow[]> {
    return this.transaction(async (c) => {
      const { rows } = await c.query('SELECT * FROM auth_keys WHERE id = ANY($1::bigint[]) ORDER BY id', [keyIds]);
      return (rows as Row[]).map(this.authKeyFromDb);
    });
  }

  loadServerKeys(): Promise<{ current: string | null; next: string | null }> {
    return this.transaction(async (c) => {
      const { rows } = await c.query<{ key: string; value: string }>("SELECT key, value FROM meta WHERE key IN ('server_private_key', 'next_server_private_key')");
      const get = (k: string): string | null => rows.find((r) => r.key === k)?.value ?? null;
      return { current: get('server_private_key'), next: get('next_server_private_key') };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  loadPolicy(): Promise<PolicyRow> {
    return this.transaction(async (c) => {
      const { rows } = await c.query('SELECT json, updated_at FROM policy WHERE id = 1');
      const r = rows[0] as Row | undefined;
      return { json: (r?.json as string | null) ?? null, updatedAt: r?.updated_at === null || r?.updated_at === undefined ? null : Number(r.updated_at) };
    });
  }

  heartbeat(opts: { staleMs: number; retentionMs: number; maxRows: number }): Promise<{ reinstated: boolean; reaped: string[] }> {
    return this.transaction(async (c) => {
      // xmax = 0: the row was inserted, not updated. Only the first beat inserts, unless another
      // replica declared this one dead meanwhile.
      const beat = await c.query<{ inserted: boolean; started: string; now: string }>(
        `INSERT INTO replicas (id, started_at, heartbeat_at) VALUES ($1, ${DB_NOW_MS}, ${DB_NOW_MS}) ` +
        'ON CONFLICT (id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at RETURNING (xmax = 0) AS inserted',
        [this.replicaId],
      );
      const dead = await c.query<{ id: string }>(`DELETE FROM replicas WHERE heartbeat_at < ${DB_NOW_MS} - $1 RETURNING id`, [opts.staleMs]);
      const reaped = dead.rows.map((r) => r.id);
      await c.query(`DELETE FROM changes WHERE at < ${DB_NOW_MS} - $1 OR id <= (SELECT last_id FROM id_high_water WHERE name = 'changes') - $2`, [opts.retentionMs, opts.maxRows]);
      if (reaped.length > 0) {
        const { rows } = await c.query<{ id: string }>('UPDATE nodes SET online_by = NULL WHERE online_by = ANY($1::text[]) RETURNING id', [reaped]);
        if (rows.length > 0) await appendChange(c, this.replicaId, { nodeIds: rows.map((r) => Number(r.id)) });
      }
      return { reinstated: beat.rows[0]!.inserted, reaped };
    });
  }

  leave(): Promise<void> {
    return this.transaction(async (c) => {
      await c.query('DELETE FROM replicas WHERE id = $1', [this.replicaId]);
      const { rows } = await c.query<{ id: string }>('UPDATE nodes SET online_by = NULL WHERE online_by = $1 RETURNING id', [this.replicaId]);
      if (rows.length > 0) await appendChange(c, this.replicaId, { nodeIds: rows.map((r) => Number(r.id)) });
    });
  }

  listen(handlers: { onNotify: () => void; onConnected: () => void; onError: (err: Error) => void }): { close(): Promise<void> } {
    let closed = false;
    let client: pg.Client | null = null;
    let retry: NodeJS.Timeout | null = null;
    let backoffMs = 100;
    const connect = (): void => {
      if (closed) return;
      // Keepalive: a database host that vanished without a reset is noticed, not waited on forever.
      const c = new pg.Client({ ...this.clientConfig, application_name: 'pinhole-coordinator-feed', keepAlive: true, keepAliveInitialDelayMillis: 5000 });
      client = c;
      let failed = false;
      const fail = (err: Error): void => {
        if (failed) return;
        failed = true;
        handlers.onError(err);
        c.removeAllListeners('notification');
        c.end().catch(() => undefined);
        if (client === c) client = null;
        if (closed) return;
        retry = setTimeout(connect, backoffMs);
        backoffMs = Math.min(backoffMs * 2, 2000);
      };
      c.on('error', fail);
      c.on('end', () => fail(new Error('the change feed connection ended')));
      c.on('notification', () => handlers.onNotify());
      c.connect()
        .then(() => c.query(`LISTEN ${CHANGES_CHANNEL}`))
        .then(() => {
          if (closed || failed) return;
          backoffMs = 100;
          handlers.onConnected();
        })
        .catch((err: Error) => fail(err));
    };
    connect();
    return {
      close: async () => {
        closed = true;
        if (retry) clearTimeout(retry);
        const c = client;
        client = null;
        if (c) {
          c.removeAllListeners();
          c.on('error', () => undefined);
          await c.end().catch(() => undefined);
        }
      },
    };
  }
}
