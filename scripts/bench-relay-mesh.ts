// Relay mesh benchmark on loopback: throughput of relay clients (agent/relay, in this process)
// through one `pinhole relay` process, and through two meshed ones (sender on relay 1, receiver
// on relay 2: every frame crosses the mesh link), in the same run. Bar: meshed ≥ 0.8 × one relay.
// A window-of-frames pump as in scripts/bench-relay.ts, with 3 MiB in flight: below the relay's
// 4 MiB client queue (nothing dropped; the mesh's drops are checked), and enough that the extra
// hop's latency does not bound the meshed path (with 1 MiB it did: both relays were below their
// budget while the single relay was at it).
// A third path is the reference for what any extra hop costs on this machine: one relay, with the
// receiver connected to it through a TCP forwarder process that does nothing but copy bytes
// (node's socket.pipe, both ways). Every process shares the same cores, so an extra hop costs
// CPU (two more kernel copies of each byte, and a process to wake) even where it does no work.
// So every path is measured twice in each round: on the shared cores, and with each relay (and
// the forwarder) held to --relay-cpu cores by a CPU budget of its own (scripts/cpu-budget.ts: a
// cgroup with a CFS quota), as if each ran on a machine of that size; the clients' process is
// not held back in either. The bar is judged on both, printed side by side. Each run also shows
// the CPU of the hops, how long they waited runnable for a CPU (schedstat; under a budget that
// includes the time its quota held them back), the CPU of the clients' process and what the
// machine left idle, so it says which process bound the path.
//
//   node dist/scripts/bench-relay-mesh.js [--seconds 5] [--size 1400] [--rounds 2] [--relay-cpu 0.5]
// (--relay-cpu 0: shared cores only.)
// Prints the figures and writes bench/results/relay-mesh-<date>.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRelayClient, type RelayClient } from '../agent/relay/relay-client.js';
import { generatePrivateKey } from '../proto/wireguard/keys.js';
import { PINHOLE_BIN, REPO_ROOT } from './tunnels/paths.js';
import { createCpuBudget, removeStaleCpuBudgets, type CpuBudget } from './cpu-budget.js';
import { machineIdleSeconds, processCpuSeconds, schedSecondsBetween, threadSchedNanos } from './traversal/throughput.js';
import { median } from './bench-options.js';

const WINDOW_BYTES = 3 * 1024 * 1024;
const WINDOW_FRAMES = 2700;
const WARMUP_MS = 500;

interface Relay { proc: ChildProcess; url: string; key: Uint8Array; port: number }

async function startRelay(port: number, extra: string[]): Promise<Relay> {
  const proc = spawn(process.execPath, [PINHOLE_BIN, 'relay', '--open', '--listen', `127.0.0.1:${port}`, '--stun', '127.0.0.1:0', '--rate-limit', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PINHOLE_LOG_LEVEL: 'warn' },
  });
  let out = '';
  for await (const chunk of proc.stdout!) {
    out += String(chunk);
    const m = /listening (ws:\/\/\S+:(\d+)\/relay).*\npinhole relay key (\S+)\n/.exec(out);
    if (m) return { proc, url: m[1]!, port: Number(m[2]), key: new Uint8Array(Buffer.from(m[3]!, 'base64')) };
  }
  proc.kill('SIGTERM');
  throw new Error(`relay did not start: ${out}`);
}

/** A process that accepts on a port and pipes each connection to 127.0.0.1:target, both ways. */
async function startForwarder(target: number): Promise<{ proc: ChildProcess; port: number }> {
  const script = `const net = require('node:net');
const s = net.createServer((c) => { const u = net.connect(${target}, '127.0.0.1'); c.pipe(u); u.pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); });
s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port));`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of proc.stdout!) {
    out += String(chunk);
    const m = /port (\d+)\n/.exec(out);
    if (m) return { proc, port: Number(m[1]) };
  }
  proc.kill('SIGTERM');
  throw new Error(`forwarder did not start: ${out}`);
}

async function healthz(r: Relay): Promise<any> {
  return (await fetch(`http://127.0.0.1:${r.port}/healthz`)).json();
}

/** MB/s of packet payload b receives while a keeps a window of frames in flight. */
async function measure(a: RelayClient, b: RelayClient, size: number, seconds: number): Promise<{ mbytesPerSec: number; frames: number }> {
  const payload = randomBytes(size);
  const window = Math.min(WINDOW_FRAMES, Math.floor(WINDOW_BYTES / size));
  let sent = 0;
  let received = 0;
  let wake: (() => void) | null = null;
  const off = b.onRecv(() => { received++; if (wake && sent - received < window / 2) { const w = wake; wake = null; w(); } });
  let running = true;
  const pump = (async () => {
    while (running) {
      while (running && sent - received < window) {
        sent++;
        if (!a.send(b.nodeKey, payload)) await once(a, 'drain');
      }
      if (running) await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
    }
  })();
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const r0 = received, t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const r1 = received, t1 = performance.now();
  running = false;
  await pump;
  await new Promise((r) => setTimeout(r, 200));
  off();
  return { mbytesPerSec: ((r1 - r0) * size) / ((t1 - t0) / 1000) / 1e6, frames: r1 - r0 };
}

