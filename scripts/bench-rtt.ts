// Where a ping's round trip goes: pings through pinhole's static pair, a managed pair with an
// access policy and wireguard-go (one veth between two namespaces, as in bench-tunnel), each
// split into hops by packet captures on A's tunnel, A's underlay and B's tunnel
// (scripts/tunnels/rtt-hops.ts): A's send, B's receive, B's kernel, B's send, A's receive.
// Medians and 90th percentiles per hop, per path, medians over rounds (alternating order);
// ratios against wireguard-go from the same run. Beside them, per ping, how long each end's
// process ran and how long it waited runnable for a CPU (/proc/PID/task/TID/schedstat, all its
// threads, over the whole ping window divided by the pings: what waking for each ping costs on
// this machine, with whatever else the process did meanwhile). JSON to bench/results/.
//
//   node dist/scripts/bench-rtt.js [--seconds 10] [--rounds 2]   (pings every 50 ms for --seconds)
import { createLab, type Host, type Lab } from './natlab/index.js';
import { runId } from './tunnels/keys.js';
import { createNebulaCa, type NebulaCa } from './tunnels/nebula.js';
import { UNDERLAY, startPath, vethPair, waitReachable, type PathName } from './tunnels/bench-paths.js';
import { HOPS, quantile, splitRoundTrips, type Hop, type PingHops } from './tunnels/rtt-hops.js';
import { fmt, median, parseBenchOptions, ratio, toolVersion, abortOnSignal, writeBenchReport, runBench } from './bench-options.js';
import { schedSecondsBetween, threadSchedNanos } from './traversal/throughput.js';

const PATHS: PathName[] = ['pinhole', 'managed+policy', 'wireguard-go'];
const PING_INTERVAL_S = 0.05;

/** Per path and round: the round trip (as ping printed it and as captured) and each hop, in µs. */
interface RoundResult {
  path: PathName;
  pings: number;
  /** Pings whose every hop was captured. */
  split: number;
  pingAvgUs: number | null;
  totalUs: { p50: number | null; p90: number | null; mean: number | null };
  hops: Record<Hop, { p50: number | null; p90: number | null }>;
  /** Per ping, µs: A's and B's tunnel process on a CPU, and runnable but waiting for one (all threads). */
  sched: { aRunUs: number | null; aWaitUs: number | null; bRunUs: number | null; bWaitUs: number | null };
  error?: string;
}

const NO_SCHED: RoundResult['sched'] = { aRunUs: null, aWaitUs: null, bRunUs: null, bWaitUs: null };

const mean = (xs: readonly number[]): number | null => (xs.length ? xs.reduce((s, x) => s + x, 0) / xs.length : null);

function capture(host: Host, iface: string, filter: string) {
  return host.spawn(['tcpdump', '-i', iface, '-n', '-l', '-tt', '--time-stamp-precision=nano', filter]);
}

