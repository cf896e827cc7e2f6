// A real `pinhole coordinator` process for tests: temp dir, SQLite file, admin token, port 0 on
// loopback. Knows how to stop it, kill -9 it and start it again on the same database, to call
// the admin API, and to dump the database for before/after comparisons.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { channelCall, type ApiResult } from './control-client.js';

export interface CoordinatorProcessOptions {
  /** Extra flags, e.g. ['--node-key-expiry', '3s']. */
  flags?: string[];
  /** false: start without --admin-token-file. */
  adminToken?: boolean;
}

export type { ApiResult } from './control-client.js';

export class CoordinatorProcess {
  readonly dbPath: string;
  readonly tokenFile: string;
  readonly token = randomBytes(24).toString('base64url');
  /** The static key this helper's admin calls present (any key will do: the token authorizes). */
  readonly adminStatic = generatePrivateKey();
  /** The coordinator key's fingerprint, as it printed it. */
  fingerprint = '';
  url = '';
  private child: ChildProcess | null = null;
  stderr = '';

  private constructor(readonly dir: string, private readonly opts: CoordinatorProcessOptions) {
    this.dbPath = join(dir, 'coordinator.db');
    this.tokenFile = join(dir, 'admin-token');
  }

  static async start(opts: CoordinatorProcessOptions = {}): Promise<CoordinatorProcess> {
    const dir = await mkdtemp(join(tmpdir(), 'pinhole-coord-'));
    const c = new CoordinatorProcess(dir, opts);
    await writeFile(c.tokenFile, `${c.token}\n`, { mode: 0o600 });
    await c.launch();
    return c;
  }

  get pid(): number { return this.child?.pid ?? -1; }

  /** Starts the process (again) on the same database; the URL changes (new port). */
  async launch(): Promise<void> {
    const args = [PINHOLE_BIN, 'coordinator', '--listen', '127.0.0.1:0', '--db', this.dbPath, ...(this.opts.flags ?? [])];
    if (this.opts.adminToken !== false) args.push('--admin-token-file', this.tokenFile);
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PINHOLE_LOG_LEVEL: process.env.PINHOLE_LOG_LEVEL ?? 'warn' } });
    this.child = child;
    this.stderr = '';
    child.stderr!.on('data', (d: Buffer) => { this.stderr += d.toString(); });
    this.url = await new Promise<string>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`coordinator did not start: ${this.stderr}`)), 15_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (https?:\/\/\S+)\npinhole coordinator key ([0-9a-f]{32})/.exec(out);
        if (m) {
          this.fingerprint = m[2]!;
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`coordinator exited with ${code}: ${this.stderr}`));
      });
    });
  }

  /** SIGTERM and wait. */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /** SIGKILL and wait: nothing gets flushed or closed. */
  async kill9(): Promise<void> {
    await this.signal('SIGKILL');
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill(sig);
    });
    this.child = null;
  }

  async destroy(): Promise<void> {
    await this.kill9();
    await rm(this.dir, { recursive: true, force: true });
  }

  /**
   * Any API call: the public GET /api/v1/server in the clear, everything else inside a control
   * channel under this helper's own throwaway static key. `token` null: no Authorization header.
   */
  async call<T = any>(method: string, path: string, body?: unknown, token: string | null = this.token, rawBody?: string): Promise<ApiResult<T>> {
    if (path === '/api/v1/server') {
      const res = await fetch(`${this.url}${path}`, { method });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    }
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    return channelCall(this.url, this.adminStatic, method, path, { headers, ...(rawBody !== undefined ? { rawBody } : body !== undefined ? { body } : {}) });
  }

  async createAuthKey(opts: { reusable?: boolean; ephemeral?: boolean; expirySeconds?: number; tags?: string[]; user?: string } = {}): Promise<string> {
    const r = await this.call('POST', '/api/v1/admin/authkeys', opts);
    if (r.status !== 201) throw new Error(`auth key creation failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.key as string;
  }

  /**
   * Every table's rows, for "nothing changed" comparisons. Without `liveness`, the nodes'
   * endpoints and last-seen columns are left out: the coordinator writes those in the background
   * while streams are up, not in answer to any request.
   */
  async dump(opts: { liveness?: boolean } = {}): Promise<Record<string, unknown[]>> {
    const d = await dumpDatabase(this.dbPath);
    if (!opts.liveness) d.nodes = d.nodes!.map(({ endpoints: _e, home_relay: _h, last_seen: _l, ...rest }: any) => rest);
    return d;
  }
}

export async function dumpDatabase(path: string): Promise<Record<string, unknown[]>> {
  const db = await new Promise<sqlite3.Database>((resolve, reject) => {
    const d = new sqlite3.Database(path, sqlite3.OPEN_READONLY, (err) => (err ? reject(err) : resolve(d)));
  });
  const all = (sql: string): Promise<unknown[]> => new Promise((resolve, reject) => db.all(sql, (err, rows) => (err ? reject(err) : resolve(rows))));
  try {
    const out: Record<string, unknown[]> = {};
    for (const t of ['meta', 'auth_keys', 'nodes', 'policy', 'schema_migrations']) out[t] = await all(`SELECT * FROM ${t} ORDER BY 1`);
    return out;
  } finally {
    await new Promise<void>((resolve) => db.close(() => resolve()));
  }
}
