// NAT traversal benchmark: TCP throughput over the direct path vs the relayed path between the
// same two NATed sites, in one run, and the relay's CPU per Gbit/s. Each site has two agents: one
// pair finds its direct path, the other runs with PINHOLE_FORCE_RELAY=1 and stays on the relay; a
// third pair is forced to relay too but sends no relay trains (PINHOLE_RELAY_TRAINS=0: one
// WireGuard message per packet, agent/wireguard/relay-train.ts), the reference for what trains
// change. The relay runs with --rate-limit 0: its default per-client limit (128 MiB/s) would cap
// one flow near 1 Gbit/s, and this measures the relay, not its policy.
// iperf3 rotates between the pairs each round; the relay process's CPU time comes from
// /proc/PID/stat before and after each run; each process on the path's time runnable but waiting
// for a CPU (schedstat), and the machine's idle time, over the same run. Prints a table and writes
// bench/results/traversal-bench-<date>.json.
//
//   node dist/scripts/bench-traversal.js [--seconds 5] [--rounds 3]     (root; see scripts/bench-traversal)
import { availableParallelism } from 'node:os';
import { createLab, type Lab } from './natlab/index.js';
import { startMesh, waitFor, waitMeshReady, type Mesh, type MeshNode, type MeshSiteSpec } from './traversal/mesh-lab.js';
import { addMeshNode } from './traversal/mesh-extra.js';
import { pairPaths, pingSummary, type PathName } from './traversal/pair-checks.js';
import { iperfTcp, machineIdleSeconds, processCpuSeconds, schedSecondsBetween, threadSchedNanos } from './traversal/throughput.js';
import { fmt, median, parseBenchOptions, toolVersion, type BenchOptions, abortOnSignal, writeBenchReport, runBench } from './bench-options.js';

const SITES: MeshSiteSpec[] = [
  { name: 'home', nat: 'port-restricted-cone' },
  { name: 'office', nat: 'full-cone' },
];
const BAR_RELAYED_VS_DIRECT = 0.8;
const PINGS = 20;

type Kind = 'direct' | 'relay' | 'relay-plain';
const KINDS: Kind[] = ['direct', 'relay', 'relay-plain'];
const pathOf = (k: Kind): PathName => (k === 'direct' ? 'direct' : 'relay');

interface Measurement {
  path: Kind;
  pair: string;
  mbps: number | null;
  retransmits: number | null;
  rttAvgMs: number | null;
  /** Relay process CPU seconds during the iperf run, per Gbit of payload moved. */
  relayCpuSecPerGbit: number | null;
  /** Relay process CPU during the run, in cores (1 = one core busy). */
  relayCpu: number | null;
  /** CPU of the sending and the receiving agent during the run, in cores (who was the bottleneck). */
  senderCpu: number | null;
  receiverCpu: number | null;
  /**
   * Time the sending agent, the receiving agent and the relay spent runnable but waiting for a CPU
   * (/proc/PID/task/TID/schedstat), and the machine's idle time (/proc/stat), in cores: much of
   * both in one run means processes queued behind each other on one CPU while another sat idle.
   */
  senderWait: number | null;
  receiverWait: number | null;
  relayWait: number | null;
  machineIdle: number | null;
  /** Frames the sender pushed into the relay during the run (≈ 0 on the direct path). */
  relayFramesOut: number | null;
  /** Frames dropped during the run: by the relay (full queues) and by the sender's relay client. */
  relayQueueDrops: number | null;
  clientSendDrops: number | null;
  /** Time the relay held the sender back for its per-client rate limit, ms. */
  rateLimitPausedMs: number | null;
  pathsAfter: { ab: PathName; ba: PathName } | null;
  error?: string;
}

const parseOptions = (): BenchOptions => parseBenchOptions('bench-traversal', { seconds: 5, rounds: 3 });

/** The sender's relay client: frames sent and frames it dropped. */
async function relayClientCounts(node: MeshNode): Promise<{ framesOut: number; sendDrops: number }> {
  const st = await node.agent.status();
  return { framesOut: (st.relays ?? []).reduce((s, r) => s + r.framesOut, 0), sendDrops: (st.relays ?? []).reduce((s, r) => s + r.sendDrops, 0) };
}

