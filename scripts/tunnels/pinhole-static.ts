// Starts a static-mode pinhole agent (a real process) inside a lab host and talks to its local API.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, LabProcess } from '../natlab/index.js';
import { localApiCall } from '../../agent/localapi/client.js';
import type { AgentStatus } from '../../agent/static/status.js';
import { PINHOLE_BIN } from './paths.js';

export interface StaticPeerSpec {
  publicKey: string;
  presharedKey?: string;
  allowedIps: string[];
  endpoint?: string;
  persistentKeepalive?: number;
}

export interface StaticAgentSpec {
  /** TUN device name, unique per run (≤ 15 chars). */
  tun: string;
  privateKey: string;
  addresses: string[];
  listenPort: number;
  mtu?: number;
  peers: StaticPeerSpec[];
  /** Extra environment, e.g. PINHOLE_WG_TIMERS for protocol tests. */
  env?: Record<string, string>;
}

export interface StaticAgent {
  readonly host: Host;
  readonly proc: LabProcess;
  readonly socket: string;
  readonly dir: string;
  status(): Promise<AgentStatus>;
  /** Runs `pinhole --socket S ARGS...` (the real CLI) and returns its exit code and output. */
  cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  stop(): Promise<void>;
}

export function wgQuickConfig(spec: StaticAgentSpec): string {
  const lines = ['[Interface]', `PrivateKey = ${spec.privateKey}`, `Address = ${spec.addresses.join(', ')}`, `ListenPort = ${spec.listenPort}`];
  if (spec.mtu) lines.push(`MTU = ${spec.mtu}`);
  for (const p of spec.peers) {
    lines.push('', '[Peer]', `PublicKey = ${p.publicKey}`, `AllowedIPs = ${p.allowedIps.join(', ')}`);
    if (p.presharedKey) lines.push(`PresharedKey = ${p.presharedKey}`);
    if (p.endpoint) lines.push(`Endpoint = ${p.endpoint}`);
    if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function startStaticAgent(host: Host, spec: StaticAgentSpec): Promise<StaticAgent> {
  const dir = await mkdtemp(join(tmpdir(), `pinhole-${spec.tun}-`));
  const conf = join(dir, `${spec.tun}.conf`);
  const socket = join(dir, 'agent.sock');
  await writeFile(conf, wgQuickConfig(spec), { mode: 0o600 });
  const proc = host.spawn(['node', PINHOLE_BIN, '--socket', socket, 'agent', '--config', conf, '--tun', spec.tun], {
    env: { PINHOLE_LOG_LEVEL: 'warn', ...spec.env }, logFile: join(dir, 'agent.log'),
  });
  const agent: StaticAgent = {
    host, proc, socket, dir,
    status: () => localApiCall<AgentStatus>(socket, 'GET', '/v0/status'),
    cli: async (args) => {
      const r = await host.exec(['node', PINHOLE_BIN, '--socket', socket, ...args]);
      return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
    },
    stop: async () => {
      if (proc.running) await proc.kill('SIGTERM', 3000);
      await rm(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await agent.status();
      return agent;
    } catch (err) {
      if (!proc.running || Date.now() > deadline) {
        const out = proc.output;
        await agent.stop();
        throw new Error(`pinhole agent ${spec.tun} did not start: ${out.trim().split('\n').slice(-3).join(' | ') || String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
