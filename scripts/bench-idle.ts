// Idle benchmark: one real managed agent in a lab namespace with N peers in its netmap (simulated
// nodes from bench-coordinator-worker.ts that register with a real coordinator and hold their
// streams), left alone: its CPU over --seconds (the scheduler's run time from /proc/PID/task/*/schedstat; utime+stime,
// which this kernel samples at the clock tick, beside it) and its RSS
// (VmRSS, VmHWM from /proc/PID/status). No traffic flows; whatever CPU it uses is timers.
//
//   node dist/scripts/bench-idle.js [--peers 10,100] [--seconds 60] [--v8-defaults-too] [--unbundled-too]   (root; see scripts/bench-idle)
// --v8-defaults-too measures each peer count again with PINHOLE_V8_FLAGS='' (the agent on V8's
// defaults, without bin/pinhole's flags), for what those flags change in the same run;
// --unbundled-too again with PINHOLE_BUNDLE=0 (the agent from dist/agent/'s ~275 modules instead
// of the minified bundle), for what the bundle saves.
// Prints a table and writes bench/results/idle-<date>.json.
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createLab, type Host, type Lab } from './natlab/index.js';
import { startCoordinator } from './tunnels/pinhole-coordinator.js';
import { startManagedAgent } from './tunnels/pinhole-managed.js';
import { runId } from './tunnels/keys.js';
import { waitFor } from './tunnels/wait-for.js';
import { processCpuSeconds, schedSecondsBetween, threadSchedNanos } from './traversal/throughput.js';
import type { WorkerCommand, WorkerEvent } from './bench-coordinator-worker.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { writeBenchReport, runBench } from './bench-options.js';

const WORKER = fileURLToPath(new URL('./bench-coordinator-worker.js', import.meta.url));
const BAR_IDLE_CPU_PCT = 0.1;
const BAR_RSS_MB = 60;
/**
 * After the netmap arrived, before the window: start-up work (first probes, STUN, netmap save) and
 * WireGuard's handshake attempts to the simulated peers, which never answer, must be over first
 * (REKEY_ATTEMPT_TIME is 90 s). Real idle peers answer at once and then fall quiet.
 */
const DEFAULT_SETTLE_SECONDS = 100;

interface Row {
  peers: number;
  /**
   * How the agent ran: as shipped (the bundle, bin/pinhole's V8 flags), on V8's defaults
   * (PINHOLE_V8_FLAGS='') or from dist/agent/'s modules (PINHOLE_BUNDLE=0).
   */
  variant: Variant;
  seconds: number;
  /** Run time over the window (the scheduler's, exact; threadSchedNanos). */
  cpuSeconds: number;
  /** cpuSeconds in percent of one core. */
  cpuPct: number;
  /** utime+stime over the window, sampled at the clock tick (coarse at idle; shown beside the exact figure). */
  tickCpuSeconds: number;
  rssMB: number;
  peakRssMB: number;
  /** Of rssMB: anonymous pages (the V8 heap, malloc) and file pages (node's own binary, shared with every node process). */
  rssAnonMB: number;
  rssFileMB: number;
  peersInNetmap: number;
  /** rssFileMB by file, largest first (at least 0.1 MB). */
  rssFileByFile: Record<string, number>;
  /** cpuSeconds by thread: the main thread, the others by name (/proc/PID/task/TID/comm); milliseconds run and times scheduled in. */
  byThread: Record<string, { ms: number; runs: number }>;
}

type Variant = 'shipped' | 'v8-defaults' | 'unbundled';
const VARIANT_ENV: Record<Variant, Record<string, string>> = {
  shipped: { PINHOLE_BUNDLE: '1' },
  'v8-defaults': { PINHOLE_V8_FLAGS: '', PINHOLE_BUNDLE: '1' },
  unbundled: { PINHOLE_BUNDLE: '0' },
};
/** Host-name tags (host names are unique per lab). */
const VARIANT_TAG: Record<Variant, string> = { shipped: '', 'v8-defaults': 'd', unbundled: 'u' };

function usage(msg?: string): never {
  if (msg) process.stderr.write(`bench-idle: ${msg}\n`);
  process.stderr.write('usage: bench-idle [--peers 10,100] [--seconds 60] [--settle 100] [--v8-defaults-too] [--unbundled-too]\n');
  process.exit(2);
}

