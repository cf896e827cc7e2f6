// A mesh in the NAT lab for traversal tests, the demo and benchmarks: a coordinator and a relay
// (two addresses, so STUN can do RFC 5780) on the lab internet, and one managed agent per site,
// each site behind the NAT behaviour asked for. Every process is real.
import { startCoturn, type Host, type Lab, type NatBehaviour, type NetemOptions, type Site, type StunServer } from '../natlab/index.js';
import { startMiniupnpd } from '../natlab/miniupnpd.js';
import { startCoordinator, type LabCoordinator } from '../tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../tunnels/pinhole-managed.js';
import { newLabRelayKey, relayCoordinatorArgs, startLabRelay, type LabRelay } from '../tunnels/pinhole-relay.js';
import { runId } from '../tunnels/keys.js';
import { makeLabCertificate, tlsEnv, type LabCertificate } from '../tunnels/lab-tls.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../tunnels/wait-for.js';
import type { AgentStatus, PeerStatusJson } from '../../agent/static/status.js';

export interface MeshSiteSpec {
  /** Short unique name, also the node's hostname. */
  name: string;
  nat: NatBehaviour;
  doubleNat?: boolean;
  udpBlocked?: boolean;
  netem?: NetemOptions;
  /** The site's router runs miniupnpd (UPnP IGD, NAT-PMP, PCP), started before the agent. */
  portMapping?: boolean;
}

export interface MeshNode {
  spec: MeshSiteSpec;
  site: Site;
  host: Host;
  agent: ManagedAgent;
  ip: string;
}

export interface Mesh {
  coord: LabCoordinator;
  /** The coordinator's certificate when it serves HTTPS (startMesh tls); agents added later need tlsEnv(tls). */
  tls?: LabCertificate | undefined;
  relay: LabRelay;
  nodes: MeshNode[];
  node(name: string): MeshNode;
  stop(): Promise<void>;
}

export const RELAY_NAME = 'lab';
export const RELAY_PORT = 3340;

export { waitFor };

/** Builds the infrastructure and the sites, starts and joins every agent. Stops what it started on failure. */
/** `relayArgs`: more flags for `pinhole relay` (e.g. a benchmark's --rate-limit 0). */
export async function startMesh(lab: Lab, specs: MeshSiteSpec[], opts: { agentEnv?: Record<string, string>; tls?: boolean; relayArgs?: string[] } = {}): Promise<Mesh> {
  const stoppers: Array<() => Promise<void>> = [];
  const stop = async (): Promise<void> => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
    stoppers.length = 0;
  };
  try {
    const relayHost = await lab.addPublicHost('relay', { ips: 2 });
    const coordHost = await lab.addPublicHost('coord');
    // The coordinator publishes the relay (its STUN defaults to the relay host's first address,
    // port 3478); the relay admits only nodes the coordinator knows.
    const relayKey = newLabRelayKey();
    // tls: the coordinator serves HTTPS with a certificate for its address, trusted by every process here.
    let certDir: string | undefined;
    if (opts.tls) {
      const dir = certDir = await mkdtemp(join(tmpdir(), 'pinhole-mesh-tls-'));
      stoppers.push(() => rm(dir, { recursive: true, force: true }));
    }
    const tls = certDir ? await makeLabCertificate(certDir, coordHost.ip) : undefined;
    const coord = await startCoordinator(coordHost, { extraArgs: relayCoordinatorArgs(RELAY_NAME, `ws://${relayHost.ip}:${RELAY_PORT}/relay`, relayKey), ...(tls ? { tls } : {}) });
    stoppers.push(() => coord.stop());
    const relay = await startLabRelay(relayHost, { port: RELAY_PORT, coordinator: { url: coord.url, fingerprint: coord.fingerprint }, key: relayKey, env: tlsEnv(tls), ...(opts.relayArgs ? { extraArgs: opts.relayArgs } : {}) });
    stoppers.push(() => relay.stop());
    const key = await coord.createAuthKey({ reusable: true });
    const id = runId();
    const nodes: MeshNode[] = [];
    // miniupnpd learns its public address by STUN with CHANGE-REQUEST: coturn on two addresses.
    let coturn: StunServer | undefined;
    if (specs.some((s) => s.portMapping)) {
      const stun = await startCoturn(await lab.addPublicHost('coturn', { ips: 2 }));
      stoppers.push(() => stun.stop());
      coturn = stun;
    }
    for (const spec of specs) {
      const site = await lab.addSite(spec.name, { nat: spec.nat, ...(spec.doubleNat ? { doubleNat: true } : {}), ...(spec.udpBlocked ? { udpBlocked: true } : {}), ...(spec.netem ? { netem: spec.netem } : {}) });
      if (spec.portMapping && coturn) {
        const igd = await startMiniupnpd(site, { stun: coturn });
        stoppers.push(() => igd.stop());
      }
      const host = await site.addHost('h');
      const agentEnv = { ...tlsEnv(tls), ...opts.agentEnv };
      const agent = await startManagedAgent(host, { tun: `pt${id}${nodes.length}`.slice(0, 15), ...(Object.keys(agentEnv).length > 0 ? { env: agentEnv } : {}) });
      stoppers.push(() => agent.stop());
      const r = await agent.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', spec.name], 30_000);
      if (r.code !== 0) throw new Error(`${spec.name}: pinhole up failed: ${r.stderr.trim()}`);
      nodes.push({ spec, site, host, agent, ip: (await agent.status()).self!.ipv4! });
    }
    const mesh: Mesh = {
      coord, relay, nodes, tls,
      node: (name) => {
        const n = nodes.find((x) => x.spec.name === name);
        if (!n) throw new Error(`no node ${name}`);
        return n;
      },
      stop,
    };
    return mesh;
  } catch (err) {
    await stop();
    throw err;
  }
}

