// The paths the tunnel benchmarks compare, between two namespaces joined by one veth pair: the raw
// veth, pinhole's static pair (also with offloads off and with every packet in JavaScript), a
// managed pair without and with an access policy, wireguard-go and Nebula. Each is started on
// its own and taken down by its stop(). Used by scripts/bench-tunnel.ts and scripts/bench-rtt.ts.
import type { Host, Lab } from '../natlab/index.js';
import { NamespaceHost } from '../natlab/host.js';
import { addAddress, createVethPair } from '../natlab/namespace.js';
import { newKeyPair } from './keys.js';
import { startStaticAgent } from './pinhole-static.js';
import { startCoordinator } from './pinhole-coordinator.js';
import { startManagedAgent } from './pinhole-managed.js';
import { waitFor } from './wait-for.js';
import { startWireguardGo } from './wireguard-go.js';
import { startNebula, type NebulaCa } from './nebula.js';

export const MTU = 1420; // the same inner MTU for every tunnel (wireguard-go's default; Nebula's is 1300)
export const UNDERLAY = { a: '198.18.0.1', b: '198.18.0.2' };

// 'pinhole js' is the same agent with PINHOLE_FASTPATH=0: every packet through JavaScript, for
// the native data path's share of the result (docs/protocol.md, Latency).
// 'managed' / 'managed+policy': two `pinhole agent --state-dir` joined through a coordinator,
// without and with an access policy that allows everything between them (a policy installs the
// stateful packet filter on both nodes: the configuration people run).
// 'pinhole no-offload' is the static pair with PINHOLE_TUN_OFFLOAD=0: no TSO/USO from the kernel,
// no GRO to it (one packet per TUN read and write).
export type PathName = 'raw veth' | 'pinhole' | 'pinhole no-offload' | 'pinhole js' | 'managed' | 'managed+policy' | 'wireguard-go' | 'nebula';
export const PATHS: PathName[] = ['raw veth', 'pinhole', 'pinhole no-offload', 'pinhole js', 'managed', 'managed+policy', 'wireguard-go', 'nebula'];
const ALLOW_ALL_POLICY = { acls: [{ action: 'accept', src: ['*'], dst: ['*:*'] }] };

/** A running path between the two hosts: where the iperf3 server binds and how to take it down. */
export interface RunningPath {
  serverIp: string;
  stop(): Promise<void>;
  /** pinhole paths: each agent's `dataPath` (native / JS split, filter flows, offloads) after the run. */
  dataPaths?(): Promise<unknown[]>;
  /** Tunnel paths: the tunnel interface on each host and the UDP port both ends use (bench-rtt captures there). */
  tunnel?: { tunA: string; tunB: string; port: number };
  /** Tunnel paths: the pid of the tunnel's process on a and on b (bench-rtt reads their scheduler times). */
  pids?: [number, number];
}

/** Two namespaces of the lab joined by a single veth pair and nothing else. */
export async function vethPair(lab: Lab): Promise<{ a: Host; b: Host }> {
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
export async function startPath(path: PathName, a: Host, b: Host, ca: NebulaCa, id: string): Promise<RunningPath> {
  if (path === 'raw veth') return { serverIp: UNDERLAY.b, stop: async () => {} };
  if (path === 'pinhole' || path === 'pinhole js' || path === 'pinhole no-offload') {
    const env: Record<string, string> | undefined = path === 'pinhole js' ? { PINHOLE_FASTPATH: '0' } : path === 'pinhole no-offload' ? { PINHOLE_TUN_OFFLOAD: '0' } : undefined;
    const [ka, kb] = [newKeyPair(), newKeyPair()];
    const pa = await startStaticAgent(a, { env, tun: `ph${id}a`, privateKey: ka.privateKey, addresses: ['100.64.1.1/24'], listenPort: 51820, mtu: MTU,
      peers: [{ publicKey: kb.publicKey, allowedIps: ['100.64.1.2/32'], endpoint: `${UNDERLAY.b}:51820` }] });
    const pb = await startStaticAgent(b, { env, tun: `ph${id}b`, privateKey: kb.privateKey, addresses: ['100.64.1.2/24'], listenPort: 51820, mtu: MTU,
      peers: [{ publicKey: ka.publicKey, allowedIps: ['100.64.1.1/32'], endpoint: `${UNDERLAY.a}:51820` }] }).catch(async (e) => { await pa.stop(); throw e; });
    return {
      serverIp: '100.64.1.2', stop: async () => { await Promise.all([pa.stop(), pb.stop()]); }, tunnel: { tunA: `ph${id}a`, tunB: `ph${id}b`, port: 51820 },
      pids: [pa.proc.pid, pb.proc.pid],
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
      return {
        serverIp, stop, dataPaths: async () => Promise.all(agents.map(async (x) => (await x.status()).dataPath)),
        tunnel: { tunA: agents[0]!.tun, tunB: agents[1]!.tun, port: 51822 }, pids: [agents[0]!.proc.pid, agents[1]!.proc.pid],
      };
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
    return { serverIp: '100.64.2.2', stop: async () => { await Promise.all([wa.stop(), wb.stop()]); }, tunnel: { tunA: `wg${id}a`, tunB: `wg${id}b`, port: 51821 }, pids: [wa.proc.pid, wb.proc.pid] };
  }
  const na = await startNebula(a, ca, { dev: `nb${id}a`, name: 'a', ip: '100.65.0.1/24', listenPort: 4242, mtu: MTU,
    staticHosts: { '100.65.0.2': `${UNDERLAY.b}:4242` } });
  const nb = await startNebula(b, ca, { dev: `nb${id}b`, name: 'b', ip: '100.65.0.2/24', listenPort: 4242, mtu: MTU,
    staticHosts: { '100.65.0.1': `${UNDERLAY.a}:4242` } }).catch(async (e) => { await na.stop(); throw e; });
  return { serverIp: '100.65.0.2', stop: async () => { await Promise.all([na.stop(), nb.stop()]); }, tunnel: { tunA: `nb${id}a`, tunB: `nb${id}b`, port: 4242 }, pids: [na.proc.pid, nb.proc.pid] };
}

/** Pings until one reply comes back (the first packet of a tunnel triggers its handshake). */
export async function waitReachable(from: Host, ip: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await from.exec(['ping', '-n', '-c', '1', '-W', '1', ip], { timeoutMs: 5000 })).code !== 0) {
    if (Date.now() > deadline) throw new Error(`${ip} not reachable from ${from.name} within ${timeoutMs} ms`);
  }
}