function options(): { peers: number[]; seconds: number; settleSeconds: number; variants: Variant[] } {
  let values;
  try {
    ({ values } = parseArgs({ options: { peers: { type: 'string' }, seconds: { type: 'string' }, settle: { type: 'string' }, 'v8-defaults-too': { type: 'boolean' }, 'unbundled-too': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values.help) usage();
  const peers = (values.peers ?? '10,100').split(',').map(Number);
  if (peers.some((n) => !Number.isInteger(n) || n < 1 || n > 5000)) usage('--peers: integers in 1..5000');
  const seconds = Number(values.seconds ?? 60);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) usage('--seconds: an integer in 1..3600');
  const settleSeconds = Number(values.settle ?? DEFAULT_SETTLE_SECONDS);
  if (!Number.isInteger(settleSeconds) || settleSeconds < 0 || settleSeconds > 3600) usage('--settle: an integer in 0..3600');
  const variants: Variant[] = ['shipped'];
  if (values['v8-defaults-too']) variants.push('v8-defaults');
  if (values['unbundled-too']) variants.push('unbundled');
  return { peers, seconds, settleSeconds, variants };
}

/** The simulated nodes, in a worker process inside `host`'s namespace (it must reach the coordinator). */
class SimulatedNodes {
  private readonly child: ChildProcess;
  private readonly waiters: ((e: WorkerEvent) => void)[] = [];

  constructor(host: Host) {
    this.child = fork(WORKER, [], {
      execPath: 'ip', execArgv: ['netns', 'exec', host.ns, process.execPath], stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (e: WorkerEvent) => {
      if (e.ev === 'error') throw new Error(`simulated nodes: ${e.message}`);
      this.waiters.shift()?.(e);
    });
  }

  request<E extends WorkerEvent>(cmd: WorkerCommand): Promise<E> {
    return new Promise((resolve) => {
      this.waiters.push(resolve as (e: WorkerEvent) => void);
      this.child.send(cmd);
    });
  }

  close(): void {
    if (this.child.connected) this.child.send({ cmd: 'close' } satisfies WorkerCommand);
    setTimeout(() => { if (this.child.exitCode === null) this.child.kill('SIGKILL'); }, 2000).unref();
  }
}

/** VmRSS split into anonymous memory (heap, this process's own) and file pages (mostly node's binary, shared). */
async function memoryMB(pid: number): Promise<{ rss: number; hwm: number; anon: number; file: number }> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024, anon: kb('RssAnon') / 1024, file: kb('RssFile') / 1024 };
}

/** File-backed RSS by file (/proc/PID/smaps), largest first: which binaries' and libraries' pages the agent keeps resident. */
async function fileRssMB(pid: number): Promise<Record<string, number>> {
  const byFile = new Map<string, number>();
  let file: string | null = null;
  for (const line of (await readFile(`/proc/${pid}/smaps`, 'utf8')).split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (head) { file = head[1] !== '0' && head[2]!.startsWith('/') ? head[2]! : null; continue; }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss && file !== null) byFile.set(file, (byFile.get(file) ?? 0) + Number(rss[1]) / 1024);
  }
  return Object.fromEntries([...byFile].filter(([, mb]) => mb >= 0.1).sort((a, b) => b[1] - a[1]).map(([f, mb]) => [f, Math.round(mb * 10) / 10]));
}

async function measure(lab: Lab, peers: number, seconds: number, settleMs: number, variant: Variant): Promise<Row> {
  const id = runId();
  const hostTag = `${peers}${VARIANT_TAG[variant]}`;
  const coordHost = await lab.addPublicHost(`c${hostTag}`);
  const agentHost = await lab.addPublicHost(`a${hostTag}`);
  const coord = await startCoordinator(coordHost, {
    extraArgs: ['--max-handshake-rate', '1000000', '--max-register-rate', '1000000', '--max-unauthenticated-per-address', '100000'],
  });
  const sims = new SimulatedNodes(coordHost);
  try {
    const authKey = await coord.createAuthKey({ reusable: true });
    const agent = await startManagedAgent(agentHost, { tun: `pi${id}`.slice(0, 15), env: { PINHOLE_LOG_LEVEL: 'warn', ...VARIANT_ENV[variant] } });
    try {
      const up = await agent.cli(['up', '--coordinator', coord.url, '--auth-key', authKey, '--hostname', 'idle'], 30_000);
      if (up.code !== 0) throw new Error(`pinhole up failed: ${up.stderr.trim()}`);
      // total: the simulated nodes and the agent, so each sim expects `peers` peers.
      await sims.request({ cmd: 'init', urls: [coord.url], authKeys: [authKey], groups: 0, total: peers + 1, count: peers, offset: 0, patches: true, multiplex: 0 });
      const reg = await sims.request<Extract<WorkerEvent, { ev: 'registered' }>>({ cmd: 'register', concurrency: 16 });
      if (reg.failed > 0) throw new Error(`simulated nodes: ${reg.failed} registrations failed: ${reg.firstError}`);
      const con = await sims.request<Extract<WorkerEvent, { ev: 'connected' }>>({ cmd: 'connect', concurrency: 16 });
      if (con.failed > 0) throw new Error(`simulated nodes: ${con.failed} streams failed: ${con.firstError}`);
      let inNetmap = 0;
      await waitFor(`the agent's netmap holds ${peers} peers`, async () => {
        inNetmap = (await agent.status()).peers.length;
        return inNetmap >= peers;
      }, 60_000, 500);
      await new Promise((r) => setTimeout(r, settleMs));
      const pid = agent.proc.pid;
      const cpu0 = processCpuSeconds(pid);
      const run0 = threadSchedNanos(pid);
      const threads0 = threadStats(pid);
      const t0 = performance.now();
      let peak = 0;
      const deadline = t0 + seconds * 1000;
      while (performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, Math.min(5000, deadline - performance.now())));
        peak = Math.max(peak, (await memoryMB(pid)).rss);
      }
      const tickCpuSeconds = processCpuSeconds(pid) - cpu0;
      const cpuSeconds = schedSecondsBetween(run0, threadSchedNanos(pid)).run;
      const byThread = threadStatsBetween(threads0, threadStats(pid));
      const wall = (performance.now() - t0) / 1000;
      const mem = await memoryMB(pid);
      const rssFileByFile = await fileRssMB(pid);
      return { peers, variant, seconds: wall, cpuSeconds, cpuPct: (100 * cpuSeconds) / wall, tickCpuSeconds, rssMB: mem.rss, peakRssMB: Math.max(peak, mem.hwm), rssAnonMB: mem.anon, rssFileMB: mem.file, peersInNetmap: inNetmap, byThread, rssFileByFile };
    } finally {
      await agent.stop();
    }
  } finally {
    sims.close();
    await coord.stop();
  }
}

