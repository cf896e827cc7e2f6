// Opens the store --db names: a SQLite file, or a PostgreSQL database (database-url.ts).
import type { DatabaseTarget } from './database-url.js';
import type { ControlStore } from './interface.js';
import { PostgresStore } from './postgres.js';
import { SqliteStore } from './sqlite.js';

export interface StoreOptions {
  target: DatabaseTarget;
  /** PostgreSQL only; undefined: PGPASSWORD or the pgpass file. */
  password?: string;
  /** PostgreSQL only: connections at most. */
  poolSize?: number;
  onIdleError?: (err: Error) => void;
}

export function openStore(opts: StoreOptions): Promise<ControlStore> {
  if (opts.target.kind === 'sqlite') return SqliteStore.open(opts.target.path);
  return PostgresStore.open({
    target: opts.target.postgres,
    ...(opts.password !== undefined ? { password: opts.password } : {}),
    ...(opts.poolSize !== undefined ? { poolSize: opts.poolSize } : {}),
    ...(opts.onIdleError ? { onIdleError: opts.onIdleError } : {}),
  });
}
