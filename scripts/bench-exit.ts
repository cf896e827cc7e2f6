// Exit node benchmark: iperf3 TCP throughput from a client to a server on the lab internet,
//   1. "pinhole tunnel"     client → exit node's overlay address (the direct tunnel, no NAT),
//   2. "pinhole exit NAT"   client → server through the exit node's userspace NAT (--exit-node),
//   3. "wireguard-go+masq"  client → server through wireguard-go, the exit forwarding in the
//                           kernel with an nftables masquerade (the classic way),
// all on the same three namespaces in one run. Prints ratios (the bar: exit NAT ≥ 0.5 of the
// tunnel) and writes bench/results/exit-*.json.
//
//   node dist/scripts/bench-exit.js [--seconds 5] [--rounds 1]
import { availableParallelism } from 'node:os';
import { createLab, type Host, type Lab } from './natlab/index.js';
import { newKeyPair, runId } from './tunnels/keys.js';
import { startCoordinator, type LabCoordinator } from './tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from './tunnels/pinhole-managed.js';
import { startWireguardGo, type WireguardGo } from './tunnels/wireguard-go.js';
import { fmt, median, parseBenchOptions, ratio, toolVersion, type BenchOptions, writeBenchReport, runBench } from './bench-options.js';
import { iperfTcp } from './traversal/throughput.js';

const IPERF_PORT = 5201;
const MTU = 1420;

type PathName = 'pinhole tunnel' | 'pinhole exit NAT' | 'wireguard-go+masq';

interface Measurement { path: PathName; round: number; mbps: number | null; retransmits: number | null; error?: string }

const parseOptions = (): BenchOptions => parseBenchOptions('bench-exit', { seconds: 5, rounds: 1 });

const iperf = (client: Host, server: Host, ip: string, seconds: number) => iperfTcp(client, server, ip, seconds, IPERF_PORT);

async function measure(path: PathName, round: number, run: () => Promise<{ mbps: number; retransmits: number | null }>): Promise<Measurement> {
  try {
    const r = await run();
    process.stdout.write(`  round ${round}: ${path.padEnd(18)} ${r.mbps.toFixed(1)} Mbit/s\n`);
    return { path, round, ...r };
  } catch (err) {
    process.stdout.write(`  round ${round}: ${path.padEnd(18)} error: ${(err as Error).message}\n`);
    return { path, round, mbps: null, retransmits: null, error: (err as Error).message };
  }
}

async function waitUntil(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Topology { lab: Lab; client: Host; exit: Host; server: Host; serverIp: string }

/** pinhole: coordinator, exit node (approved), client using it. */
async function startPinhole(t: Topology, id: string): Promise<{ coord: LabCoordinator; c: ManagedAgent; e: ManagedAgent; exitOverlay: string }> {
  const coord = await startCoordinator(await t.lab.addPublicHost('coord'));
  const e = await startManagedAgent(t.exit, { tun: `bx${id}e`, env: { PINHOLE_LOG_LEVEL: 'warn' } });
  const c = await startManagedAgent(t.client, { tun: `bx${id}c`, env: { PINHOLE_LOG_LEVEL: 'warn' } });
  const key = await coord.createAuthKey({ reusable: true });
  const up = async (a: ManagedAgent, args: string[]): Promise<void> => {
    const r = await a.cli(['up', ...args]);
    if (r.code !== 0) throw new Error(`pinhole up: ${r.stderr.trim()}`);
  };
  await up(e, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'exit', '--advertise-exit-node']);
  await up(c, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'client']);
  const approve = await coord.adminCli(['routes', 'approve', 'exit', '0.0.0.0/0', '::/0']);
  if (approve.code !== 0) throw new Error(`approve: ${approve.stderr.trim()}`);
  await waitUntil('the client to take the exit node', async () => (await c.cli(['up', '--exit-node', 'exit'])).code === 0);
  await waitUntil('the exit route', async () => (await t.client.run(['ip', 'route', 'get', t.serverIp])).includes(`dev bx${id}c`));
  const exitOverlay = (await e.status()).self!.ipv4!;
  await waitUntil('the tunnel', async () => (await t.client.exec(['ping', '-c', '1', '-W', '1', exitOverlay])).code === 0);
  return { coord, c, e, exitOverlay };
}

/** wireguard-go on both ends; the exit forwards and masquerades in the kernel. */
async function startWgMasquerade(t: Topology, id: string): Promise<WireguardGo[]> {
  const [kc, ke] = [newKeyPair(), newKeyPair()];
  const we = await startWireguardGo(t.exit, { iface: `wg${id}e`, privateKey: ke.privateKey, address: '100.65.0.2/24', listenPort: 51900, mtu: MTU,
    peer: { publicKey: kc.publicKey, allowedIps: ['100.65.0.1/32'] } });
  const wc = await startWireguardGo(t.client, { iface: `wg${id}c`, privateKey: kc.privateKey, address: '100.65.0.1/24', listenPort: 51900, mtu: MTU,
    peer: { publicKey: ke.publicKey, allowedIps: [`${t.serverIp}/32`], endpoint: `${t.exit.ip}:51900` } }).catch(async (err) => { await we.stop(); throw err; });
  await t.exit.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  await t.exit.run(['nft', '-f', '-'], { input: 'table ip benchnat {\n chain post { type nat hook postrouting priority 100; ip saddr 100.65.0.0/24 oifname "eth0" masquerade; }\n}\n' });
  await waitUntil('wireguard-go path', async () => (await t.client.exec(['ping', '-c', '1', '-W', '1', t.serverIp])).code === 0);
  return [wc, we];
}