/** Clients a on ra and b on rb (b through the port viaPort instead, when given). */
async function pair(ra: Relay, rb: Relay, viaPort?: number): Promise<[RelayClient, RelayClient]> {
  const via = new URL(rb.url);
  if (viaPort !== undefined) via.port = String(viaPort);
  const bUrl = via.toString();
  const a = createRelayClient({ url: ra.url, relayKey: ra.key, nodePrivateKey: generatePrivateKey(), reconnect: false });
  const b = createRelayClient({ url: bUrl, relayKey: rb.key, nodePrivateKey: generatePrivateKey(), reconnect: false });
  await Promise.all([a.ready(), b.ready()]);
  return [a, b];
}

const PATHS = ['one relay', 'two meshed relays', 'one relay + TCP forwarder'] as const;
type PathName = typeof PATHS[number];
type Mode = 'shared cores' | 'relay cpu budget';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    seconds: { type: 'string', default: '5' }, size: { type: 'string', default: '1400' }, rounds: { type: 'string', default: '2' },
    'relay-cpu': { type: 'string', default: '0.5' },
  } });
  const seconds = Number(values.seconds);
  const size = Number(values.size);
  const rounds = Number(values.rounds);
  const relayCpu = Number(values['relay-cpu']);
  if (!(seconds > 0) || !(size > 0 && size <= 65_000) || !(rounds >= 1) || !(relayCpu >= 0 && relayCpu <= 2)) {
    throw new Error('usage: bench-relay-mesh [--seconds N] [--size BYTES] [--rounds N] [--relay-cpu CORES (0: shared cores only)]');
  }
  const modes: Mode[] = relayCpu > 0 ? ['shared cores', 'relay cpu budget'] : ['shared cores'];
  if (relayCpu > 0) removeStaleCpuBudgets('pinhole-bench-mesh-');
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-bench-mesh-'));
  const keyFile = join(dir, 'mesh.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  // Every process started is ended in `finally`, also when a later one fails to start; then its budget goes.
  const procs: ChildProcess[] = [];
  const budgets: CpuBudget[] = [];
  const runId = randomBytes(4).toString('hex');
  const started = <T extends { proc: ChildProcess }>(x: T, name: string): T => {
    procs.push(x.proc);
    if (relayCpu > 0) {
      const b = createCpuBudget(`pinhole-bench-mesh-${runId}-${name}`);
      budgets.push(b);
      b.add(x.proc.pid!);
    }
    return x;
  };
  const runs: Array<{ round: number; mode: Mode; path: PathName; mbytesPerSec: number; frames: number; hopCores: number[]; hopWaitCores: number[]; clientCores: number; idleCores: number }> = [];
  try {
    const single = started(await startRelay(0, []), 'single');
    // Two meshed relays: ports picked first so each can name the other.
    const p1 = 20000 + Math.floor(Math.random() * 20000);
    const p2 = p1 + 1;
    const mesh = [`ws://127.0.0.1:${p1}/relay`, `ws://127.0.0.1:${p2}/relay`].join(',');
    const m1 = started(await startRelay(p1, ['--mesh-with', mesh, '--mesh-key-file', keyFile]), 'm1');
    const m2 = started(await startRelay(p2, ['--mesh-with', mesh, '--mesh-key-file', keyFile]), 'm2');
    const forwarder = started(await startForwarder(single.port), 'fwd');
    for (let i = 0; i < 50; i++) {
      const [h1, h2] = await Promise.all([healthz(m1), healthz(m2)]);
      if (h1.counters.mesh.linksOut === 1 && h2.counters.mesh.linksOut === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const [sa, sb] = await pair(single, single);
    const [ma, mb] = await pair(m1, m2);
    const [fa, fb] = await pair(single, single, forwarder.port);
    for (let h = 0; h < 50 && (await healthz(m1)).counters.mesh.presence < 1; h++) await new Promise((r) => setTimeout(r, 100));
    // The processes each path crosses besides the clients' (their CPU is shown per run).
    const hops: Record<PathName, ChildProcess[]> = {
      'one relay': [single.proc], 'two meshed relays': [m1.proc, m2.proc], 'one relay + TCP forwarder': [single.proc, forwarder.proc],
    };
    const clients: Record<PathName, [RelayClient, RelayClient]> = { 'one relay': [sa, sb], 'two meshed relays': [ma, mb], 'one relay + TCP forwarder': [fa, fb] };
    for (let round = 1; round <= rounds; round++) {
      for (const mode of modes) {
        for (const b of budgets) b.limit(mode === 'shared cores' ? null : relayCpu);
        for (const path of PATHS) {
          const cpu0 = hops[path].map((p) => processCpuSeconds(p.pid!));
          const sched0 = hops[path].map((p) => threadSchedNanos(p.pid!));
          const [own0, idle0] = [process.cpuUsage(), machineIdleSeconds()];
          const t0 = performance.now();
          const r = await measure(clients[path][0], clients[path][1], size, seconds);
          const wall = (performance.now() - t0) / 1000;
          const hopCores = hops[path].map((p, i) => (processCpuSeconds(p.pid!) - cpu0[i]!) / wall);
          const hopWaitCores = hops[path].map((p, i) => schedSecondsBetween(sched0[i]!, threadSchedNanos(p.pid!)).wait / wall);
          const own = process.cpuUsage(own0);
          const clientCores = (own.user + own.system) / 1e6 / wall;
          const idleCores = (machineIdleSeconds() - idle0) / wall;
          runs.push({ round, mode, path, ...r, hopCores, hopWaitCores, clientCores, idleCores });
          process.stderr.write(`round ${round} ${mode}, ${path}: ${r.mbytesPerSec.toFixed(1)} MB/s (hops at ${hopCores.map((c) => c.toFixed(2)).join(' + ')} cores, waiting runnable ${hopWaitCores.map((c) => c.toFixed(2)).join(' + ')}, clients ${clientCores.toFixed(2)}, machine idle ${idleCores.toFixed(2)})\n`);
        }
      }
    }
    for (const b of budgets) b.limit(null);
    await Promise.all([sa, sb, ma, mb, fa, fb].map((c) => c.close()));
    const [h1, h2] = await Promise.all([healthz(m1), healthz(m2)]);
    if (h1.counters.mesh.forwardedOut === 0 || h2.counters.mesh.forwardedIn === 0) throw new Error('the meshed run did not cross the mesh');
    const meshDrops = [h1, h2].reduce((n, h) => n + Object.values(h.counters.mesh.drops as Record<string, number>).reduce((x, y) => x + y, 0), 0);
    process.stdout.write(`frames the mesh dropped: ${meshDrops}\n`);
    const results = modes.map((mode) => {
      const of = (path: PathName) => median(runs.filter((r) => r.mode === mode && r.path === path).map((r) => r.mbytesPerSec))!;
      const one = of('one relay');
      const two = of('two meshed relays');
      const hop = of('one relay + TCP forwarder');
      return { mode, oneRelayMBps: one, meshedMBps: two, ratio: two / one, forwarderHopMBps: hop, forwarderHopRatio: hop / one, met: two / one >= 0.8 };
    });
    for (const r of results) {
      const how = r.mode === 'shared cores' ? 'shared cores (every process on the same 2)' : `each relay and the forwarder held to ${relayCpu} cores`;
      process.stdout.write(`${how}: one relay ${r.oneRelayMBps.toFixed(1)} MB/s, two meshed relays ${r.meshedMBps.toFixed(1)} MB/s: ratio ${r.ratio.toFixed(2)} (bar >= 0.8: ${r.met ? 'met' : 'NOT met'})\n`);
      process.stdout.write(`  reference, an extra hop that only copies: one relay + TCP forwarder ${r.forwarderHopMBps.toFixed(1)} MB/s, ${r.forwarderHopRatio.toFixed(2)} of one relay; two meshed relays are ${(r.meshedMBps / r.forwarderHopMBps).toFixed(2)} of it\n`);
    }
    const out = join(REPO_ROOT, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    const date = new Date().toISOString();
    const file = join(out, `relay-mesh-${date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
    const shared = results[0]!;
    writeFileSync(file, `${JSON.stringify({
      date, node: process.version, seconds, size, rounds, relayCpu,
      note: 'relay clients in this process, each relay its own process; loopback; 2 shared cores; medians over rounds; relay cpu budget: a CFS quota per relay and forwarder process, the clients unlimited',
      oneRelayMBps: shared.oneRelayMBps, meshedMBps: shared.meshedMBps, ratio: shared.ratio, forwarderHopMBps: shared.forwarderHopMBps, forwarderHopRatio: shared.forwarderHopRatio,
      bar: 0.8, met: shared.met, byMode: results, throttled: budgets.map((b) => ({ budget: b.dir, ...b.usage() })), runs,
      meshDrops: { r1: h1.counters.mesh.drops, r2: h2.counters.mesh.drops },
    }, null, 2)}\n`);
    process.stdout.write(`wrote ${file}\n`);
  } finally {
    await Promise.all(procs.map(async (p) => {
      if (p.exitCode === null && p.signalCode === null) { const gone = once(p, 'exit'); p.kill('SIGTERM'); await gone; }
    }));
    for (const b of budgets) b.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench-relay-mesh: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