interface RelayHealth { counters: { drops: { queueOverflow: number; priorityOverflow: number }; rateLimitPausedMs: number } }

/** The relay's own counters (GET /healthz, fetched inside the lab). */
async function relayHealth(mesh: Mesh): Promise<RelayHealth['counters']> {
  const url = mesh.relay.url.replace(/^ws:/, 'http:').replace(/\/relay$/, '/healthz');
  const out = await mesh.relay.host.run(['curl', '-sf', '--max-time', '5', url]);
  return (JSON.parse(out) as RelayHealth).counters;
}

/** Pings until both sides report `want`. */
async function settle(a: MeshNode, b: MeshNode, want: PathName): Promise<void> {
  await waitFor(`${a.spec.name} x ${b.spec.name} on the ${want} path`, async () => {
    await pingSummary(a, b, 1, 0.2, 1);
    const p = await pairPaths(a, b);
    return p.ab === want && p.ba === want;
  }, 20_000, 200);
}

async function measure(path: Kind, [a, b]: [MeshNode, MeshNode], mesh: Mesh, seconds: number): Promise<Measurement> {
  const pair = `${a.spec.name} -> ${b.spec.name}`;
  const empty = { path, pair, mbps: null, retransmits: null, rttAvgMs: null, relayCpuSecPerGbit: null, relayCpu: null, senderCpu: null, receiverCpu: null, senderWait: null, receiverWait: null, relayWait: null, machineIdle: null, relayFramesOut: null, relayQueueDrops: null, clientSendDrops: null, rateLimitPausedMs: null, pathsAfter: null };
  try {
    await settle(a, b, pathOf(path));
    const ping = await pingSummary(a, b, PINGS, 0.05, 1);
    const pid = mesh.relay.proc.pid;
    const [client0, health0] = [await relayClientCounts(a), await relayHealth(mesh)];
    const procs = [a.agent.proc.pid, b.agent.proc.pid, pid];
    const cpu0 = procs.map(processCpuSeconds);
    const [sched0, idle0] = [procs.map(threadSchedNanos), machineIdleSeconds()];
    const t0 = performance.now();
    const r = await iperfTcp(a.host, b.host, b.ip, seconds);
    const [cpuA, cpuB, cpu] = procs.map((p, i) => processCpuSeconds(p) - cpu0[i]!) as [number, number, number];
    const [waitA, waitB, waitRelay] = procs.map((p, i) => schedSecondsBetween(sched0[i]!, threadSchedNanos(p)).wait) as [number, number, number];
    const idle = machineIdleSeconds() - idle0;
    const wall = (performance.now() - t0) / 1000;
    const [client1, health1] = [await relayClientCounts(a), await relayHealth(mesh)];
    const queueDrops = (h: RelayHealth['counters']): number => h.drops.queueOverflow + h.drops.priorityOverflow;
    const pathsAfter = await pairPaths(a, b);
    const m: Measurement = {
      path, pair, mbps: r.mbps, retransmits: r.retransmits, rttAvgMs: ping.avgMs,
      relayCpuSecPerGbit: r.bytes > 0 ? cpu / ((r.bytes * 8) / 1e9) : null, relayCpu: cpu / wall, senderCpu: cpuA / wall, receiverCpu: cpuB / wall,
      senderWait: waitA / wall, receiverWait: waitB / wall, relayWait: waitRelay / wall, machineIdle: idle / wall, relayFramesOut: client1.framesOut - client0.framesOut,
      relayQueueDrops: queueDrops(health1) - queueDrops(health0), clientSendDrops: client1.sendDrops - client0.sendDrops,
      rateLimitPausedMs: health1.rateLimitPausedMs - health0.rateLimitPausedMs, pathsAfter,
    };
    if (pathsAfter.ab !== pathOf(path) || pathsAfter.ba !== pathOf(path)) m.error = `path changed during the run: ${JSON.stringify(pathsAfter)}`;
    return m;
  } catch (err) {
    return { ...empty, error: (err as Error).message };
  }
}


