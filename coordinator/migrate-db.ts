// `pinhole coordinator migrate-db --from PATH --to postgres://…`: copies a SQLite database into
// an empty PostgreSQL one, in one transaction — nodes (with their addresses, routes and liveness),
// auth keys (hashed, as stored), the policy, the coordinator key (and the next one during a
// rotation) and the highest ids handed out. The SQLite file is opened like a coordinator opens
// it: locked, so a coordinator still running on it is refused, and brought to the current schema.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { PostgresTarget } from './store/database-url.js';
import { PostgresStore } from './store/postgres.js';
import { DatabaseOpenError } from './store/errors.js';
import { SqliteStore } from './store/sqlite.js';

export interface MigrationSummary {
  nodes: number;
  authKeys: number;
  policy: boolean;
  coordinatorKeys: number;
}

const SQLITE_HEADER = Buffer.from('SQLite format 3\0');

/** Refuses anything but an existing SQLite file before it is opened (opening locks and chmods it). */
function requireSqliteFile(path: string): void {
  const head = Buffer.alloc(SQLITE_HEADER.length);
  try {
    if (!statSync(path).isFile()) throw new DatabaseOpenError(`--from: ${path} is not a file`);
    const fd = openSync(path, 'r');
    try {
      readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if (err instanceof DatabaseOpenError) throw err;
    throw new DatabaseOpenError(`--from: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (!head.equals(SQLITE_HEADER)) throw new DatabaseOpenError(`--from: ${path} is not a SQLite database`);
}

export async function migrateSqliteToPostgres(opts: { from: string; to: PostgresTarget; password?: string }): Promise<MigrationSummary> {
  requireSqliteFile(opts.from);
  const source = await SqliteStore.open(opts.from);
  try {
    const snap = await source.load();
    const target = await PostgresStore.open({ target: opts.to, ...(opts.password !== undefined ? { password: opts.password } : {}), poolSize: 1 });
    try {
      await target.importSnapshot(snap);
    } finally {
      await target.close();
    }
    return {
      nodes: snap.nodes.length,
      authKeys: snap.authKeys.length,
      policy: snap.policy.json !== null,
      coordinatorKeys: (snap.serverPrivateKey ? 1 : 0) + (snap.nextServerPrivateKey ? 1 : 0),
    };
  } finally {
    await source.close();
  }
}
