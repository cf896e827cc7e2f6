// Starts a managed pinhole agent (`pinhole agent --state-dir`, a real process) inside a lab host,
// runs the real CLI against it, and can restart it on the same state dir.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, LabProcess } from '../natlab/index.js';
import { localApiCall } from '../../agent/localapi/client.js';
import type { AgentStatus } from '../../agent/static/status.js';
import { PINHOLE_BIN } from './paths.js';

export interface ManagedAgentSpec {
  /** TUN device name, unique per run (≤ 15 chars). */
  tun: string;
  port?: number;
  env?: Record<string, string>;
  /** More `pinhole agent` flags, e.g. ['--metrics-listen', 'IP:PORT']. */
  extraArgs?: string[];
  /**
   * --resolv-conf for MagicDNS. Default: a file in the agent's own directory, so lab agents never
   * rewrite the machine's /etc/resolv.conf; '/etc/resolv.conf' with /etc/netns/NS/resolv.conf
   * present gives the namespace's own file (ip netns exec mounts it there).
   */
  resolvConf?: string;
}

export interface CliResult { code: number; stdout: string; stderr: string }

export interface ManagedAgent {
  readonly host: Host;
  readonly tun: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly socket: string;
  /** The current daemon process (replaced by restart()). */
  readonly proc: LabProcess;
  status(): Promise<AgentStatus>;
  /** `pinhole --socket S ARGS...` with the real CLI, inside the agent's namespace. */
  cli(args: string[], timeoutMs?: number): Promise<CliResult>;
  /** Stops the daemon (SIGTERM, or SIGKILL when hard) and starts it again on the same state dir. */
  restart(opts?: { hard?: boolean }): Promise<void>;
  /** Stops the daemon and deletes its directory. */
  stop(): Promise<void>;
}

export async function startManagedAgent(host: Host, spec: ManagedAgentSpec): Promise<ManagedAgent> {
  const dir = await mkdtemp(join(tmpdir(), `pinhole-${spec.tun}-`));
  const stateDir = join(dir, 'state');
  const socket = join(dir, 'agent.sock');
  const argv = ['node', PINHOLE_BIN, '--socket', socket, 'agent', '--state-dir', stateDir, '--tun', spec.tun,
    ...(spec.port !== undefined ? ['--port', String(spec.port)] : []), '--resolv-conf', spec.resolvConf ?? join(dir, 'resolv.conf'),
    ...(spec.extraArgs ?? [])];
  const spawnDaemon = (): LabProcess =>
    host.spawn(argv, { env: { PINHOLE_LOG_LEVEL: 'info', ...spec.env }, logFile: join(dir, 'agent.log') });

  let proc = spawnDaemon();
  const status = (): Promise<AgentStatus> => localApiCall<AgentStatus>(socket, 'GET', '/v0/status');
  const waitReady = async (): Promise<void> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      try {
        await status();
        return;
      } catch (err) {
        if (!proc.running || Date.now() > deadline) {
          throw new Error(`pinhole agent ${spec.tun} did not start: ${proc.output.trim().split('\n').slice(-3).join(' | ') || String(err)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  const agent: ManagedAgent = {
    host, tun: spec.tun, dir, stateDir, socket,
    get proc() { return proc; },
    status,
    cli: async (args, timeoutMs = 30_000) => {
      const r = await host.exec(['node', PINHOLE_BIN, '--socket', socket, ...args], { timeoutMs });
      return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
    },
    restart: async (opts = {}) => {
      await proc.kill(opts.hard ? 'SIGKILL' : 'SIGTERM', 3000);
      proc = spawnDaemon();
      await waitReady();
    },
    stop: async () => {
      if (proc.running) await proc.kill('SIGTERM', 3000);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitReady();
  } catch (err) {
    await agent.stop();
    throw err;
  }
  return agent;
}
