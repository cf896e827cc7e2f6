// Starts the reference peer, wireguard-go (Debian package), inside a lab host and configures it
// with `wg` and `ip` as natlab.md describes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, LabProcess } from '../natlab/index.js';

export interface WireguardGoSpec {
  /** Interface name, unique per run: wireguard-go's control socket is named after it. */
  iface: string;
  privateKey: string;
  address: string;
  listenPort: number;
  mtu?: number;
  peer: { publicKey: string; presharedKey?: string; allowedIps: string[]; endpoint?: string; persistentKeepalive?: number };
}

export interface WireguardGo {
  readonly proc: LabProcess;
  /** `wg show IFACE DUMP-FIELD` style queries. */
  show(field: 'endpoints' | 'latest-handshakes' | 'transfer'): Promise<string>;
  stop(): Promise<void>;
}

export async function startWireguardGo(host: Host, spec: WireguardGoSpec): Promise<WireguardGo> {
  const dir = await mkdtemp(join(tmpdir(), `wggo-${spec.iface}-`));
  const keyFile = join(dir, 'private.key');
  await writeFile(keyFile, `${spec.privateKey}\n`, { mode: 0o600 });
  const proc = host.spawn(['wireguard-go', '-f', spec.iface], { env: { LOG_LEVEL: 'error' }, logFile: join(dir, 'wg.log') });
  const stop = async (): Promise<void> => {
    if (proc.running) await proc.kill('SIGTERM', 3000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 10_000;
    while ((await host.exec(['ip', 'link', 'show', spec.iface])).code !== 0) {
      if (!proc.running || Date.now() > deadline) throw new Error(`wireguard-go ${spec.iface} did not start: ${proc.output.trim()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const args = ['wg', 'set', spec.iface, 'listen-port', String(spec.listenPort), 'private-key', keyFile,
      'peer', spec.peer.publicKey, 'allowed-ips', spec.peer.allowedIps.join(',')];
    if (spec.peer.endpoint) args.push('endpoint', spec.peer.endpoint);
    if (spec.peer.persistentKeepalive) args.push('persistent-keepalive', String(spec.peer.persistentKeepalive));
    if (spec.peer.presharedKey) {
      const pskFile = join(dir, 'psk');
      await writeFile(pskFile, `${spec.peer.presharedKey}\n`, { mode: 0o600 });
      args.push('preshared-key', pskFile);
    }
    await host.run(args);
    await host.run(['ip', 'addr', 'add', spec.address, 'dev', spec.iface]);
    if (spec.mtu) await host.run(['ip', 'link', 'set', spec.iface, 'mtu', String(spec.mtu)]);
    await host.run(['ip', 'link', 'set', spec.iface, 'up']);
    for (const c of spec.peer.allowedIps) {
      if (!spec.address.startsWith(c.split('/')[0]!)) await host.exec(['ip', 'route', 'replace', c, 'dev', spec.iface]);
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    proc,
    show: (field) => host.run(['wg', 'show', spec.iface, field]),
    stop,
  };
}