const version = toolVersion;

async function main(): Promise<number> {
  const { seconds, rounds } = parseOptions();
  const startedAt = new Date();
  const id = runId();
  let lab: Lab | null = null;
  const onSignal = (sig: NodeJS.Signals): void => {
    process.stderr.write(`\nbench-exit: ${sig}, tearing down\n`);
    void lab?.destroy().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const results: Measurement[] = [];
  try {
    lab = await createLab({ name: 'benchexit' });
    const client = await lab.addPublicHost('client');
    const exit = await lab.addPublicHost('exit');
    const server = await lab.addPublicHost('server', { ips: 2 });
    const t: Topology = { lab, client, exit, server, serverIp: server.ips[1]! };
    process.stdout.write(`bench-exit: client ${client.ip} → exit ${exit.ip} → server ${t.serverIp} (lab internet bridge), iperf3 -t ${seconds}, ${rounds} round(s)\n`);

    const ph = await startPinhole(t, id);
    for (let round = 1; round <= rounds; round++) {
      results.push(await measure('pinhole tunnel', round, () => iperf(client, exit, ph.exitOverlay, seconds)));
      results.push(await measure('pinhole exit NAT', round, () => iperf(client, server, t.serverIp, seconds)));
    }
    const exitStatus = await ph.e.status();
    // The kernel reference needs the client's default route back: pinhole goes first.
    for (const a of [ph.c, ph.e]) await a.stop();
    await ph.coord.stop();

    const wg = await startWgMasquerade(t, id);
    try {
      for (let round = 1; round <= rounds; round++) results.push(await measure('wireguard-go+masq', round, () => iperf(client, server, t.serverIp, seconds)));
    } finally {
      for (const w of wg) await w.stop();
    }

    const paths: PathName[] = ['pinhole tunnel', 'pinhole exit NAT', 'wireguard-go+masq'];
    const summary = paths.map((path) => {
      const runs = results.filter((r) => r.path === path);
      return { path, mbps: median(runs.map((r) => r.mbps)), retransmits: median(runs.map((r) => r.retransmits)), errors: runs.filter((r) => r.error).map((r) => r.error!) };
    });
    const get = (p: PathName): number | null => summary.find((s) => s.path === p)!.mbps;
    const ratios = {
      exitNatVsTunnel: ratio(get('pinhole exit NAT'), get('pinhole tunnel')),
      exitNatVsWireguardGoMasquerade: ratio(get('pinhole exit NAT'), get('wireguard-go+masq')),
      tunnelVsWireguardGoMasquerade: ratio(get('pinhole tunnel'), get('wireguard-go+masq')),
    };
    process.stdout.write(`\n${'path'.padEnd(20)}${'Mbit/s'.padStart(10)}${'TCP retrans'.padStart(13)}\n`);
    for (const s of summary) process.stdout.write(`${s.path.padEnd(20)}${fmt(s.mbps, 1).padStart(10)}${fmt(s.retransmits, 0).padStart(13)}${s.errors.length ? `   error: ${s.errors.join('; ')}` : ''}\n`);
    process.stdout.write(`\nexit NAT / pinhole tunnel:         ${fmt(ratios.exitNatVsTunnel, 2)}  (bar: ≥ 0.50)\n`);
    process.stdout.write(`exit NAT / wireguard-go+masquerade: ${fmt(ratios.exitNatVsWireguardGoMasquerade, 2)}\n`);
    process.stdout.write(`pinhole tunnel / wireguard-go+masq: ${fmt(ratios.tunnelVsWireguardGoMasquerade, 2)}\n`);

    const report = {
      benchmark: 'exit',
      startedAt: startedAt.toISOString(),
      machine: {
        nproc: availableParallelism(), node: process.version, kernel: version(['uname', '-r'], /(.+)/),
        wireguardGo: version(['wireguard-go', '--version'], /wireguard-go (\S+)/), iperf3: version(['iperf3', '--version'], /iperf (\S+)/),
      },
      settings: { seconds, rounds, mtu: MTU, topology: 'client, exit and server on the lab internet bridge' },
      results,
      summary,
      ratios,
      exitNat: exitStatus.routing?.nat ?? null,
    };
    const file = await writeBenchReport('exit', startedAt, report);
    process.stdout.write(`\nwrote ${file}\n`);
    return summary.some((s) => s.errors.length > 0) ? 1 : 0;
  } finally {
    await lab?.destroy();
  }
}

runBench('bench-exit', main);
