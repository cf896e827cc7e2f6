// Tunnel benchmark: iperf3 TCP throughput and ping RTT between two namespaces joined by one veth,
// over the raw veth, pinhole's static tunnel, a managed pinhole pair (coordinator on the veth)
// without and with an access policy, wireguard-go and Nebula — each set up, measured and
// torn down on its own, in alternating order per round. Prints ratios against the references
// measured in the same run and writes JSON to bench/results/.
//
//   node dist/scripts/bench-tunnel.js [--seconds 8] [--rounds 1]
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { createLab, type Host, type Lab } from './natlab/index.js';
import { NamespaceHost } from './natlab/host.js';
import { addAddress, createVethPair } from './natlab/namespace.js';
import { newKeyPair, runId } from './tunnels/keys.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { startStaticAgent } from './tunnels/pinhole-static.js';
import { startCoordinator } from './tunnels/pinhole-coordinator.js';
import { startManagedAgent } from './tunnels/pinhole-managed.js';
import { waitFor } from './tunnels/wait-for.js';
import { startWireguardGo } from './tunnels/wireguard-go.js';
import { createNebulaCa, startNebula, type NebulaCa } from './tunnels/nebula.js';
import { fmt, median, parseBenchOptions, ratio, toolVersion, type BenchOptions } from './bench-options.js';

const MTU = 1420; // the same inner MTU for every tunnel (wireguard-go's default; Nebula's is 1300)
const PINGS = 50;
const PING_INTERVAL_S = 0.05;
const IPERF_PORT = 5201;
const UNDERLAY = { a: '198.18.0.1', b: '198.18.0.2' };

// 'pinhole js' is the same agent with PINHOLE_FASTPATH=0: every packet through JavaScript, for
// the native data path's share of the result (docs/protocol.md, Latency).
// 'managed' / 'managed+policy': two `pinhole agent --state-dir` joined through a coordinator,
// without and with an access policy that allows everything between them (a policy installs the
// stateful packet filter on both nodes: the configuration people run).
// 'pinhole no-offload' is the static pair with PINHOLE_TUN_OFFLOAD=0: no TSO/USO from the kernel,
// no GRO to it (one packet per TUN read and write).
type PathName = 'raw veth' | 'pinhole' | 'pinhole no-offload' | 'pinhole js' | 'managed' | 'managed+policy' | 'wireguard-go' | 'nebula';
const PATHS: PathName[] = ['raw veth', 'pinhole', 'pinhole no-offload', 'pinhole js', 'managed', 'managed+policy', 'wireguard-go', 'nebula'];
const ALLOW_ALL_POLICY = { acls: [{ action: 'accept', src: ['*'], dst: ['*:*'] }] };

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

/** A running path between the two hosts: where the iperf3 server binds and how to take it down. */
interface RunningPath {
  serverIp: string;
  stop(): Promise<void>;
  /** pinhole paths: each agent's `dataPath` (native / JS split, filter flows, offloads) after the run. */
  dataPaths?(): Promise<unknown[]>;
}

class BenchAbortedError extends Error {
  override readonly name = 'BenchAbortedError';
}

const parseOptions = (): BenchOptions => parseBenchOptions('bench-tunnel', { seconds: 8, rounds: 1 });

/** Two namespaces of the lab joined by a single veth pair and nothing else. */
async function vethPair(lab: Lab): Promise<{ a: Host; b: Host }> {
  const make = async (side: 'a' | 'b') => {
    const suffix = `bench-${side}`;
    const ns = lab.reserveNamespace(suffix);
    await lab.newNamespace(suffix, false);
    return new NamespaceHost(side, 'public', ns, [UNDERLAY[side]], lab);
  };
  const a = await make('a');
  const b = await make('b');
  await createVethPair(a.ns, 'eth0', b.ns, 'eth0');
  await addAddress(a.ns, 'eth0', `${UNDERLAY.a}/24`);
  await addAddress(b.ns, 'eth0', `${UNDERLAY.b}/24`);
  return { a, b };
}

