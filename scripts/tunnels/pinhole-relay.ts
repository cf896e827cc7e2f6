// Starts `pinhole relay` (a real process) in a lab host: the relay on HOST_IP:port and a STUN
// responder on every address of the host (two addresses give RFC 5780 behaviour discovery).
// restart() stops it and starts it again on the same addresses and key (for relay-restart tests).
// The relay's key is made here, before it starts, so a coordinator can publish it first.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import type { Host, LabProcess } from '../natlab/index.js';
import { PINHOLE_BIN } from './paths.js';

export interface LabRelaySpec {
  port?: number;
  stunPort?: number;
  /** --coordinator URL (only nodes the coordinator knows may connect) and its key's fingerprint; without it the relay runs --open. */
  coordinator?: { url: string; fingerprint: string };
  /** Extra environment (e.g. NODE_EXTRA_CA_CERTS for a coordinator with its own certificate). */
  env?: Record<string, string>;
  /** The relay's static key (default: a new one). */
  key?: LabRelayKey;
  /** More `pinhole relay` flags, e.g. ['--metrics-listen', 'IP:PORT']. */
  extraArgs?: string[];
}

/** A relay key pair in base64, as `--key-file` and `--relay-key` take them. */
export interface LabRelayKey { privateKey: string; publicKey: string }

export function newLabRelayKey(): LabRelayKey {
  const priv = generatePrivateKey();
  return { privateKey: encodeKey(priv), publicKey: encodeKey(publicKeyFromPrivate(priv)) };
}

/** The coordinator flags that publish a relay at `url` with `key` as NAME. */
export function relayCoordinatorArgs(name: string, url: string, key: LabRelayKey): string[] {
  return ['--relay', `${name}=${url}`, '--relay-key', `${name}=${key.publicKey}`];
}

export interface LabRelay {
  readonly host: Host;
  /** ws://IP:PORT/relay */
  readonly url: string;
  /** "ip:port" of each STUN socket, primary first. */
  readonly stun: string[];
  readonly proc: LabProcess;
  readonly key: LabRelayKey;
  /** The coordinator flags that publish this relay (URL and key) as NAME. */
  coordinatorArgs(name: string): string[];
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startLabRelay(host: Host, spec: LabRelaySpec = {}): Promise<LabRelay> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-relay-'));
  const port = spec.port ?? 3340;
  const stunPort = spec.stunPort ?? 3478;
  const stun = host.ips.map((ip) => `${ip}:${stunPort}`);
  const key = spec.key ?? newLabRelayKey();
  const keyFile = join(dir, 'relay.key');
  await writeFile(keyFile, `${key.privateKey}\n`, { mode: 0o600 });
  const argv = ['node', PINHOLE_BIN, 'relay', '--listen', `${host.ip}:${port}`, ...stun.flatMap((s) => ['--stun', s]), '--key-file', keyFile];
  if (!spec.coordinator) argv.push('--open');
  if (spec.coordinator) {
    argv.push('--coordinator', spec.coordinator.url, '--coordinator-key', spec.coordinator.fingerprint);
  }
  argv.push(...(spec.extraArgs ?? []));
  let proc!: LabProcess;
  const start = async (): Promise<void> => {
    proc = host.spawn(argv, { env: { PINHOLE_LOG_LEVEL: 'warn', ...spec.env }, logFile: join(dir, 'relay.log') });
    try {
      await proc.waitForOutput(/pinhole relay: listening/, 15_000);
    } catch (err) {
      await proc.kill('SIGKILL', 100);
      throw new Error(`relay did not start on ${host.ip}:${port}: ${(err as Error).message}`);
    }
  };
  await start();
  return {
    host, url: `ws://${host.ip}:${port}/relay`, stun, key,
    get proc() { return proc; },
    coordinatorArgs: (name) => relayCoordinatorArgs(name, `ws://${host.ip}:${port}/relay`, key),
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
