// What --db names: `postgres://USER@HOST:PORT/DB` (or postgresql://) is a PostgreSQL database,
// anything else a SQLite file path. The URL never carries a password (it would show in `ps` and
// in shell history): that comes from --db-password-file, PGPASSWORD or a pgpass file.
// Query parameters: host=/socket/dir (a Unix socket instead of HOST:PORT), sslmode=disable|
// require|verify-full (require: encrypted, certificate not checked; verify-full: checked).

export class DatabaseUrlError extends Error {
  override readonly name = 'DatabaseUrlError';
}

export interface PostgresTarget {
  /** Host name or address, or the Unix socket directory (absolute path). */
  host: string;
  port: number;
  /** null: the PostgreSQL default (PGUSER, or the operating-system user). */
  user: string | null;
  database: string;
  ssl: false | { rejectUnauthorized: boolean };
  /** The URL as it may be logged: never a password. */
  display: string;
}

export type DatabaseTarget = { kind: 'sqlite'; path: string } | { kind: 'postgres'; postgres: PostgresTarget };

export function isPostgresUrl(text: string): boolean {
  return /^postgres(ql)?:\/\//i.test(text);
}

export function parseDatabaseTarget(text: string): DatabaseTarget {
  if (!isPostgresUrl(text)) {
    if (text.trim() === '') throw new DatabaseUrlError('--db: expected a SQLite file path or postgres://USER@HOST:PORT/DB');
    return { kind: 'sqlite', path: text };
  }
  return { kind: 'postgres', postgres: parsePostgresUrl(text) };
}

const SSL_MODES: Record<string, PostgresTarget['ssl']> = {
  disable: false,
  require: { rejectUnauthorized: false },
  'verify-full': { rejectUnauthorized: true },
};

export function parsePostgresUrl(text: string): PostgresTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new DatabaseUrlError('--db: not a valid URL: expected postgres://USER@HOST:PORT/DB');
  }
  if (url.password !== '') {
    throw new DatabaseUrlError('--db: the URL must not hold a password (it would show in the process list): use --db-password-file, PGPASSWORD or a pgpass file');
  }
  if (url.hash !== '') throw new DatabaseUrlError('--db: the URL must not have a #fragment: expected postgres://USER@HOST:PORT/DB');
  const database = decode(url.pathname.replace(/^\//, ''));
  if (database === '' || database.includes('/')) throw new DatabaseUrlError('--db: the database name is missing: expected postgres://USER@HOST:PORT/DB');
  const socketDir = url.searchParams.get('host');
  for (const k of url.searchParams.keys()) {
    // Named only when it looks like a parameter name: never echo what may be a mistyped secret.
    if (k !== 'host' && k !== 'sslmode') throw new DatabaseUrlError(`--db: unknown URL parameter${/^[a-z_]{1,32}$/.test(k) ? ` ${k}` : ''} (known: host, sslmode)`);
  }
  if (socketDir !== null && !socketDir.startsWith('/')) throw new DatabaseUrlError('--db: host= must be the absolute path of the socket directory');
  const host = socketDir ?? url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new DatabaseUrlError('--db: the host is missing: expected postgres://USER@HOST:PORT/DB');
  const port = url.port === '' ? 5432 : Number(url.port);
  const sslmode = url.searchParams.get('sslmode') ?? 'disable';
  const ssl = SSL_MODES[sslmode];
  if (ssl === undefined) throw new DatabaseUrlError('--db: sslmode must be disable, require or verify-full');
  return { host, port, user: url.username === '' ? null : decode(url.username), database, ssl, display: redact(url) };
}

function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new DatabaseUrlError('--db: a malformed %-escape in the URL');
  }
}

function redact(url: URL): string {
  const copy = new URL(url.href);
  copy.password = '';
  copy.hash = '';
  return copy.href;
}