export function peerOf(st: AgentStatus, name: string): PeerStatusJson | undefined {
  return st.peers.find((p) => p.name === name || p.name?.split('.')[0] === name);
}

/** Every node knows every other one, with its home relay. */
export async function waitMeshReady(mesh: Mesh, ms = 60_000): Promise<void> {
  const names = mesh.nodes.map((n) => n.spec.name);
  await waitFor('every node to see every peer with a home relay', async () => {
    const sts = await Promise.all(mesh.nodes.map((n) => n.agent.status()));
    for (const [i, st] of sts.entries()) {
      if (st.relays?.find((r) => r.home && r.connected) === undefined) return false;
      for (const other of names) {
        if (other === names[i]) continue;
        const p = peerOf(st, other);
        if (!p || p.relay === null) return false;
      }
    }
    return true;
  }, ms, 250);
}

export interface PairResult {
  a: string;
  b: string;
  /** The path once settled. */
  path: 'direct' | 'relay' | 'none';
  expected: 'direct' | 'relay';
  /** RTT of the very first ping (handshake included), ms; null if it got no reply. */
  firstReplyMs: number | null;
  /** From the first ping until both sides report a direct path, ms; null if never direct. */
  timeToDirectMs: number | null;
  /** Pings answered out of those sent while the path was settling. */
  replies: number;
  sent: number;
}

const natKind = (s: MeshSiteSpec): string => (s.doubleNat ? (s.nat === 'symmetric' ? 'symmetric' : 'port-restricted-cone') : s.nat);

/**
 * The classic table plus birthday probing: direct unless UDP is blocked or both NATs are
 * symmetric. A symmetric NAT facing a port-restricted one (double NAT included) goes direct by
 * birthday probing (birthdayPair), which takes seconds rather than the ≤ 2 s of plain punching.
 */
export function expectedPath(a: MeshSiteSpec, b: MeshSiteSpec): 'direct' | 'relay' {
  if (a.udpBlocked || b.udpBlocked) return 'relay';
  if (natKind(a) === 'symmetric' && natKind(b) === 'symmetric') return 'relay';
  return 'direct';
}

/** A pair only birthday probing opens: a symmetric NAT facing a port-restricted one. */
export function birthdayPair(a: MeshSiteSpec, b: MeshSiteSpec): boolean {
  if (a.udpBlocked || b.udpBlocked) return false;
  const [x, y] = [natKind(a), natKind(b)];
  return (x === 'symmetric' && y === 'port-restricted-cone') || (y === 'symmetric' && x === 'port-restricted-cone');
}

async function pingOnce(from: MeshNode, to: MeshNode, waitS: number): Promise<number | null> {
  const r = await from.host.exec(['ping', '-n', '-c', '1', '-W', String(waitS), to.ip], { timeoutMs: (waitS + 5) * 1000 });
  const m = /time=([\d.]+) ms/.exec(r.stdout);
  return r.code === 0 && m ? Number(m[1]) : null;
}

/** First ping between two nodes, then pings until the path settles (direct, or `settleMs` passed). */
export async function probePair(a: MeshNode, b: MeshNode, settleMs = 4000): Promise<PairResult> {
  const expected = expectedPath(a.spec, b.spec);
  const started = Date.now();
  const firstReplyMs = await pingOnce(a, b, 3);
  let sent = 1;
  let replies = firstReplyMs === null ? 0 : 1;
  let timeToDirectMs: number | null = null;
  let path: PairResult['path'] = 'none';
  const end = started + settleMs;
  for (;;) {
    const [sa, sb] = await Promise.all([a.agent.status(), b.agent.status()]);
    const pa = peerOf(sa, b.spec.name)?.path ?? 'none';
    const pb = peerOf(sb, a.spec.name)?.path ?? 'none';
    path = pa === pb ? pa : pa === 'direct' || pb === 'direct' ? 'relay' : pa;
    if (pa === 'direct' && pb === 'direct') { timeToDirectMs = Date.now() - started; break; }
    if (Date.now() > end) break;
    await new Promise((r) => setTimeout(r, 100));
    sent++;
    if ((await pingOnce(a, b, 1)) !== null) replies++;
  }
  return { a: a.spec.name, b: b.spec.name, path, expected, firstReplyMs, timeToDirectMs, replies, sent };
}

export function formatPairTable(rows: PairResult[]): string {
  const head = ['pair', 'path', 'expected', 'first reply', 'time to direct', 'replies'];
  const body = rows.map((r) => [
    `${r.a} x ${r.b}`, r.path, r.expected,
    r.firstReplyMs === null ? 'none' : `${r.firstReplyMs.toFixed(1)} ms`,
    r.timeToDirectMs === null ? '-' : `${(r.timeToDirectMs / 1000).toFixed(2)} s`,
    `${r.replies}/${r.sent}`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), ...body.map(line)].join('\n');
}