interface ThreadStat { name: string; ns: bigint; runs: number }

/** Per thread of `pid`: its name, run time and how many times it was scheduled in (schedstat's first and third fields). */
function threadStats(pid: number): Map<number, ThreadStat> {
  const out = new Map<number, ThreadStat>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [ns, , runs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(' ');
      // Node names none of its threads: tell the main thread (the event loop) from the rest.
      const name = Number(tid) === pid ? 'main' : `other ${readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()}`;
      out.set(Number(tid), { name, ns: BigInt(ns!), runs: Number(runs) });
    } catch { /* the thread ended between the listing and the reads */ }
  }
  return out;
}

/** What each thread name ran between two threadStats readings (threads of one name summed). */
function threadStatsBetween(before: Map<number, ThreadStat>, after: Map<number, ThreadStat>): Record<string, { ms: number; runs: number }> {
  const out: Record<string, { ms: number; runs: number }> = {};
  for (const [tid, t] of after) {
    const b = before.get(tid);
    const row = (out[t.name] ??= { ms: 0, runs: 0 });
    row.ms += Number(t.ns - (b?.ns ?? 0n)) / 1e6;
    row.runs += t.runs - (b?.runs ?? 0);
  }
  return out;
}

/** The shipped agent runs from the bundle only if it is current (bin/pinhole): refuse to measure a stale one. */
async function checkBundleCurrent(): Promise<void> {
  const mtime = async (p: string): Promise<number> => (await stat(join(REPO_ROOT, 'dist', p))).mtimeMs;
  const current = await Promise.all([mtime('bundle/agent.js'), mtime('agent/cli/main.js')]).then(([b, m]) => b >= m, () => false);
  if (!current) throw new Error('dist/bundle/agent.js is missing or older than dist/agent/: run npm run build:bundle');
}