async function measure(path: PathName, a: Host, b: Host, ca: NebulaCa, pings: number): Promise<RoundResult> {
  const empty = { path, pings: 0, split: 0, pingAvgUs: null, totalUs: { p50: null, p90: null, mean: null },
    hops: Object.fromEntries(HOPS.map((h) => [h, { p50: null, p90: null }])) as RoundResult['hops'], sched: NO_SCHED };
  const running = await startPath(path, a, b, ca, runId());
  try {
    const t = running.tunnel;
    if (!t) throw new Error(`${path} has no tunnel to capture on`);
    await waitReachable(a, running.serverIp);
    // Data messages only (type 4, longer than a keepalive), both ways, on A's underlay.
    const caps = [
      capture(a, t.tunA, 'icmp'),
      capture(a, 'eth0', `udp port ${t.port} and udp[8:4] = 0x04000000 and udp[4:2] > 40`),
      capture(b, t.tunB, 'icmp'),
    ];
    try {
      await Promise.all(caps.map((c) => c.waitForOutput(/listening on/, 10_000)));
      const pids = running.pids;
      const sched0 = pids?.map(threadSchedNanos);
      const r = await a.exec(['ping', '-n', '-c', String(pings), '-i', String(PING_INTERVAL_S), '-W', '1', running.serverIp], { timeoutMs: pings * 1000 + 30_000 });
      const [sa, sb] = pids && sched0 ? pids.map((pid, i) => schedSecondsBetween(sched0[i]!, threadSchedNanos(pid))) : [null, null];
      const perPing = (x: number | undefined): number | null => (x === undefined ? null : (x * 1e6) / pings);
      const sched = { aRunUs: perPing(sa?.run), aWaitUs: perPing(sa?.wait), bRunUs: perPing(sb?.run), bWaitUs: perPing(sb?.wait) };
      const avg = r.stdout.match(/= [\d.]+\/([\d.]+)\//);
      await new Promise((res) => setTimeout(res, 300));
      for (const c of caps) await c.kill('SIGINT', 2000);
      const rows: PingHops[] = splitRoundTrips(caps[0]!.stdout, caps[1]!.stdout, caps[2]!.stdout, UNDERLAY.a);
      const replies = (r.stdout.match(/time=/g) ?? []).length;
      return {
        path, pings: replies, split: rows.length, pingAvgUs: avg ? Number(avg[1]) * 1000 : null,
        totalUs: { p50: quantile(rows.map((x) => x.totalUs), 0.5), p90: quantile(rows.map((x) => x.totalUs), 0.9), mean: mean(rows.map((x) => x.totalUs)) },
        hops: Object.fromEntries(HOPS.map((h) => [h, { p50: quantile(rows.map((x) => x[h]), 0.5), p90: quantile(rows.map((x) => x[h]), 0.9) }])) as RoundResult['hops'],
        sched,
      };
    } finally {
      for (const c of caps) if (c.running) await c.kill('SIGKILL', 1000);
    }
  } catch (err) {
    return { ...empty, error: (err as Error).message };
  } finally {
    await running.stop();
  }
}

function summarize(runs: RoundResult[]): RoundResult {
  const m = (f: (r: RoundResult) => number | null) => median(runs.map(f));
  const errors = runs.filter((r) => r.error).map((r) => r.error!);
  return {
    path: runs[0]!.path, pings: m((r) => r.pings) ?? 0, split: m((r) => r.split) ?? 0, pingAvgUs: m((r) => r.pingAvgUs),
    totalUs: { p50: m((r) => r.totalUs.p50), p90: m((r) => r.totalUs.p90), mean: m((r) => r.totalUs.mean) },
    hops: Object.fromEntries(HOPS.map((h) => [h, { p50: m((r) => r.hops[h].p50), p90: m((r) => r.hops[h].p90) }])) as RoundResult['hops'],
    sched: {
      aRunUs: m((r) => r.sched.aRunUs), aWaitUs: m((r) => r.sched.aWaitUs), bRunUs: m((r) => r.sched.bRunUs), bWaitUs: m((r) => r.sched.bWaitUs),
    },
    ...(errors.length ? { error: errors.join('; ') } : {}),
  };
}

function formatTable(rows: RoundResult[]): string {
  const cols = ['ping avg', 'p50', 'p90', ...HOPS];
  const lines = [`${'µs (p50 / p90)'.padEnd(16)}${cols.map((c) => c.padStart(12)).join('')}   split`];
  for (const r of rows) {
    const cells = [fmt(r.pingAvgUs, 0), fmt(r.totalUs.p50, 0), fmt(r.totalUs.p90, 0), ...HOPS.map((h) => `${fmt(r.hops[h].p50, 0)}/${fmt(r.hops[h].p90, 0)}`)];
    lines.push(`${r.path.padEnd(16)}${cells.map((c) => c.padStart(12)).join('')}   ${r.split}/${r.pings}${r.error ? `   error: ${r.error}` : ''}`);
  }
  lines.push('', `${'per ping, µs'.padEnd(16)}${['A runs', 'A waits', 'B runs', 'B waits'].map((c) => c.padStart(12)).join('')}`);
  for (const r of rows) {
    const x = r.sched;
    lines.push(`${r.path.padEnd(16)}${[x.aRunUs, x.aWaitUs, x.bRunUs, x.bWaitUs].map((v) => fmt(v, 0).padStart(12)).join('')}`);
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { seconds, rounds } = parseBenchOptions('bench-rtt', { seconds: 10, rounds: 2 });
  const pings = Math.round(seconds / PING_INTERVAL_S);
  const startedAt = new Date();
  let lab: Lab | null = null;
  let ca: NebulaCa | null = null;
  const signal = abortOnSignal('bench-rtt', () => { void lab?.destroy(); });
  const perRound: { round: number; results: RoundResult[] }[] = [];
  try {
    lab = await createLab({ name: 'rtt' });
    ca = await createNebulaCa('pinhole-bench-rtt');
    const { a, b } = await vethPair(lab);
    process.stdout.write(`bench-rtt: ${PATHS.join(', ')}; ${pings} pings every ${PING_INTERVAL_S} s per path, ${rounds} round(s)\n`);
    for (let round = 1; round <= rounds && !signal.aborted; round++) {
      const order = round % 2 === 1 ? [...PATHS] : [...PATHS].reverse();
      const results: RoundResult[] = [];
      for (const path of order) {
        const r = await measure(path, a, b, ca, pings);
        if (signal.aborted) break; // the lab is gone: this path's figures are cut short
        process.stdout.write(`  round ${round}: ${path.padEnd(15)} ${r.error ? `error: ${r.error}` : `ping avg ${fmt(r.pingAvgUs, 0)} µs, p50 ${fmt(r.totalUs.p50, 0)}, p90 ${fmt(r.totalUs.p90, 0)} (${r.split}/${r.pings} split)`}\n`);
        results.push(r);
      }
      perRound.push({ round, results });
    }
  } catch (err) {
    if (signal.aborted) return 130;
    throw err;
  } finally {
    await lab?.destroy();
    await ca?.remove();
  }
  if (signal.aborted) return 130;
  const summary = PATHS.map((p) => summarize(perRound.map((r) => r.results.find((x) => x.path === p)!)));
  const wg = summary.find((r) => r.path === 'wireguard-go')!;
  const ratios = Object.fromEntries(summary.filter((r) => r !== wg).map((r) => [r.path, {
    pingAvg: ratio(r.pingAvgUs, wg.pingAvgUs), p50: ratio(r.totalUs.p50, wg.totalUs.p50), p90: ratio(r.totalUs.p90, wg.totalUs.p90),
    ...Object.fromEntries(HOPS.map((h) => [`${h}P50`, ratio(r.hops[h].p50, wg.hops[h].p50)])),
  }]));
  process.stdout.write(`\n${rounds > 1 ? `median of ${rounds} rounds\n` : ''}${formatTable(summary)}\n\n`);
  for (const [p, x] of Object.entries(ratios)) {
    process.stdout.write(`${p} / wireguard-go: ping avg ${fmt(x.pingAvg, 2)}, p50 ${fmt(x.p50, 2)}, p90 ${fmt(x.p90, 2)}\n`);
  }
  const report = {
    benchmark: 'rtt', startedAt: startedAt.toISOString(),
    machine: { node: process.version, kernel: toolVersion(['uname', '-r'], /(.+)/), wireguardGo: toolVersion(['wireguard-go', '--version'], /wireguard-go (\S+)/) },
    settings: {
      seconds, rounds, pings, pingIntervalS: PING_INTERVAL_S, hops: HOPS, topology: 'two namespaces, one veth pair',
      sched: 'per ping: run and runnable-wait time of each end\'s tunnel process (schedstat, all threads) over the ping window, divided by the pings sent',
    },
    rounds: perRound, summary, ratios,
  };
  const file = await writeBenchReport('rtt', startedAt, report);
  process.stdout.write(`\nwrote ${file}\n`);
  return summary.some((r) => r.error) ? 1 : 0;
}

runBench('bench-rtt', main);
