// `pinhole coordinator migrate-db --from PATH --to postgres://…`: copies a SQLite database into
// an empty PostgreSQL one, in one transaction — nodes (with their addresses, routes and liveness),
// auth keys (hashed, as stored), the policy, the coordinator key (and the next one during a
// rotation) and the highest ids handed out. The SQLite file is opened like a coordinator opens
// it: locked, so a coordinator still running on it is refused, and brought to the current schema.
import { statSync } from 'node:fs';
import type { PostgresTarget } from './store/database-url.js';
import { PostgresStore } from './store/postgres.js';
import { DatabaseOpenError, SqliteStore } from './store/sqlite.js';

export interface MigrationSummary {
  nodes: number;
  authKeys: number;
  policy: boolean;
  coordinatorKeys: number;
}

export async function migrateSqliteToPostgres(opts: { from: string; to: PostgresTarget; password?: string }): Promise<MigrationSummary> {
  try {
    if (!statSync(opts.from).isFile()) throw new DatabaseOpenError(`--from: ${opts.from} is not a file`);
  } catch (err) {
    if (err instanceof DatabaseOpenError) throw err;
    throw new DatabaseOpenError(`--from: cannot read ${opts.from}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
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
