// Coordinator scale benchmark. For each N: a real coordinator process (its own SQLite file), and
// N simulated nodes in worker processes (bench-coordinator-worker.ts) that register, hold their
// netmap streams, and time what reaches them. Measures:
//   - registration rate (HTTP: server info + register with a proof, one SQLite commit each)
//   - stream rate (WebSocket, hello with a proof, full netmap of N-1 peers)
//   - single-change fan-out: one node's endpoint change until each of the N-1 peers has it
//   - churn: R endpoint changes per second for D seconds, latency of every (change, recipient)
//   - coordinator RSS (held and peak) and CPU per phase
// Bar (issue 3): 10,000 nodes held, fan-out p99 ≤ 1 s, churn p99 ≤ 2 s, RSS ≤ 1 GiB.
// --peers-per-node P (issue 16's 50,000-node bar): a policy that splits the nodes into groups of
// about P (node i in group i mod G, one auth key per group's user, one ACL per group: user:gK may
// reach user:gK), so each node sees ~P-1 peers and each change reaches only its group.
// --db postgres --replicas R (issue 16): each size runs twice, on one coordinator with SQLite,
// then on R coordinator processes sharing one PostgreSQL (started here: initdb in a temporary
// directory, Unix socket only), node i at replica i mod R: every change crosses the database to
// reach the peers on the other replicas. "No change lost": every peer got every single change,
// every churn change reached every peer, and the replicas end at the same last change id, no gap.
// --multiplex K: the simulated nodes open their control channels as streams of HTTP/2 connections,
// K to one (coordinator/control-h2.ts), instead of a TCP connection each: the way to hold more
// nodes than the open-files limit allows sockets (20,000 here, and not raisable in this container).
// Each node still has its own Noise channel, its own inner HTTP and WebSocket; what is shared is
// the TCP connection under them.
// Writes JSON to bench/results/coordinator-<ts>.json and prints a table.
//
//   node dist/scripts/bench-coordinator.js [--nodes 1000,5000,10000] [--workers 4]
//        [--churn-seconds 60] [--churn-rate 100] [--changes 10] [--flush-interval 50ms] [--full-records]
//        [--db sqlite|postgres] [--replicas 3] [--peers-per-node 100] [--multiplex 1000]
// The simulated nodes ask for peer patches (live changes as changed fields only) unless
// --full-records is given, which measures streams that get whole peer records for every change.
import { channelCall } from '../test/helpers/control-client.js';
import { generatePrivateKey } from '../proto/wireguard/keys.js';
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MAX_CHANNELS_PER_CONNECTION } from '../coordinator/control-h2.js';
import { REPO_ROOT, PINHOLE_BIN } from './tunnels/paths.js';
import { wallNow, type WorkerCommand, type WorkerEvent } from './bench-coordinator-worker.js';

const WORKER = fileURLToPath(new URL('./bench-coordinator-worker.js', import.meta.url));
const CLK_TCK = 100;
const BAR = { nodes: 10_000, fanoutP99Ms: 1000, churnP99Ms: 2000, rssBytes: 1024 ** 3 };
/** Issue 16's bar for 50,000 nodes with a policy of ~100 peers each. */
const POLICY_RSS_BAR = 2 * 1024 ** 3;