/** Starts one path; every process it starts lives in a or b, so lab.destroy() also ends them. */
async function startPath(path: PathName, a: Host, b: Host, ca: NebulaCa, id: string): Promise<RunningPath> {
  if (path === 'raw veth') return { serverIp: UNDERLAY.b, stop: async () => {} };
  if (path === 'pinhole' || path === 'pinhole js' || path === 'pinhole no-offload') {
    const env: Record<string, string> | undefined = path === 'pinhole js' ? { PINHOLE_FASTPATH: '0' } : path === 'pinhole no-offload' ? { PINHOLE_TUN_OFFLOAD: '0' } : undefined;
    const [ka, kb] = [newKeyPair(), newKeyPair()];
    const pa = await startStaticAgent(a, { env, tun: `ph${id}a`, privateKey: ka.privateKey, addresses: ['100.64.1.1/24'], listenPort: 51820, mtu: MTU,
      peers: [{ publicKey: kb.publicKey, allowedIps: ['100.64.1.2/32'], endpoint: `${UNDERLAY.b}:51820` }] });
    const pb = await startStaticAgent(b, { env, tun: `ph${id}b`, privateKey: kb.privateKey, addresses: ['100.64.1.2/24'], listenPort: 51820, mtu: MTU,
      peers: [{ publicKey: ka.publicKey, allowedIps: ['100.64.1.1/32'], endpoint: `${UNDERLAY.a}:51820` }] }).catch(async (e) => { await pa.stop(); throw e; });
    return {
      serverIp: '100.64.1.2', stop: async () => { await Promise.all([pa.stop(), pb.stop()]); },
      dataPaths: async () => Promise.all([pa, pb].map(async (x) => (await x.status()).dataPath)),
    };
  }
  if (path === 'managed' || path === 'managed+policy') {
    const coord = await startCoordinator(a, { port: 8090 });
    const agents: Awaited<ReturnType<typeof startManagedAgent>>[] = [];
    const stop = async (): Promise<void> => {
      for (const ag of agents) await ag.stop().catch(() => undefined);
      await coord.stop();
    };
    try {
      if (path === 'managed+policy') {
        const set = await coord.request('PUT', '/api/v1/admin/policy', ALLOW_ALL_POLICY, true);
        if (set.status !== 200) throw new Error(`policy set: HTTP ${set.status}`);
      }
      const key = await coord.createAuthKey({ reusable: true });
      for (const [h, side] of [[a, 'a'], [b, 'b']] as const) {
        const ag = await startManagedAgent(h, { tun: `pm${id}${side}`.slice(0, 15), port: 51822, env: { PINHOLE_LOG_LEVEL: 'warn' } });
        agents.push(ag);
        const up = await ag.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', `bench-${side}`, '--accept-dns=false']);
        if (up.code !== 0) throw new Error(`up: ${up.stderr.trim()}`);
      }
      const serverIp = (await agents[1]!.status()).self!.ipv4!;
      await waitFor('the managed pair to see each other', async () => (await agents[0]!.status()).peers.some((p) => p.overlayIp === serverIp), 20_000);
      if (path === 'managed+policy') {
        await waitFor('both filters installed', async () => {
          for (const ag of agents) if (!(await ag.status()).routing?.filter) return false;
          return true;
        }, 20_000);
      }
      return { serverIp, stop, dataPaths: async () => Promise.all(agents.map(async (x) => (await x.status()).dataPath)) };
    } catch (err) {
      await stop();
      throw err;
    }
  }
  if (path === 'wireguard-go') {
    const [ka, kb] = [newKeyPair(), newKeyPair()];
    const wa = await startWireguardGo(a, { iface: `wg${id}a`, privateKey: ka.privateKey, address: '100.64.2.1/24', listenPort: 51821, mtu: MTU,
      peer: { publicKey: kb.publicKey, allowedIps: ['100.64.2.2/32'], endpoint: `${UNDERLAY.b}:51821` } });
    const wb = await startWireguardGo(b, { iface: `wg${id}b`, privateKey: kb.privateKey, address: '100.64.2.2/24', listenPort: 51821, mtu: MTU,
      peer: { publicKey: ka.publicKey, allowedIps: ['100.64.2.1/32'], endpoint: `${UNDERLAY.a}:51821` } }).catch(async (e) => { await wa.stop(); throw e; });
    return { serverIp: '100.64.2.2', stop: async () => { await Promise.all([wa.stop(), wb.stop()]); } };
  }
  const na = await startNebula(a, ca, { dev: `nb${id}a`, name: 'a', ip: '100.65.0.1/24', listenPort: 4242, mtu: MTU,
    staticHosts: { '100.65.0.2': `${UNDERLAY.b}:4242` } });
  const nb = await startNebula(b, ca, { dev: `nb${id}b`, name: 'b', ip: '100.65.0.2/24', listenPort: 4242, mtu: MTU,
    staticHosts: { '100.65.0.1': `${UNDERLAY.a}:4242` } }).catch(async (e) => { await na.stop(); throw e; });
  return { serverIp: '100.65.0.2', stop: async () => { await Promise.all([na.stop(), nb.stop()]); } };
}

/** Pings until one reply comes back (the first packet of a tunnel triggers its handshake). */
async function waitReachable(from: Host, ip: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await from.exec(['ping', '-n', '-c', '1', '-W', '1', ip], { timeoutMs: 5000 })).code !== 0) {
    if (Date.now() > deadline) throw new Error(`${ip} not reachable from ${from.name} within ${timeoutMs} ms`);
  }
}

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
  let aborted = false;
  let lab: Lab | null = null;
  let ca: NebulaCa | null = null;
  // On a signal, destroying the lab kills every process in it, so whatever is in flight fails at
  // once and unwinds through the finally blocks that remove temp dirs; natlab's own handler also runs.
  const onSignal = (sig: NodeJS.Signals) => {
    if (aborted) return;
    aborted = true;
    process.stderr.write(`\nbench-tunnel: ${sig}, tearing down\n`);
    void lab?.destroy();
    setTimeout(() => process.exit(130), 15_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

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
        const m = await measure(path, hosts, ca, seconds, () => aborted);
        process.stdout.write(`  round ${round}: ${path.padEnd(13)} ${m.error ? `error: ${m.error}` : `${fmt(m.mbps, 1)} Mbit/s, ping ${fmt(m.rttAvgMs, 3)} ms`}\n`);
        results.push(m);
      }
      perRound.push({ round, order, results });
    }
  } catch (err) {
    if (aborted) return 130;
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
  const dir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `tunnel-${startedAt.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\nwrote ${file}\n`);
  return summary.some((m) => m.error) ? 1 : 0;
}

main().then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`bench-tunnel: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
