// Starts Nebula 1.6.1 (Debian package), the side-by-side reference, inside a lab host: a CA and
// per-node certificates from nebula-cert, a YAML config with static hosts and no relays.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runArgv } from '../natlab/command.js';
import type { Host, LabProcess } from '../natlab/index.js';

/** A throwaway certificate authority in its own temp dir. */
export interface NebulaCa {
  readonly crt: string;
  readonly key: string;
  remove(): Promise<void>;
}

export async function createNebulaCa(name: string): Promise<NebulaCa> {
  const dir = await mkdtemp(join(tmpdir(), 'nebula-ca-'));
  const crt = join(dir, 'ca.crt');
  const key = join(dir, 'ca.key');
  const remove = () => rm(dir, { recursive: true, force: true });
  try {
    await runArgv(['nebula-cert', 'ca', '-name', name, '-duration', '24h', '-out-crt', crt, '-out-key', key]);
  } catch (err) {
    await remove();
    throw err;
  }
  return { crt, key, remove };
}

export interface NebulaSpec {
  /** TUN device name, unique per run (≤ 15 chars). */
  dev: string;
  /** Certificate name, e.g. the host's name. */
  name: string;
  /** Overlay address with prefix, in 100.65.0.0/24, e.g. '100.65.0.1/24'. */
  ip: string;
  listenPort: number;
  mtu?: number;
  /** Peers reachable without a lighthouse: overlay IP → underlay 'ip:port'. */
  staticHosts: Record<string, string>;
  /** Overlay IPs of lighthouses (they must also be in staticHosts); default none. */
  lighthouses?: string[];
}

export interface Nebula {
  readonly proc: LabProcess;
  stop(): Promise<void>;
}

const q = (s: string): string => JSON.stringify(s);

/** The node's config. Relays are off: Nebula 1.6.1 prefers a relay even when direct would work. */
export function nebulaConfig(spec: NebulaSpec, files: { ca: string; cert: string; key: string }): string {
  const anyRule = ['    - port: any', '      proto: any', '      host: any'];
  const lighthouses = spec.lighthouses ?? [];
  return [
    'pki:',
    `  ca: ${q(files.ca)}`,
    `  cert: ${q(files.cert)}`,
    `  key: ${q(files.key)}`,
    'static_host_map:',
    ...Object.entries(spec.staticHosts).map(([vpnIp, addr]) => `  ${q(vpnIp)}: [${q(addr)}]`),
    'lighthouse:',
    '  am_lighthouse: false',
    '  interval: 60',
    `  hosts: [${lighthouses.map(q).join(', ')}]`,
    'listen:',
    '  host: 0.0.0.0',
    `  port: ${spec.listenPort}`,
    'punchy:',
    '  punch: true',
    'relay:',
    '  am_relay: false',
    '  use_relays: false',
    'tun:',
    '  disabled: false',
    `  dev: ${q(spec.dev)}`,
    `  mtu: ${spec.mtu ?? 1300}`,
    'logging:',
    '  level: info',
    'firewall:',
    '  outbound:',
    ...anyRule,
    '  inbound:',
    ...anyRule,
    '',
  ].join('\n');
}

/** Signs a certificate for spec.ip with ca, writes the config, and waits until the interface is up. */
export async function startNebula(host: Host, ca: NebulaCa, spec: NebulaSpec): Promise<Nebula> {
  const dir = await mkdtemp(join(tmpdir(), `nebula-${spec.dev}-`));
  const cert = join(dir, 'host.crt');
  const key = join(dir, 'host.key');
  const conf = join(dir, 'config.yml');
  let proc: LabProcess | null = null;
  const stop = async (): Promise<void> => {
    if (proc?.running) await proc.kill('SIGTERM', 3000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await runArgv(['nebula-cert', 'sign', '-ca-crt', ca.crt, '-ca-key', ca.key, '-name', spec.name, '-ip', spec.ip,
      '-out-crt', cert, '-out-key', key]);
    await writeFile(conf, nebulaConfig(spec, { ca: ca.crt, cert, key }), { mode: 0o600 });
    proc = host.spawn(['nebula', '-config', conf], { logFile: join(dir, 'nebula.log') });
    await proc.waitForOutput(/Nebula interface is active/, 10_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { proc, stop };
}