function formatTable(rows: Measurement[]): string {
  const pct = (x: number | null): string => (x === null ? '-' : `${(x * 100).toFixed(0)}%`);
  const head = ['path', 'Mbit/s', 'ping avg ms', 'TCP retrans', 'relay CPU', 'relay CPU s/Gbit', 'relay frames', 'relay drops', 'client drops', 'sender CPU', 'receiver CPU', 'waiting for a CPU (sender, receiver, relay)', 'machine idle'];
  const body = rows.map((r) => [r.path, fmt(r.mbps, 1), fmt(r.rttAvgMs, 3), fmt(r.retransmits, 0),
    pct(r.relayCpu), fmt(r.relayCpuSecPerGbit, 3), fmt(r.relayFramesOut, 0), fmt(r.relayQueueDrops, 0), fmt(r.clientSendDrops, 0),
    pct(r.senderCpu), pct(r.receiverCpu), [r.senderWait, r.receiverWait, r.relayWait].map(pct).join(' '), pct(r.machineIdle)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}

const version = toolVersion;

async function main(): Promise<number> {
  const { seconds, rounds } = parseOptions();
  const startedAt = new Date();
  let lab: Lab | null = null;
  let mesh: Mesh | null = null;
  const extra: MeshNode[] = [];
  const signal = abortOnSignal('bench-traversal', () => { void lab?.destroy(); });

  const perRound: { round: number; order: Kind[]; results: Measurement[] }[] = [];
  try {
    lab = await createLab({ name: 'btrav' });
    mesh = await startMesh(lab, SITES, { relayArgs: ['--rate-limit', '0'] });
    const [home, office] = [mesh.node('home'), mesh.node('office')];
    // the other pairs, on the same two sites, never go direct
    for (const [site, name, env] of [
      [home.site, 'home-relayed', {}], [office.site, 'office-relayed', {}],
      [home.site, 'home-plain', { PINHOLE_RELAY_TRAINS: '0' }], [office.site, 'office-plain', { PINHOLE_RELAY_TRAINS: '0' }],
    ] as const) {
      extra.push(await addMeshNode(mesh, site, name, { env: { PINHOLE_FORCE_RELAY: '1', ...env } }));
    }
    await waitMeshReady(mesh, 60_000);
    const pairs: Record<Kind, [MeshNode, MeshNode]> = { direct: [home, office], relay: [extra[0]!, extra[1]!], 'relay-plain': [extra[2]!, extra[3]!] };
    process.stdout.write(`bench-traversal: ${SITES.map((s) => `${s.name} (${s.nat})`).join(' and ')}, two agents per site; `
      + `iperf3 -t ${seconds} over the direct pair, the relay-forced pair and the relay-forced pair without trains, ${rounds} round(s) in rotating order\n`);
    for (let round = 1; round <= rounds && !signal.aborted; round++) {
      const order: Kind[] = KINDS.map((_, i) => KINDS[(i + round - 1) % KINDS.length]!);
      const results: Measurement[] = [];
      for (const kind of order) {
        const m = await measure(kind, pairs[kind], mesh, seconds);
        process.stdout.write(`  round ${round}: ${kind.padEnd(11)} ${m.error && m.mbps === null ? `error: ${m.error}`
          : `${fmt(m.mbps, 1)} Mbit/s, ping ${fmt(m.rttAvgMs, 3)} ms, relay CPU ${fmt(m.relayCpuSecPerGbit, 3)} s/Gbit${m.error ? ` (${m.error})` : ''}`}\n`);
        results.push(m);
      }
      perRound.push({ round, order, results });
    }
  } finally {
    for (const n of extra) await n.agent.stop().catch(() => undefined);
    await mesh?.stop();
    await lab?.destroy();
  }
  if (signal.aborted) return 130;

  const summary: Measurement[] = KINDS.map((path) => {
    const runs = perRound.map((r) => r.results.find((m) => m.path === path)!);
    const errors = runs.filter((m) => m.error).map((m) => m.error!);
    return {
      path, pair: runs[0]!.pair,
      mbps: median(runs.map((m) => m.mbps)),
      retransmits: median(runs.map((m) => m.retransmits)),
      rttAvgMs: median(runs.map((m) => m.rttAvgMs)),
      relayCpuSecPerGbit: median(runs.map((m) => m.relayCpuSecPerGbit)),
      relayCpu: median(runs.map((m) => m.relayCpu)),
      senderCpu: median(runs.map((m) => m.senderCpu)),
      receiverCpu: median(runs.map((m) => m.receiverCpu)),
      senderWait: median(runs.map((m) => m.senderWait)),
      receiverWait: median(runs.map((m) => m.receiverWait)),
      relayWait: median(runs.map((m) => m.relayWait)),
      machineIdle: median(runs.map((m) => m.machineIdle)),
      relayFramesOut: median(runs.map((m) => m.relayFramesOut)),
      relayQueueDrops: median(runs.map((m) => m.relayQueueDrops)),
      clientSendDrops: median(runs.map((m) => m.clientSendDrops)),
      rateLimitPausedMs: median(runs.map((m) => m.rateLimitPausedMs)),
      pathsAfter: null,
      ...(errors.length ? { error: errors.join('; ') } : {}),
    };
  });
  const [direct, relay, plain] = summary as [Measurement, Measurement, Measurement];
  const ratio = direct.mbps && relay.mbps !== null ? relay.mbps / direct.mbps : null;
  const trainsRatio = plain.mbps && relay.mbps !== null ? relay.mbps / plain.mbps : null;
  const cpuRatio = plain.relayCpuSecPerGbit && relay.relayCpuSecPerGbit !== null ? relay.relayCpuSecPerGbit / plain.relayCpuSecPerGbit : null;
  const barMet = ratio !== null && ratio >= BAR_RELAYED_VS_DIRECT;

  process.stdout.write(`\n${rounds > 1 ? `median of ${rounds} rounds\n` : ''}${formatTable(summary)}\n\n`);
  process.stdout.write(`throughput relayed / direct: ${fmt(ratio, 2)} (bar >= ${BAR_RELAYED_VS_DIRECT}: ${barMet ? 'met' : 'NOT met'})\n`);
  process.stdout.write(`relay CPU per Gbit/s moved: ${fmt(relay.relayCpuSecPerGbit, 3)} CPU-seconds per Gbit (= cores busy at 1 Gbit/s)\n`);
  process.stdout.write(`relay trains vs one message per packet: throughput ${fmt(trainsRatio, 2)}x, relay CPU per Gbit ${fmt(cpuRatio, 2)}x\n`);
  for (const m of [direct, relay]) {
    const waiting = [m.senderWait, m.receiverWait, ...(m.path === 'direct' ? [] : [m.relayWait])];
    const total = waiting.every((w) => w !== null) ? waiting.reduce((x, y) => x! + y!, 0) : null;
    process.stdout.write(`${m.path}: processes on the path runnable but waiting for a CPU ${fmt(total, 2)} cores, while the machine left ${fmt(m.machineIdle, 2)} cores idle\n`);
  }
  for (const m of summary) if (m.error) process.stdout.write(`${m.path}: ${m.error}\n`);

  const report = {
    benchmark: 'traversal',
    startedAt: startedAt.toISOString(),
    machine: { nproc: availableParallelism(), node: process.version, kernel: version(['uname', '-r'], /(.+)/), iperf3: version(['iperf3', '--version'], /iperf (\S+)/) },
    settings: {
      seconds, rounds, pings: PINGS, sites: SITES,
      topology: 'two NATed sites with three agents each on the lab internet; relay (--rate-limit 0) and coordinator public hosts; the second pair runs with PINHOLE_FORCE_RELAY=1, the third also with PINHOLE_RELAY_TRAINS=0',
      relayCpu: 'utime+stime of the pinhole relay process from /proc/PID/stat over each iperf3 run, per Gbit of TCP payload received',
      waiting: 'time each process spent runnable but not running (/proc/PID/task/TID/schedstat, second field), and the machine idle time (/proc/stat idle+iowait), over each iperf3 run, in cores',
    },
    rounds: perRound,
    summary,
    ratios: { throughputRelayedVsDirect: ratio, bar: BAR_RELAYED_VS_DIRECT, barMet, trainsVsPlainThroughput: trainsRatio, trainsVsPlainRelayCpuPerGbit: cpuRatio },
    relayCpuSecPerGbit: relay.relayCpuSecPerGbit,
  };
  const file = await writeBenchReport('traversal-bench', startedAt, report);
  process.stdout.write(`\nwrote ${file}\n`);
  return summary.some((m) => m.error) ? 1 : 0;
}

runBench('bench-traversal', main);
