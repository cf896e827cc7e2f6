// Tunnel benchmark: iperf3 TCP throughput and ping RTT between two namespaces joined by one veth,
// over the raw veth, pinhole's static tunnel, a managed pinhole pair (coordinator on the veth)
// without and with an access policy, wireguard-go and Nebula — each set up, measured and
// torn down on its own, in alternating order per round. Prints ratios against the references
// measured in the same run and writes JSON to bench/results/.
//
//   node dist/scripts/bench-tunnel.js [--seconds 8] [--rounds 1]
import { availableParallelism } from 'node:os';
import { createLab, type Host, type Lab } from './natlab/index.js';
import { runId } from './tunnels/keys.js';
import { createNebulaCa, type NebulaCa } from './tunnels/nebula.js';
import { MTU, PATHS, startPath, vethPair, waitReachable, type PathName, type RunningPath } from './tunnels/bench-paths.js';
import { fmt, median, parseBenchOptions, ratio, toolVersion, type BenchOptions, abortOnSignal, writeBenchReport, runBench } from './bench-options.js';

const PINGS = 50;
const PING_INTERVAL_S = 0.05;
const IPERF_PORT = 5201;

interface Measurement {
  path: PathName; mbps: number | null; rttAvgMs: number | null; pingLossPct: number | null;
  /** TCP retransmissions the iperf3 sender counted (loss or reordering inside the path). */
  retransmits: number | null;
  /** The same per GB the receiver got (paths move different amounts in the same time). */
  retransmitsPerGB: number | null;
  /** pinhole paths: where the packets went in each agent (status --json dataPath), sender first. */
  dataPaths?: unknown[];
  error?: string;
}

class BenchAbortedError extends Error {
  override readonly name = 'BenchAbortedError';
}

const parseOptions = (): BenchOptions => parseBenchOptions('bench-tunnel', { seconds: 8, rounds: 1 });

async function pingRtt(from: Host, ip: string): Promise<{ avgMs: number | null; lossPct: number }> {
  const r = await from.exec(['ping', '-n', '-q', '-c', String(PINGS), '-i', String(PING_INTERVAL_S), '-W', '1', ip], { timeoutMs: 30_000 });
  const avg = r.stdout.match(/= [\d.]+\/([\d.]+)\//);
  const loss = r.stdout.match(/([\d.]+)% packet loss/);
  return { avgMs: avg ? Number(avg[1]) : null, lossPct: loss ? Number(loss[1]) : 100 };
}

/** TCP throughput a → b in Mbit/s, as iperf3's receiver counted it, and the sender's retransmissions. */
async function iperf(a: Host, b: Host, ip: string, seconds: number): Promise<{ mbps: number; retransmits: number | null }> {
  const server = b.spawn(['iperf3', '-s', '-1', '-B', ip, '-p', String(IPERF_PORT), '--forceflush']);
  try {
    await server.waitForOutput(/Server listening/, 10_000);
    const r = await a.exec(['iperf3', '-c', ip, '-p', String(IPERF_PORT), '-t', String(seconds), '-J', '--connect-timeout', '5000'],
      { timeoutMs: (seconds + 30) * 1000 });
    let report: { error?: string; end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } } };
    try { report = JSON.parse(r.stdout); } catch { throw new Error(`iperf3 printed no JSON (exit ${r.code}): ${r.stderr.trim()}`); }
    const bps = report.end?.sum_received?.bits_per_second;
    if (report.error || bps === undefined) throw new Error(`iperf3: ${report.error ?? 'no sum_received in report'}`);
    return { mbps: bps / 1e6, retransmits: report.end?.sum_sent?.retransmits ?? null };
  } finally {
    await server.kill('SIGTERM', 2000);
  }
}

