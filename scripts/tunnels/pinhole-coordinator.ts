// Starts `pinhole coordinator` (a real process) in a lab host with its own database and admin
// token, and speaks its admin API from inside the lab (the test process is outside it).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, LabProcess } from '../natlab/index.js';
import { AuthKeyCreated, NodeList, type NodeInfo } from '../../proto/control/schemas.js';
import { PINHOLE_BIN, REPO_ROOT } from './paths.js';
import { tlsEnv, type LabCertificate } from './lab-tls.js';

const HTTP_TOOL = join(REPO_ROOT, 'dist', 'scripts', 'tunnels', 'http-request.js');

export interface CoordinatorSpec {
  port?: number;
  /** --ephemeral-timeout, e.g. "3s". */
  ephemeralTimeout?: string;
  extraArgs?: string[];
  /** --db: default a SQLite file in the coordinator's own directory; or postgres://USER@HOST:PORT/DB. */
  db?: string;
  /** Serve HTTPS with this certificate (--tls-cert/--tls-key); the helpers here trust it. */
  tls?: LabCertificate;
}

export interface HttpReply { status: number; body: unknown }

export interface LabCoordinator {
  readonly host: Host;
  readonly url: string;
  readonly dir: string;
  /** --db as given: the SQLite file, or the postgres:// URL. */
  readonly db: string;
  readonly token: string;
  /** The coordinator key's fingerprint, as it printed it (what admin CLIs and relays pin). */
  readonly fingerprint: string;
  /** The current process (replaced by start()). */
  readonly proc: LabProcess;
  /** Any HTTP request from inside the coordinator's namespace; with the admin token if `admin`. */
  request(method: string, path: string, body?: unknown, admin?: boolean): Promise<HttpReply>;
  createAuthKey(opts?: { reusable?: boolean; ephemeral?: boolean; expirySeconds?: number; tags?: string[]; user?: string }): Promise<string>;
  /** `pinhole admin --coordinator URL --token T ARGS...` (the real admin CLI) inside the coordinator's namespace. */
  adminCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  nodes(): Promise<NodeInfo[]>;
  /** SIGKILL, no goodbye. */
  kill9(): Promise<void>;
  /** Starts it again on the same database (after kill9). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startCoordinator(host: Host, spec: CoordinatorSpec = {}): Promise<LabCoordinator> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-coord-'));
  const db = spec.db ?? join(dir, 'coordinator.db');
  const tokenFile = join(dir, 'admin.token');
  const token = randomBytes(24).toString('base64url');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const port = spec.port ?? 8080;
  const url = `${spec.tls ? 'https' : 'http'}://${host.ip}:${port}`;
  const env = tlsEnv(spec.tls);
  const argv = ['node', PINHOLE_BIN, 'coordinator', '--listen', `${host.ip}:${port}`, '--db', db, '--admin-token-file', tokenFile,
    ...(spec.tls ? ['--tls-cert', spec.tls.cert, '--tls-key', spec.tls.key] : []),
    ...(spec.ephemeralTimeout ? ['--ephemeral-timeout', spec.ephemeralTimeout] : []), ...(spec.extraArgs ?? [])];
  let proc!: LabProcess;
  let fingerprint = '';

  const request = async (method: string, path: string, body?: unknown, admin = false): Promise<HttpReply> => {
    const r = await host.exec(['node', HTTP_TOOL, method, `${url}${path}`,
      ...(body !== undefined ? [JSON.stringify(body)] : []), ...(admin ? ['--token', token] : [])], { env });
    if (r.code !== 0) throw new Error(`${method} ${path}: ${r.stderr.trim() || `exit ${r.code}`}`);
    return JSON.parse(r.stdout) as HttpReply;
  };
  const start = async (): Promise<void> => {
    proc = host.spawn(argv, { env: { PINHOLE_LOG_LEVEL: 'info' }, logFile: join(dir, 'coordinator.log') });
    try {
      const m = await proc.waitForOutput(/pinhole coordinator key ([0-9a-f]{32})/, 20_000);
      fingerprint = m[1] ?? fingerprint;
    } catch (err) {
      await proc.kill('SIGKILL', 100);
      throw new Error(`coordinator did not start on ${url}: ${(err as Error).message}`);
    }
  };
  const c: LabCoordinator = {
    host, url, dir, db, token,
    get fingerprint() { return fingerprint; },
    get proc() { return proc; },
    request,
    createAuthKey: async (opts = {}) => {
      const r = await request('POST', '/api/v1/admin/authkeys', { reusable: false, ephemeral: false, tags: [], ...opts }, true);
      if (r.status !== 200 && r.status !== 201) throw new Error(`authkey create: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      return AuthKeyCreated.parse(r.body).key;
    },
    adminCli: async (args) => {
      const r = await host.exec(['node', PINHOLE_BIN, 'admin', '--coordinator', url, '--coordinator-key', fingerprint, '--token-file', tokenFile, ...args], { env });
      return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
    },
    nodes: async () => {
      const r = await request('GET', '/api/v1/admin/nodes', undefined, true);
      if (r.status !== 200) throw new Error(`nodes list: HTTP ${r.status} ${JSON.stringify(r.body)}`);
      return NodeList.parse(r.body).nodes;
    },
    kill9: async () => { await proc.kill('SIGKILL', 100); },
    start,
    stop: async () => {
      if (proc?.running) await proc.kill('SIGTERM', 3000);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await start();
  } catch (err) {
    await c.stop();
    throw err;
  }
  return c;
}
