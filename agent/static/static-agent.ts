// `pinhole agent --config FILE.conf`: a static WireGuard tunnel from a wg-quick style file —
// TUN device, addresses and routes, the batch UDP socket, the device, and the local API.
import { lookup } from 'node:dns/promises';
import { basename } from 'node:path';
import { loadWgQuickConfig, type WgQuickConfig } from '../config/wg-quick.js';
import { formatCidr, maskCidr } from '../../proto/ip/address.js';
import { Device } from '../wireguard/device.js';
import type { SlabLayout } from '../wireguard/transport.js';
import { TunDevice } from '../tun/tun-device.js';
import { BatchUdpSocket } from '../tun/udp-socket.js';
import { encodePackedAddr } from '../tun/packed-addr.js';
import { addAddress, addRoute, setLinkUp } from '../tun/iface.js';
import type { PacketSlab } from '../tun/packet-slab.js';
import { startLocalApi } from '../localapi/server.js';
import { timersFromEnv } from './timer-overrides.js';
import { buildStatus } from './status-build.js';
import { createLogger } from '../log.js';

export interface StaticAgentOptions {
  configPath: string;
  tunName?: string;
  socketPath: string;
  port?: number;
}

const TUN_NAME = /^[A-Za-z0-9_=+.-]{1,15}$/;

function layoutOf(slab: PacketSlab): SlabLayout {
  return { slab: slab.buffer, slotSize: slab.slotSize, headroom: slab.headroom, slots: slab.slots };
}

async function resolveEndpoint(host: string, port: number): Promise<Uint8Array> {
  const { address } = await lookup(host);
  return encodePackedAddr({ address, port });
}

export async function runStaticAgent(opts: StaticAgentOptions): Promise<void> {
  const log = createLogger('agent');
  const cfg: WgQuickConfig = await loadWgQuickConfig(opts.configPath);
  for (const w of cfg.warnings) log.warn(w);
  const tunName = opts.tunName ?? basename(opts.configPath).replace(/\.conf$/, '');
  if (!TUN_NAME.test(tunName)) throw new Error(`invalid TUN name "${tunName}": use --tun NAME (1-15 letters, digits, _=+.-)`);
  const mtu = cfg.interface.mtu ?? 1420;

  const device = new Device({
    privateKey: cfg.interface.privateKey, mtu, timers: timersFromEnv(process.env.PINHOLE_WG_TIMERS),
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

  const tun = await TunDevice.open({ name: tunName, mtu, batch: 64, headroom: 16, tailroom: 32 });
  const cleanup: Array<() => unknown> = [() => tun.close()];
  try {
    for (const a of cfg.interface.addresses) await addAddress(tun.name, formatCidr(a));
    await setLinkUp(tun.name);
    const onLink = cfg.interface.addresses.map((a) => formatCidr(maskCidr(a)));
    for (const p of cfg.peers) {
      for (const c of p.allowedIps) {
        const cidr = formatCidr(maskCidr(c));
        if (c.bits === 0) { log.warn(`allowed IP ${cidr} is not installed as a default route in static mode`); continue; }
        if (onLink.includes(cidr)) continue;
        await addRoute(tun.name, cidr);
      }
    }
    const udp = BatchUdpSocket.open({
      port: opts.port ?? cfg.interface.listenPort ?? 0, batch: 64, maxDatagram: Math.max(1984, mtu + 128),
    });
    cleanup.push(() => udp.close());
    const udpLayout = layoutOf(udp.rx);
    device.attach(tun, layoutOf(tun.rx), udp, udpLayout);
    cleanup.push(() => device.close());
    tun.onPackets = (count, rx) => device.receiveTunBatch(rx.lengths, count);
    udp.onPackets = (count, rx) => device.receiveUdpBatch(udpLayout, rx.lengths, rx.addrs, count);

    const status = () => buildStatus({ device, tun, udp, mtu, addresses: cfg.interface.addresses.map(formatCidr) });
    const api = await startLocalApi(opts.socketPath, { 'GET /v0/status': status });
    cleanup.push(() => api.close());
    log.info(`static tunnel ${tun.name} up: public key ${device.publicKeyBase64}, UDP port ${udp.port}, ${cfg.peers.length} peer(s), local API ${opts.socketPath}`);

    await new Promise<void>((resolve, reject) => {
      const stop = (sig: string) => { log.info(`${sig}: shutting down`); resolve(); };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      tun.onError = (err) => reject(new Error(`TUN ${tun.name} failed: ${err.message}`));
      udp.onError = (err) => reject(new Error(`UDP socket failed: ${err.message}`));
    });
  } finally {
    for (const fn of cleanup.reverse()) {
      try { await fn(); } catch { /* best effort on the way out */ }
    }
  }
}
