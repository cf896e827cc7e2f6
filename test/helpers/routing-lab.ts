// Shared pieces of the routing lab tests (exit node, subnet router, access policy): real socket
// probes run inside lab namespaces (scripts/tunnels/socket-probe.js), and polling.
import { join } from 'node:path';
import type { Host, LabProcess } from '../../scripts/natlab/index.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import type { ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import type { AgentStatus } from '../../agent/static/status.js';
import { waitFor as waitForEvery } from '../../scripts/tunnels/wait-for.js';

export const PROBE = join(REPO_ROOT, 'dist', 'scripts', 'tunnels', 'socket-probe.js');

/** Polls every 250 ms (see scripts/tunnels/wait-for.ts). */
export const waitFor = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> => waitForEvery(what, fn, ms, 250);

/** An echo server (tcp/udp) in a host; `peers()` lists the source addresses it saw ("ip:port"). */
export interface ProbeServer {
  proc: LabProcess;
  peers(): string[];
  stop(): Promise<void>;
}

export async function startProbeServer(host: Host, proto: 'tcp' | 'udp', ip: string, port: number): Promise<ProbeServer> {
  const proc = host.spawn(['node', PROBE, 'serve', proto, ip, String(port)]);
  await proc.waitForOutput(/^listening/m, 10_000);
  return {
    proc,
    peers: () => [...proc.stdout.matchAll(/^peer (\S+)$/gm)].map((m) => m[1]!),
    stop: async () => { if (proc.running) await proc.kill('SIGKILL', 100); },
  };
}

/** One TCP or UDP round trip from a host: "ok" or "fail REASON". */
export async function probe(host: Host, proto: 'tcp' | 'udp', ip: string, port: number, timeoutMs = 3000): Promise<string> {
  const r = await host.exec(['node', PROBE, proto, ip, String(port), String(timeoutMs)], { timeoutMs: timeoutMs + 10_000 });
  return (r.stdout.trim() || r.stderr.trim() || `exit ${r.code}`).split('\n')[0]!;
}

/** Like probe, retried until it succeeds (paths take a moment after a netmap change). */
export async function probeUntilOk(host: Host, proto: 'tcp' | 'udp', ip: string, port: number, ms = 30_000): Promise<void> {
  let last = '';
  await waitFor(`${proto} ${ip}:${port} from ${host.name} (last: ${last})`, async () => {
    last = await probe(host, proto, ip, port, 2000);
    return last === 'ok';
  }, ms);
}

export async function up(agent: ManagedAgent, args: string[]): Promise<string> {
  const r = await agent.cli(['up', ...args]);
  if (r.code !== 0) throw new Error(`pinhole up ${args.join(' ')} (${agent.tun}) failed: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export async function selfOf(agent: ManagedAgent): Promise<NonNullable<AgentStatus['self']>> {
  return (await agent.status()).self!;
}

/** Both agents list each other as peers. */
export async function waitForPeers(agents: ManagedAgent[], count: number): Promise<void> {
  for (const a of agents) await waitFor(`${a.tun} to see ${count} peers`, async () => (await a.status()).peers.length >= count);
}