async function measure(path: PathName, hosts: { a: Host; b: Host }, ca: NebulaCa, seconds: number, isAborted: () => boolean): Promise<Measurement> {
  const { a, b } = hosts;
  let running: RunningPath | null = null;
  try {
    running = await startPath(path, a, b, ca, runId());
    if (isAborted()) throw new BenchAbortedError();
    await waitReachable(a, running.serverIp);
    const ping = await pingRtt(a, running.serverIp);
    if (isAborted()) throw new BenchAbortedError();
    const tcp = await iperf(a, b, running.serverIp, seconds);
    const gb = (tcp.mbps * seconds) / 8 / 1000;
    const dataPaths = await running.dataPaths?.().catch(() => undefined);
    return {
      path, ...tcp, retransmitsPerGB: tcp.retransmits === null || gb <= 0 ? null : tcp.retransmits / gb, rttAvgMs: ping.avgMs, pingLossPct: ping.lossPct,
      ...(dataPaths ? { dataPaths } : {}),
    };
  } catch (err) {
    if (err instanceof BenchAbortedError || isAborted()) throw new BenchAbortedError('interrupted');
    return { path, mbps: null, rttAvgMs: null, pingLossPct: null, retransmits: null, retransmitsPerGB: null, error: (err as Error).message };
  } finally {
    await running?.stop();
  }
}


function formatTable(rows: Measurement[]): string {
  const wg = rows.find((r) => r.path === 'wireguard-go');
  const lines = [`${'path'.padEnd(14)}${'Mbit/s'.padStart(10)}${'ping avg ms'.padStart(13)}${'vs wireguard-go'.padStart(17)}${'TCP retrans'.padStart(13)}${'retrans/GB'.padStart(12)}`];
  for (const r of rows) {
    const vs = ratio(r.mbps, wg?.mbps ?? null);
    lines.push(`${r.path.padEnd(14)}${fmt(r.mbps, 1).padStart(10)}${fmt(r.rttAvgMs, 3).padStart(13)}${(vs === null ? '-' : `${vs.toFixed(2)}x`).padStart(17)}`
      + fmt(r.retransmits, 0).padStart(13) + fmt(r.retransmitsPerGB, 0).padStart(12)
      + (r.error ? `   error: ${r.error}` : ''));
  }
  return lines.join('\n');
}

const version = toolVersion;

