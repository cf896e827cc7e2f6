// A real PostgreSQL (Debian's postgresql package) in a lab host, the way docs/postgres.md runs
// one: initdb and postgres as the `postgres` user in a fresh temporary directory that also holds
// the Unix socket. Superuser `pinhole` (trust), and a role `pinhole_pw` that must give its
// password (scram-sha-256), both from the lab's own segment only. stop() shuts it down and
// removes the directory.
import { execFileSync } from 'node:child_process';
import { appendFile, chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, LabProcess } from '../../scripts/natlab/index.js';

export const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';
const POSTGRES_UID = 'postgres';

export interface PostgresServer {
  readonly ip: string;
  readonly port: number;
  /** The directory holding the data and the Unix socket. */
  readonly dir: string;
  /** postgres://pinhole@IP:PORT/DB (or `user`). */
  url(database: string, user?: string): string;
  /** The same database over the Unix socket (reachable from any namespace: it is a file). */
  socketUrl(database: string): string;
  /** Runs SQL as the superuser; the rows, one per line, columns split by |. */
  psql(sql: string, database?: string): Promise<string>;
  /** Stops it (pg_ctl -m fast: every connection is cut) and starts it again on the same data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

const asPostgres = (argv: string[]): string[] => ['runuser', '-u', POSTGRES_UID, '--', ...argv];

export async function startPostgres(host: Host, opts: { port?: number; password?: string } = {}): Promise<PostgresServer> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-pg-'));
  const data = join(dir, 'data');
  const port = opts.port ?? 5432;
  let proc: LabProcess | null = null;
  const psql = async (sql: string, database = 'postgres'): Promise<string> => {
    const r = await host.exec([join(POSTGRES_BIN, 'psql'), '-h', dir, '-p', String(port), '-U', 'pinhole', '-d', database, '-v', 'ON_ERROR_STOP=1', '-Atc', sql]);
    if (r.code !== 0) throw new Error(`psql ${sql}: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const launch = async (): Promise<void> => {
    proc = host.spawn(asPostgres([join(POSTGRES_BIN, 'postgres'), '-D', data, '-c', `listen_addresses=${host.ip}`, '-c', `unix_socket_directories=${dir}`, '-p', String(port)]));
    await proc.waitForOutput('database system is ready to accept connections', 20_000);
  };
  const restart = async (): Promise<void> => {
    const r = await host.exec(asPostgres([join(POSTGRES_BIN, 'pg_ctl'), '-D', data, '-m', 'fast', '-w', '-t', '10', 'stop']));
    if (r.code !== 0) throw new Error(`pg_ctl stop failed: ${r.stderr.trim()}`);
    if (proc?.running) await proc.kill('SIGKILL', 1000);
    await launch();
  };
  const stop = async (): Promise<void> => {
    if (proc?.running) {
      await host.exec(asPostgres([join(POSTGRES_BIN, 'pg_ctl'), '-D', data, '-m', 'fast', '-w', '-t', '10', 'stop']));
      if (proc.running) await proc.kill('SIGKILL', 1000);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await chown(dir, ...ids());
    const init = await host.exec(asPostgres([join(POSTGRES_BIN, 'initdb'), '-D', data, '-A', 'trust', '-U', 'pinhole', '--no-sync']));
    if (init.code !== 0) throw new Error(`initdb failed: ${init.stderr.trim()}`);
    // The lab segment only; the password role first (the first matching line wins).
    await appendFile(join(data, 'pg_hba.conf'), 'host all pinhole_pw samenet scram-sha-256\nhost all pinhole samenet trust\n');
    await launch();
    if (opts.password !== undefined) {
      await psql(`CREATE ROLE pinhole_pw LOGIN PASSWORD '${opts.password.replace(/'/g, "''")}'`);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    ip: host.ip, port, dir,
    url: (database, user = 'pinhole') => `postgres://${user}@${host.ip}:${port}/${database}`,
    socketUrl: (database) => `postgres://pinhole@localhost:${port}/${database}?host=${encodeURIComponent(dir)}`,
    psql,
    restart,
    stop,
  };
}

function ids(): [number, number] {
  const uid = Number(execFileSync('id', ['-u', POSTGRES_UID], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', POSTGRES_UID], { encoding: 'utf8' }).trim());
  return [uid, gid];
}