async function main(): Promise<number> {
  const o = options();
  await checkBundleCurrent();
  const startedAt = new Date();
  let lab: Lab | null = null;
  const onSignal = (): void => { void lab?.destroy(); setTimeout(() => process.exit(130), 10_000).unref(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const rows: Row[] = [];
  try {
    lab = await createLab({ name: 'bidle' });
    for (const [n, variant] of o.peers.flatMap((n) => o.variants.map((v) => [n, v] as const))) {
      const r = await measure(lab, n, o.seconds, o.settleSeconds * 1000, variant);
      process.stdout.write(`  ${n} peers${o.variants.length > 1 ? ` (${variant})` : ''}: CPU ${r.cpuPct.toFixed(3)}% over ${r.seconds.toFixed(0)} s (clock-tick sample ${((100 * r.tickCpuSeconds) / r.seconds).toFixed(3)}%), RSS ${r.rssMB.toFixed(1)} MB (anonymous ${r.rssAnonMB.toFixed(1)}, file ${r.rssFileMB.toFixed(1)}; peak ${r.peakRssMB.toFixed(1)} MB)\n`);
      process.stdout.write(`    file pages: ${Object.entries(r.rssFileByFile).slice(0, 6).map(([f, mb]) => `${f} ${mb.toFixed(1)} MB`).join(', ')}\n`);
      process.stdout.write(`    by thread: ${Object.entries(r.byThread).sort((a, b) => b[1].ms - a[1].ms).map(([name, t]) => `${name} ${t.ms.toFixed(1)} ms in ${t.runs} runs`).join(', ')}\n`);
      rows.push(r);
    }
  } finally {
    await lab?.destroy();
  }
  const shipped = rows.filter((r) => r.variant === 'shipped');
  const cpuRow = shipped.find((r) => r.peers === 10) ?? shipped[0]!;
  const rssRow = shipped.find((r) => r.peers === 100) ?? shipped[shipped.length - 1]!;
  const bars = {
    idleCpuPct: { peers: cpuRow.peers, value: cpuRow.cpuPct, bar: BAR_IDLE_CPU_PCT, met: cpuRow.cpuPct <= BAR_IDLE_CPU_PCT },
    rssMB: { peers: rssRow.peers, value: rssRow.rssMB, bar: BAR_RSS_MB, met: rssRow.rssMB <= BAR_RSS_MB },
  };
  process.stdout.write(`idle CPU with ${cpuRow.peers} peers: ${cpuRow.cpuPct.toFixed(3)}% (bar <= ${BAR_IDLE_CPU_PCT}%: ${bars.idleCpuPct.met ? 'met' : 'NOT met'})\n`);
  process.stdout.write(`RSS with ${rssRow.peers} peers: ${rssRow.rssMB.toFixed(1)} MB (bar <= ${BAR_RSS_MB} MB: ${bars.rssMB.met ? 'met' : 'NOT met'})\n`);
  // What --optimize-for-size and the bundle change, against the agent without them in the same run.
  const versus = (other: Variant, label: string) => shipped.flatMap((r) => {
    const d = rows.find((x) => x.variant === other && x.peers === r.peers);
    if (!d) return [];
    const v = { peers: r.peers, rss: r.rssMB / d.rssMB, peakRss: r.peakRssMB / d.peakRssMB, cpu: d.cpuSeconds > 0 ? r.cpuSeconds / d.cpuSeconds : null };
    process.stdout.write(`${v.peers} peers, shipped / ${label}: RSS ${v.rss.toFixed(2)}, peak RSS ${v.peakRss.toFixed(2)}, CPU ${v.cpu === null ? '-' : v.cpu.toFixed(2)}\n`);
    return [v];
  });
  const versusDefaults = versus('v8-defaults', 'V8 defaults');
  const versusUnbundled = versus('unbundled', 'unbundled');
  const report = {
    benchmark: 'idle',
    startedAt: startedAt.toISOString(),
    machine: { nproc: availableParallelism(), node: process.version },
    settings: {
      seconds: o.seconds, settleSeconds: o.settleSeconds,
      topology: 'one managed agent and a coordinator on the lab internet; the peers are simulated nodes (real keys, real control streams, no WireGuard) registered with the same coordinator',
      cpu: 'run time of the agent process over the window, in % of one core: the scheduler\'s exact figure summed over its threads (/proc/PID/task/*/schedstat); tickCpuSeconds is utime+stime from /proc/PID/stat, which this kernel samples at the clock tick',
      rss: 'VmRSS at the end of the window; peak = max(VmHWM, sampled VmRSS)',
    },
    rows,
    bars,
    versusDefaults,
    versusUnbundled,
  };
  const file = await writeBenchReport('idle', startedAt, report);
  process.stdout.write(`wrote ${file}\n`);
  return 0;
}

runBench('bench-idle', main);
