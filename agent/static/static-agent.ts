// `pinhole agent --config FILE.conf`: a static WireGuard tunnel from a wg-quick style file —
// TUN device, addresses and routes, the batch UDP socket, the device, and the local API.
import { lookup } from 'node:dns/promises';
import { basename } from 'node:path';
import { loadWgQuickConfig, type WgQuickConfig } from '../config/wg-quick.js';
import { formatCidr, maskCidr } from '../../proto/ip/address.js';
import { Device } from '../wireguard/device.js';
import { encodePackedAddr } from '../tun/packed-addr.js';
import { addAddress, addRoute } from '../tun/iface.js';
import { openTunnel, TUN_NAME } from '../daemon/tunnel.js';
import { prepareLocalApi, readCall, refusalLogFields, startLocalApi } from '../localapi/server.js';
import type { AccessGroupOptions } from '../localapi/credentials.js';
import { timersFromEnv } from './timer-overrides.js';
import { buildStatus } from './status-build.js';
import { createLogger } from '../log.js';
import { OptimizerOnLoad } from '../daemon/optimizer-on-load.js';
import { sodiumWhenBusy, useAddonSodium } from '../tun/addon-sodium.js';

export interface StaticAgentOptions extends AccessGroupOptions {
  configPath: string;
  tunName?: string;
  socketPath: string;
  port?: number;
}

async function resolveEndpoint(host: string, port: number): Promise<Uint8Array> {
  const { address } = await lookup(host);
  return encodePackedAddr({ address, port });
}

export async function runStaticAgent(opts: StaticAgentOptions): Promise<void> {
  useAddonSodium();
  const log = createLogger('agent');
  const policy = await prepareLocalApi(opts.socketPath, opts);
  const cfg: WgQuickConfig = await loadWgQuickConfig(opts.configPath);
  for (const w of cfg.warnings) log.warn(w);
  const tunName = opts.tunName ?? basename(opts.configPath).replace(/\.conf$/, '');
  if (!TUN_NAME.test(tunName)) throw new Error(`invalid TUN name "${tunName}": use --tun NAME (1-15 letters, digits, _=+.-)`);
  const mtu = cfg.interface.mtu ?? 1420;

  // Peers' packets reach the TUN only for the Address entries (docs/security-datapath.md).
  const device = new Device({
    privateKey: cfg.interface.privateKey, mtu, timers: timersFromEnv(process.env.PINHOLE_WG_TIMERS),
    localAddresses: cfg.interface.addresses,
    onBatch: new OptimizerOnLoad({ log, onBusy: sodiumWhenBusy }).noteBatch,
  });
  for (const p of cfg.peers) {
    device.addPeer({
      publicKey: p.publicKey,
      presharedKey: p.presharedKey,
      allowedIps: p.allowedIps,
      endpoint: p.endpoint ? await resolveEndpoint(p.endpoint.host, p.endpoint.port) : undefined,
      persistentKeepaliveSeconds: p.persistentKeepalive,
    });
  }

  // Until the agent is waiting for a signal, a failing TUN or socket fails the start.
  let fatal: (err: Error) => void = (err) => { throw err; };
  const tunnel = await openTunnel({
    device, tunName, mtu, port: opts.port ?? cfg.interface.listenPort ?? 0,
    // Plain WireGuard: the device sends through the UDP socket itself.
    transport: (udp) => ({ bind: udp }),
    onFatal: (err) => fatal(err),
  });
  const { tun, udp } = tunnel;
  const cleanup: Array<() => unknown> = [() => tunnel.close()];
  try {
    for (const a of cfg.interface.addresses) await addAddress(tun.name, formatCidr(a));
    const onLink = cfg.interface.addresses.map((a) => formatCidr(maskCidr(a)));
    for (const p of cfg.peers) {
      for (const c of p.allowedIps) {
        const cidr = formatCidr(maskCidr(c));
        if (c.bits === 0) { log.warn(`allowed IP ${cidr} is not installed as a default route in static mode`); continue; }
        if (onLink.includes(cidr)) continue;
        await addRoute(tun.name, cidr);
      }
    }

    const status = () => buildStatus({ device, tun, udp, mtu, addresses: cfg.interface.addresses.map(formatCidr) });
    const api = await startLocalApi(opts.socketPath, { 'GET /v0/status': readCall('status', status) }, {
      policy, onRefused: (cred, verb, reason) => log.warn(refusalLogFields(cred, verb), reason),
    });
    cleanup.push(() => api.close());
    log.info(`static tunnel ${tun.name} up: public key ${device.publicKeyBase64}, UDP port ${udp.port}, ${cfg.peers.length} peer(s), local API ${opts.socketPath}`);

    await new Promise<void>((resolve, reject) => {
      const stop = (sig: string) => { log.info(`${sig}: shutting down`); resolve(); };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      fatal = reject;
    });
  } finally {
    for (const fn of cleanup.reverse()) {
      try { await fn(); } catch { /* best effort on the way out */ }
    }
  }
}
