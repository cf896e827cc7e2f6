// Starts `pinhole relay` (a real process) in a lab host: the relay on HOST_IP:port and a STUN
// responder on every address of the host (two addresses give RFC 5780 behaviour discovery).
// restart() stops it and starts it again on the same addresses (for relay-restart tests).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, LabProcess } from '../natlab/index.js';
import { PINHOLE_BIN } from './paths.js';

export interface LabRelaySpec {
  port?: number;
  stunPort?: number;
  /** --coordinator URL (only nodes the coordinator knows may connect) and its admin token. */
  coordinator?: { url: string; token: string };
}

export interface LabRelay {
  readonly host: Host;
  /** ws://IP:PORT/relay */
  readonly url: string;
  /** "ip:port" of each STUN socket, primary first. */
  readonly stun: string[];
  readonly proc: LabProcess;
  /** The coordinator flags that publish this relay as NAME. */
  coordinatorArgs(name: string): string[];
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startLabRelay(host: Host, spec: LabRelaySpec = {}): Promise<LabRelay> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-relay-'));
  const port = spec.port ?? 3340;
  const stunPort = spec.stunPort ?? 3478;
  const stun = host.ips.map((ip) => `${ip}:${stunPort}`);
  const argv = ['node', PINHOLE_BIN, 'relay', '--listen', `${host.ip}:${port}`, ...stun.flatMap((s) => ['--stun', s])];
  if (spec.coordinator) {
    const tokenFile = join(dir, 'coordinator.token');
    await writeFile(tokenFile, `${spec.coordinator.token}\n`, { mode: 0o600 });
    argv.push('--coordinator', spec.coordinator.url, '--coordinator-token-file', tokenFile);
  }
  let proc!: LabProcess;
  const start = async (): Promise<void> => {
    proc = host.spawn(argv, { env: { PINHOLE_LOG_LEVEL: 'warn' }, logFile: join(dir, 'relay.log') });
    try {
      await proc.waitForOutput(/pinhole relay: listening/, 15_000);
    } catch (err) {
      await proc.kill('SIGKILL', 100);
      throw new Error(`relay did not start on ${host.ip}:${port}: ${(err as Error).message}`);
    }
  };
  await start();
  return {
    host, url: `ws://${host.ip}:${port}/relay`, stun,
    get proc() { return proc; },
    coordinatorArgs: (name) => ['--relay', `${name}=ws://${host.ip}:${port}/relay`],
    restart: async (downMs = 500) => {
      if (proc.running) await proc.kill('SIGTERM', 3000);
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    stop: async () => {
      if (proc?.running) await proc.kill('SIGTERM', 3000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