/** The open-files limit this process (and the coordinator it starts) runs with. */
function openFilesLimit(): number {
  const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return !m || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

interface Options {
  sizes: number[]; workers: number; churnSeconds: number; churnRate: number; changes: number; flushInterval: string;
  registerConcurrency: number; connectConcurrency: number; patches: boolean;
  db: 'sqlite' | 'postgres'; replicas: number;
  /** 0: no policy (everyone sees everyone); else groups of about this many nodes. */
  peersPerNode: number;
  /** 0: a TCP connection per node; K: nodes' channels as streams of HTTP/2 connections, K to one. */
  multiplex: number;
}

/** One run: a single coordinator on SQLite, or replicas on PostgreSQL. */
type Setup = { kind: 'sqlite' } | { kind: 'postgres'; replicas: number; pg: BenchPostgres };

function usage(msg?: string): never {
  if (msg) process.stderr.write(`bench-coordinator: ${msg}\n`);
  process.stderr.write('usage: bench-coordinator [--nodes 1000,5000,10000] [--workers 4] [--churn-seconds 60] [--churn-rate 100] [--changes 10] [--flush-interval 50ms] [--full-records] [--db sqlite|postgres] [--replicas 3] [--peers-per-node 100] [--multiplex 1000]\n');
  process.exit(2);
}

function parseOptions(): Options {
  let values;
  try {
    ({ values } = parseArgs({ options: {
      nodes: { type: 'string' }, workers: { type: 'string' }, 'churn-seconds': { type: 'string' }, 'churn-rate': { type: 'string' },
      changes: { type: 'string' }, 'flush-interval': { type: 'string' }, 'full-records': { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      db: { type: 'string' }, replicas: { type: 'string' }, 'peers-per-node': { type: 'string' }, multiplex: { type: 'string' },
    } }));
  } catch (err) {
    usage((err as Error).message);
  }
  if (values.help) usage();
  const int = (v: string | undefined, dflt: number, min: number, max: number, name: string): number => {
    const n = Number(v ?? dflt);
    if (!Number.isInteger(n) || n < min || n > max) usage(`--${name} must be an integer in ${min}..${max}`);
    return n;
  };
  const sizes = (values.nodes ?? '1000,5000,10000').split(',').map((s) => int(s, 0, 2, 50_000, 'nodes'));
  return {
    sizes,
    workers: int(values.workers, 4, 1, 32, 'workers'),
    churnSeconds: int(values['churn-seconds'], 60, 0, 3600, 'churn-seconds'),
    churnRate: int(values['churn-rate'], 100, 1, 10_000, 'churn-rate'),
    changes: int(values.changes, 10, 1, 1000, 'changes'),
    flushInterval: values['flush-interval'] ?? '50ms',
    registerConcurrency: 16,
    connectConcurrency: 8,
    patches: !values['full-records'],
    db: values.db === undefined || values.db === 'sqlite' ? 'sqlite' : values.db === 'postgres' ? 'postgres' : usage('--db must be sqlite or postgres'),
    replicas: int(values.replicas, values.db === 'postgres' ? 3 : 1, 1, 16, 'replicas'),
    peersPerNode: int(values['peers-per-node'], 0, 0, 50_000, 'peers-per-node'),
    multiplex: int(values.multiplex, 0, 0, MAX_CHANNELS_PER_CONNECTION, 'multiplex'),
  };
}

/** CPU seconds (user+system) and RSS bytes of a process, from /proc. */
function procStats(pid: number): { cpu: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpu = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return { cpu, rss: rssKb * 1024 };
}

/** Busy and total jiffies of the whole machine (all CPUs), from /proc/stat. */
function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + f[4]!; // idle + iowait
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function histogramPercentile(hist: Map<number, number>, total: number, p: number): number {
  const want = Math.ceil((p / 100) * total);
  let seen = 0;
  for (const ms of [...hist.keys()].sort((a, b) => a - b)) {
    seen += hist.get(ms)!;
    if (seen >= want) return ms;
  }
  return NaN;
}

class Worker {
  private readonly child: ChildProcess;
  private readonly waiters: ((e: WorkerEvent) => void)[] = [];

  constructor(readonly index: number) {
    this.child = fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (e: WorkerEvent) => {
      if (e.ev === 'error') {
        process.stderr.write(`bench-coordinator: worker ${index}: ${e.message}\n`);
        process.exit(1);
      }
      this.waiters.shift()?.(e);
    });
    this.child.on('exit', (code) => { if (code && code !== 0) process.stderr.write(`bench-coordinator: worker ${index} exited ${code}\n`); });
  }

  get pid(): number { return this.child.pid!; }

  request<E extends WorkerEvent>(cmd: WorkerCommand): Promise<E> {
    return new Promise((resolve) => {
      this.waiters.push(resolve as (e: WorkerEvent) => void);
      this.child.send(cmd);
    });
  }

  close(): void {
    this.child.send({ cmd: 'close' } satisfies WorkerCommand);
  }
}

interface BenchPostgres {
  dir: string;
  proc: ChildProcess;
  psql(sql: string): string;
}

const PG_BIN = '/usr/lib/postgresql/15/bin';
const asPostgres = (argv: string[]): string[] => ['runuser', '-u', 'postgres', '--', ...argv];

/** A PostgreSQL on a Unix socket only (listen_addresses empty), in a temporary directory. */
async function startPostgres(): Promise<BenchPostgres> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-bench-pg-'));
  const [uid, gid] = ['-u', '-g'].map((f) => Number(execFileSync('id', [f, 'postgres'], { encoding: 'utf8' }).trim()));
  await chown(dir, uid!, gid!);
  const init = asPostgres([join(PG_BIN, 'initdb'), '-D', join(dir, 'data'), '-A', 'trust', '-U', 'pinhole', '--no-sync']);
  execFileSync(init[0]!, init.slice(1), { stdio: 'ignore' });
  const argv = asPostgres([join(PG_BIN, 'postgres'), '-D', join(dir, 'data'), '-c', "listen_addresses=", '-c', `unix_socket_directories=${dir}`, '-c', 'max_connections=200']);
  const proc = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    proc.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('ready to accept connections')) resolve();
    });
    proc.once('exit', (code) => reject(new Error(`postgres exited with ${code}: ${err.slice(-300)}`)));
  });
  proc.stderr!.resume();
  return {
    dir, proc,
    psql: (sql) => execFileSync(join(PG_BIN, 'psql'), ['-h', dir, '-U', 'pinhole', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-Atc', sql], { encoding: 'utf8' }).trim(),
  };
}

async function stopPostgres(pg: BenchPostgres): Promise<void> {
  if (pg.proc.exitCode === null && pg.proc.signalCode === null) {
    const exited = new Promise((r) => pg.proc.once('exit', r));
    const stop = asPostgres([join(PG_BIN, 'pg_ctl'), '-D', join(pg.dir, 'data'), '-m', 'fast', '-w', '-t', '20', 'stop']);
    try {
      execFileSync(stop[0]!, stop.slice(1), { stdio: 'ignore' });
    } catch {
      pg.proc.kill('SIGKILL');
    }
    await exited;
  }
  await rm(pg.dir, { recursive: true, force: true });
}

async function startCoordinator(dir: string, flushInterval: string, db: string = join(dir, 'bench.db')): Promise<{ proc: ChildProcess; url: string; token: string }> {
  const token = randomBytes(24).toString('base64url');
  const tokenFile = join(dir, `token-${randomBytes(4).toString('hex')}`);
  await writeFile(tokenFile, token, { mode: 0o600 });
  // BENCH_COORDINATOR_CPU_PROF=DIR: write a V8 CPU profile of the coordinator there.
  const prof = process.env.BENCH_COORDINATOR_CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_COORDINATOR_CPU_PROF] : [];
  const proc = spawn(process.execPath, [...prof, PINHOLE_BIN, 'coordinator', '--listen', '127.0.0.1:0', '--db', db,
    '--admin-token-file', tokenFile, '--flush-interval', flushInterval,
    // Every simulated node comes from 127.0.0.1: the per-address limits are for the internet, not this.
    '--max-handshake-rate', '1000000', '--max-register-rate', '1000000', '--max-unauthenticated-per-address', '100000', '--max-unauthenticated', '100000'], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PINHOLE_LOG_LEVEL: process.env.BENCH_COORDINATOR_LOG_LEVEL ?? 'warn' } });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${out.slice(-500)}`)));
  });
  // A coordinator that dies later says why (its log is on stdout).
  let tail = '';
  proc.stdout!.on('data', (d: Buffer) => { tail = (tail + d.toString()).slice(-2000); });
  proc.once('exit', (code, signal) => { if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`bench-coordinator: a coordinator exited (${code ?? signal}): ${tail}\n`); });
  return { proc, url, token };
}

/** Waits until the coordinator and the simulated nodes are idle (the last deltas are out and read). */
async function settle(pids: number[], deltasSent: () => Promise<number>, maxSeconds = 300): Promise<void> {
  const cpu = (): number => pids.reduce((s, p) => s + procStats(p).cpu, 0);
  // Idle, or no delta sent for 3 s: with tens of thousands of streams their keepalives alone keep
  // the processes from ever looking idle.
  let deltas = await deltasSent();
  let still = 0;
  for (let i = 0; i < maxSeconds; i++) {
    const a = cpu();
    await new Promise((r) => setTimeout(r, 1000));
    if (cpu() - a < 0.05 * pids.length) return;
    const now = await deltasSent();
    still = now === deltas ? still + 1 : 0;
    deltas = now;
    if (still >= 3) return;
  }
}

function setupName(s: Setup): string {
  return s.kind === 'sqlite' ? 'sqlite x1' : `postgres x${s.replicas}`;
}

async function runSize(n: number, o: Options, setup: Setup): Promise<Record<string, unknown>> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-bench-coord-'));
  const log = (msg: string): void => { process.stderr.write(`[N=${n} ${setupName(setup)}] ${msg}\n`); };
  const coords: { proc: ChildProcess; url: string; token: string }[] = [];
  let sampler: NodeJS.Timeout | undefined;
  const workers: Worker[] = [];
  try {
    if (setup.kind === 'sqlite') {
      coords.push(await startCoordinator(dir, o.flushInterval));
    } else {
      const name = `bench_${n}_${randomBytes(3).toString('hex')}`;
      setup.pg.psql(`CREATE DATABASE ${name}`);
      const db = `postgres://pinhole@localhost:5432/${name}?host=${encodeURIComponent(setup.pg.dir)}`;
      // The first one stores the coordinator key; the others load it.
      for (let i = 0; i < setup.replicas; i++) coords.push(await startCoordinator(dir, o.flushInterval, db));
    }
    const pids = coords.map((c) => c.proc.pid!);
    const statsOf = async (c: { url: string; token: string }): Promise<Record<string, any>> =>
      (await channelCall(c.url, generatePrivateKey(), 'GET', '/api/v1/admin/stats', { headers: { authorization: `Bearer ${c.token}` } })).body as Record<string, any>;
    const url = coords[0]!.url;
    const admin = { authorization: `Bearer ${coords[0]!.token}` };
    // CPU: all coordinator processes together; RSS: the largest one (the bar is per process).
    const coordCpu = (): number => pids.reduce((s, p) => s + procStats(p).cpu, 0);
    const coordRss = (): number => Math.max(...pids.map((p) => procStats(p).rss));
    let peakRss = 0;
    sampler = setInterval(() => { peakRss = Math.max(peakRss, coordRss()); }, 200);
    workers.push(...Array.from({ length: Math.min(o.workers, n) }, (_, i) => new Worker(i)));
    // One auth key (no policy), or one per group with its own user and a policy of one ACL per group.
    const groups = o.peersPerNode > 0 ? Math.max(1, Math.ceil(n / o.peersPerNode)) : 0;
    const authKeys: string[] = [];
    for (let g = 0; g < Math.max(1, groups); g++) {
      const body = groups > 0 ? { reusable: true, user: `g${g}` } : { reusable: true };
      authKeys.push((await channelCall(url, generatePrivateKey(), 'POST', '/api/v1/admin/authkeys', { body, headers: admin })).body.key as string);
    }
    if (groups > 0) {
      const acls = Array.from({ length: groups }, (_, g) => ({ action: 'accept', src: [`user:g${g}`], dst: [`user:g${g}:*`] }));
      const r = await channelCall(url, generatePrivateKey(), 'PUT', '/api/v1/admin/policy', { body: { acls }, headers: admin });
      if (r.status !== 200) throw new Error(`policy refused: ${r.status} ${JSON.stringify(r.body)}`);
    }
    for (const c of coords.slice(1)) {
      // Made on the first replica: wait until the change feed brought them to the others.
      for (let i = 0; ; i++) {
        const { authKeys: seen } = (await channelCall(c.url, generatePrivateKey(), 'GET', '/api/v1/admin/authkeys', { headers: { authorization: `Bearer ${c.token}` } })).body as { authKeys: unknown[] };
        if (seen.length >= authKeys.length) break;
        if (i > 300) throw new Error(`the auth keys did not reach ${c.url}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const per = Math.ceil(n / workers.length);
    const owner = (index: number): Worker => workers[Math.floor(index / per)]!;
    await Promise.all(workers.map((w) => w.request({ cmd: 'init', urls: coords.map((c) => c.url), authKeys, groups, total: n, offset: w.index * per, count: Math.max(0, Math.min(per, n - w.index * per)), patches: o.patches, multiplex: o.multiplex })));

    const workersCpu = (): number => workers.reduce((sum, w) => sum + procStats(w.pid).cpu, 0);
    const phase = async <T>(name: string, run: () => Promise<T>): Promise<{ result: T; seconds: number; cpu: number; workersCpu: number; machineBusyPct: number }> => {
      const c0 = coordCpu();
      const w0 = workersCpu();
      const m0 = machineJiffies();
      const t0 = wallNow();
      const result = await run();
      const seconds = (wallNow() - t0) / 1000;
      const cpu = coordCpu() - c0;
      const wcpu = workersCpu() - w0;
      const m1 = machineJiffies();
      const machineBusyPct = (100 * (m1.busy - m0.busy)) / Math.max(1, m1.total - m0.total);
      log(`${name}: ${seconds.toFixed(1)} s, CPU: coordinator ${cpu.toFixed(1)} s, simulated nodes ${wcpu.toFixed(1)} s; machine ${machineBusyPct.toFixed(0)}% busy (${cpus().length} CPUs, all processes)`);
      return { result, seconds, cpu, workersCpu: wcpu, machineBusyPct };
    };

    const reg = await phase('register', () => Promise.all(workers.map((w) => w.request<Extract<WorkerEvent, { ev: 'registered' }>>({ cmd: 'register', concurrency: o.registerConcurrency }))));
    const regFailed = reg.result.reduce((s, r) => s + r.failed, 0);
    if (regFailed > 0) throw new Error(`${regFailed} registrations failed: ${reg.result.find((r) => r.firstError)?.firstError}`);
    const con = await phase('connect', () => Promise.all(workers.map((w) => w.request<Extract<WorkerEvent, { ev: 'connected' }>>({ cmd: 'connect', concurrency: o.connectConcurrency }))));
    const conFailed = con.result.reduce((s, r) => s + r.failed, 0);
    if (conFailed > 0) throw new Error(`${conFailed} streams failed: ${con.result.find((r) => r.firstError)?.firstError}`);
    const deltasSent = async (): Promise<number> => (await Promise.all(coords.map(statsOf))).reduce((sum, st) => sum + Number(st.netmap.deltas), 0);
    const settleRun = await phase('settle (online deltas drained)', () => settle([...pids, ...workers.map((w) => w.pid)], deltasSent));
    const held = coordRss();
    log(`holding ${n} streams, RSS ${(held / 2 ** 20).toFixed(0)} MiB`);

    // Single changes, one at a time: how long until every peer has it.
    const fanout: number[] = [];
    const perChangeMax: number[] = [];
    let missingTotal = 0;
    for (let k = 1; k <= o.changes; k++) {
      const sender = Math.floor(Math.random() * n);
      const marker = `198.18.${k >> 8}.${k & 255}:${40000 + k}`;
      await Promise.all(workers.map((w) => w.request({ cmd: 'arm', marker, sender })));
      const { sentAt } = await owner(sender).request<Extract<WorkerEvent, { ev: 'changed' }>>({ cmd: 'change', index: sender, endpoint: marker });
      let arrivals: number[] = [];
      let missing = Infinity;
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        const got = await Promise.all(workers.map((w) => w.request<Extract<WorkerEvent, { ev: 'arrivals' }>>({ cmd: 'collect' })));
        arrivals = got.flatMap((g) => g.times);
        missing = got.reduce((s, g) => s + g.missing, 0) - 1; // the sender is not its own peer
        if (missing === 0) break;
      }
      missingTotal += missing;
      const lat = arrivals.map((t) => t - sentAt);
      fanout.push(...lat);
      perChangeMax.push(Math.max(...lat));
      await new Promise((r) => setTimeout(r, 300));
    }
    fanout.sort((a, b) => a - b);
    perChangeMax.sort((a, b) => a - b);
    const fan = { p50: percentile(fanout, 50), p99: percentile(fanout, 99), max: fanout.at(-1) ?? NaN, allPeersP50: percentile(perChangeMax, 50), missing: missingTotal };
    log(`fan-out p50 ${fan.p50.toFixed(0)} ms, p99 ${fan.p99.toFixed(0)} ms, every peer (median change) ${fan.allPeersP50.toFixed(0)} ms, missing ${missingTotal}`);

    let churn: Record<string, number> | null = null;
    if (o.churnSeconds > 0) {
      const t0 = wallNow() + 200;
      peakRss = Math.max(peakRss, coordRss());
      const { result: results, cpu, workersCpu: wcpu, seconds, machineBusyPct } = await phase('churn', () => Promise.all(workers.map((w) => w.request<Extract<WorkerEvent, { ev: 'churned' }>>({ cmd: 'churn', t0, perSecond: o.churnRate / workers.length, durationMs: o.churnSeconds * 1000 }))));
      const hist = new Map<number, number>();
      let samples = 0;
      let overflow = 0;
      let sent = 0;
      let expected = 0;
      for (const r of results) {
        sent += r.sent;
        expected += r.expected;
        samples += r.samples;
        overflow += r.over;
        for (const [ms, count] of r.histogram) hist.set(ms, (hist.get(ms) ?? 0) + count);
      }
      churn = {
        sent, samples, expected, deliveredPct: (100 * samples) / expected,
        p50: histogramPercentile(hist, samples, 50), p99: histogramPercentile(hist, samples, 99),
        max: overflow > 0 ? Infinity : Math.max(...hist.keys()), cpuPct: (100 * cpu) / seconds, workersCpuPct: (100 * wcpu) / seconds, machineBusyPct,
      };
      log(`churn: ${sent} changes, p50 ${churn.p50} ms, p99 ${churn.p99} ms, delivered ${churn.deliveredPct!.toFixed(2)}%, CPU: coordinator ${churn.cpuPct!.toFixed(0)}%, simulated nodes ${churn.workersCpuPct!.toFixed(0)}%`);
    }
    let replicaStats: Record<string, any>[] = [];
    let feedIntact: boolean | null = null;
    if (setup.kind === 'postgres') {
      // Every replica at the same last change id (waited for: the last flush may be in flight), none skipped one.
      for (let i = 0; i < 100; i++) {
        replicaStats = await Promise.all(coords.map(async (c) => (await statsOf(c)).replica as Record<string, any>));
        if (new Set(replicaStats.map((r) => r.lastApplied)).size === 1) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      feedIntact = new Set(replicaStats.map((r) => r.lastApplied)).size === 1 && replicaStats.every((r) => r.gaps === 0 && r.resyncs === 0);
      log(`change feed: last id ${replicaStats.map((r) => r.lastApplied).join(' / ')}, gaps ${replicaStats.map((r) => r.gaps).join(' / ')}, reloads ${replicaStats.map((r) => r.resyncs).join(' / ')}`);
    }
    const noChangeLost = fan.missing === 0 && (churn === null || churn.samples === churn.expected) && feedIntact !== false;
    const coordinatorStats = await statsOf(coords[0]!);
    return {
      nodes: n, setup: setupName(setup), coordinatorStats, replicaStats, noChangeLost,
      registrationsPerSecond: n / reg.seconds, registrationCpuSeconds: reg.cpu, registrationWorkersCpuSeconds: reg.workersCpu,
      streamsPerSecond: n / con.seconds, connectCpuSeconds: con.cpu, connectWorkersCpuSeconds: con.workersCpu, netmapBytes: con.result.reduce((s, r) => s + r.netmapBytes, 0),
      netmapsValidated: con.result.reduce((s, r) => s + r.validated, 0), settleSeconds: settleRun.seconds,
      heldRssBytes: held, peakRssBytes: Math.max(peakRss, coordRss()),
      fanoutMs: fan, churn,
    };
  } finally {
    clearInterval(sampler);
    for (const w of workers) w.close();
    await Promise.all(coords.map(async ({ proc }) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }));
    await rm(dir, { recursive: true, force: true });
  }
}

function table(rows: Record<string, any>[]): string {
  const header = ['nodes', 'setup', 'reg/s', 'streams/s', 'held RSS', 'peak RSS', 'fan-out p50', 'fan-out p99', 'all peers', 'churn p50', 'churn p99', 'delivered', 'churn CPU', 'none lost'];
  const ms = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '-' : v === Infinity ? '>60 s' : `${Math.round(v)} ms`);
  const mib = (b: number): string => `${Math.round(b / 2 ** 20)} MiB`;
  const lines = rows.map((r) => [
    String(r.nodes), r.setup, r.registrationsPerSecond.toFixed(0), r.streamsPerSecond.toFixed(0), mib(r.heldRssBytes), mib(r.peakRssBytes),
    ms(r.fanoutMs.p50), ms(r.fanoutMs.p99), ms(r.fanoutMs.allPeersP50),
    ms(r.churn?.p50), ms(r.churn?.p99), r.churn ? `${r.churn.deliveredPct.toFixed(2)}%` : '-', r.churn ? `${r.churn.cpuPct.toFixed(0)}%` : '-',
    r.noChangeLost ? 'yes' : 'NO',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((l) => l.map((c, i) => c.padStart(widths[i]!)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const o = parseOptions();
  // The coordinator holds a socket per node (per K nodes with --multiplex K); the limit is inherited from here.
  const largest = Math.max(...o.sizes);
  const need = (o.multiplex > 0 ? Math.ceil(largest / o.multiplex) : largest) + 2000;
  if (openFilesLimit() < need) usage(`${largest} nodes need an open-files limit of at least ${need} (now ${openFilesLimit()}); as root: ulimit -n ${Math.max(need, 100_000)}; or --multiplex 1000 (HTTP/2, 1,000 nodes' channels to a connection)`);
  const results: Record<string, any>[] = [];
  const pg = o.db === 'postgres' ? await startPostgres() : null;
  try {
    for (const n of o.sizes) {
      results.push(await runSize(n, o, { kind: 'sqlite' }));
      if (pg) results.push(await runSize(n, o, { kind: 'postgres', replicas: o.replicas, pg }));
    }
  } finally {
    if (pg) await stopPostgres(pg);
  }
  const verdicts = results.map((r) => ({
    nodes: r.nodes, setup: r.setup as string, noChangeLost: r.noChangeLost as boolean,
    fanoutP99: r.fanoutMs.p99 <= BAR.fanoutP99Ms,
    churnP99: r.churn ? r.churn.p99 <= BAR.churnP99Ms : null,
    rss: r.peakRssBytes <= (o.peersPerNode > 0 ? POLICY_RSS_BAR : BAR.rssBytes),
  }));
  const out = {
    benchmark: 'coordinator', date: new Date().toISOString(), node: process.version,
    options: o, bar: BAR, results, verdicts,
    note: `${o.peersPerNode > 0 ? `a policy of groups of ~${o.peersPerNode} nodes (each sees its group)` : 'every node sees every node (no policy)'}; one coordinator process${o.db === 'postgres' ? `, then ${o.replicas} on one PostgreSQL (node i at replica i mod ${o.replicas})` : ''}; simulated nodes in worker processes on the same machine, ${o.multiplex > 0 ? `their channels as streams of HTTP/2 connections, ${o.multiplex} to one` : 'a TCP connection each'}; ${o.patches ? 'streams ask for peer patches' : 'streams get whole peer records'}`,
  };
  const dir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `coordinator-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`${table(results)}\n`);
  for (const v of verdicts) {
    const mark = (ok: boolean | null): string => (ok === null ? 'not run' : ok ? 'ok' : 'MISSED');
    process.stdout.write(`N=${v.nodes} ${v.setup}: fan-out p99 ≤ 1 s ${mark(v.fanoutP99)}; churn p99 ≤ 2 s ${mark(v.churnP99)}; RSS ≤ ${o.peersPerNode > 0 ? 2 : 1} GiB ${mark(v.rss)}; no change lost ${mark(v.noChangeLost)}\n`);
  }
  process.stdout.write(`wrote ${file}\n`);
}

await main();