async function main(): Promise<number> {
  const { seconds, rounds } = parseOptions();
  const startedAt = new Date();
  let lab: Lab | null = null;
  let ca: NebulaCa | null = null;
  const signal = abortOnSignal('bench-tunnel', () => { void lab?.destroy(); });

  const perRound: { round: number; order: PathName[]; results: Measurement[] }[] = [];
  try {
    lab = await createLab({ name: 'bench' });
    ca = await createNebulaCa('pinhole-bench');
    const hosts = await vethPair(lab);
    process.stdout.write(`bench-tunnel: ${PATHS.join(', ')} between ${hosts.a.ns} and ${hosts.b.ns} (one veth), iperf3 -t ${seconds}, `
      + `${PINGS} pings every ${PING_INTERVAL_S} s, ${rounds} round(s)\n`);
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [...PATHS] : [...PATHS].reverse();
      const results: Measurement[] = [];
      for (const path of order) {
        const m = await measure(path, hosts, ca, seconds, () => signal.aborted);
        process.stdout.write(`  round ${round}: ${path.padEnd(13)} ${m.error ? `error: ${m.error}` : `${fmt(m.mbps, 1)} Mbit/s, ping ${fmt(m.rttAvgMs, 3)} ms`}\n`);
        results.push(m);
      }
      perRound.push({ round, order, results });
    }
  } catch (err) {
    if (signal.aborted) return 130;
    throw err;
  } finally {
    await lab?.destroy();
    await ca?.remove();
  }

  const summary: Measurement[] = PATHS.map((path) => {
    const runs = perRound.map((r) => r.results.find((m) => m.path === path)!);
    const errors = runs.filter((m) => m.error).map((m) => m.error!);
    return {
      path,
      mbps: median(runs.map((m) => m.mbps)),
      rttAvgMs: median(runs.map((m) => m.rttAvgMs)),
      pingLossPct: median(runs.map((m) => m.pingLossPct)),
      retransmits: median(runs.map((m) => m.retransmits)),
      retransmitsPerGB: median(runs.map((m) => m.retransmitsPerGB)),
      ...(errors.length ? { error: errors.join('; ') } : {}),
    };
  });
  const get = (p: PathName) => summary.find((m) => m.path === p)!;
  const ratios = {
    throughputPinholeVsWireguardGo: ratio(get('pinhole').mbps, get('wireguard-go').mbps),
    throughputPinholeVsNebula: ratio(get('pinhole').mbps, get('nebula').mbps),
    rttPinholeVsWireguardGo: ratio(get('pinhole').rttAvgMs, get('wireguard-go').rttAvgMs),
    rttPinholeJsVsWireguardGo: ratio(get('pinhole js').rttAvgMs, get('wireguard-go').rttAvgMs),
    throughputPinholeJsVsWireguardGo: ratio(get('pinhole js').mbps, get('wireguard-go').mbps),
    throughputOffloadOnVsOff: ratio(get('pinhole').mbps, get('pinhole no-offload').mbps),
    rttOffloadOnVsOff: ratio(get('pinhole').rttAvgMs, get('pinhole no-offload').rttAvgMs),
    throughputManagedPolicyVsWireguardGo: ratio(get('managed+policy').mbps, get('wireguard-go').mbps),
    rttManagedPolicyVsWireguardGo: ratio(get('managed+policy').rttAvgMs, get('wireguard-go').rttAvgMs),
    throughputManagedPolicyVsManaged: ratio(get('managed+policy').mbps, get('managed').mbps),
    retransmitsPerGBPinholeVsUnderlay: ratio(get('pinhole').retransmitsPerGB, get('raw veth').retransmitsPerGB),
    retransmitsPerGBWireguardGoVsUnderlay: ratio(get('wireguard-go').retransmitsPerGB, get('raw veth').retransmitsPerGB),
  };

  process.stdout.write(`\n${rounds > 1 ? `median of ${rounds} rounds\n` : ''}${formatTable(summary)}\n\n`);
  process.stdout.write(`throughput pinhole / wireguard-go: ${fmt(ratios.throughputPinholeVsWireguardGo, 2)}\n`);
  process.stdout.write(`throughput pinhole / nebula:       ${fmt(ratios.throughputPinholeVsNebula, 2)}\n`);
  process.stdout.write(`ping RTT   pinhole / wireguard-go: ${fmt(ratios.rttPinholeVsWireguardGo, 2)}\n`);
  process.stdout.write(`with every packet in JS (PINHOLE_FASTPATH=0): throughput ${fmt(ratios.throughputPinholeJsVsWireguardGo, 2)}, `
    + `ping RTT ${fmt(ratios.rttPinholeJsVsWireguardGo, 2)} × wireguard-go\n`);
  process.stdout.write(`TUN offloads on / off (PINHOLE_TUN_OFFLOAD=0): throughput ${fmt(ratios.throughputOffloadOnVsOff, 2)}, ping RTT ${fmt(ratios.rttOffloadOnVsOff, 2)}\n`);
  process.stdout.write(`managed with a policy / wireguard-go: throughput ${fmt(ratios.throughputManagedPolicyVsWireguardGo, 2)} (bar >= 5.0), `
    + `ping RTT ${fmt(ratios.rttManagedPolicyVsWireguardGo, 2)} (bar <= 0.6); with / without the policy ${fmt(ratios.throughputManagedPolicyVsManaged, 2)} (bar >= 0.9)\n`);
  process.stdout.write(`TCP retransmits per GB vs the underlay: pinhole ${fmt(ratios.retransmitsPerGBPinholeVsUnderlay, 2)}, wireguard-go ${fmt(ratios.retransmitsPerGBWireguardGoVsUnderlay, 2)}\n`);

  const report = {
    benchmark: 'tunnel',
    startedAt: startedAt.toISOString(),
    machine: {
      nproc: availableParallelism(),
      node: process.version,
      kernel: version(['uname', '-r'], /(.+)/),
      wireguardGo: version(['wireguard-go', '--version'], /wireguard-go (\S+)/),
      nebula: version(['nebula', '-version'], /Version: (\S+)/),
      iperf3: version(['iperf3', '--version'], /iperf (\S+)/),
    },
    settings: { seconds, rounds, pings: PINGS, pingIntervalS: PING_INTERVAL_S, mtu: MTU, topology: 'two namespaces, one veth pair' },
    rounds: perRound,
    summary,
    ratios,
  };
  const file = await writeBenchReport('tunnel', startedAt, report);
  process.stdout.write(`\nwrote ${file}\n`);
  return summary.some((m) => m.error) ? 1 : 0;
}

runBench('bench-tunnel', main);
