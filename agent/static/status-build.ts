// Builds `status --json` for a static agent from the device, TUN and UDP socket.
import type { Device } from '../wireguard/device.js';
import type { TunDevice } from '../tun/tun-device.js';
import type { BatchUdpSocket } from '../tun/udp-socket.js';
import type { NativeCounters } from '../tun/native.js';
import type { AgentStatus, DataPathJson, IoCountersJson } from './status.js';

function io(c: NativeCounters): IoCountersJson {
  return {
    rxPackets: c.rxPackets, txPackets: c.txPackets, rxDrops: c.rxDrops, txDrops: c.txDrops,
    rxErrors: c.rxErrors, txErrors: c.txErrors,
    meanRxBatch: c.rxBatches > 0 ? Math.round((c.rxPackets / c.rxBatches) * 10) / 10 : 0,
  };
}

/** Where packets were handled: the addon's native data path, or JS for everything (PINHOLE_FASTPATH=0). */
export function dataPath(device: Device | undefined, tun?: TunDevice): DataPathJson {
  const c = device?.fastPathCounters();
  const offload = {
    tunOffloads: tun?.offloads ?? '',
    tunGso: tun?.offloadCounters() ?? { superIn: 0, segmentsIn: 0, badSuper: 0, groWrites: 0, groPackets: 0 },
  };
  if (c === undefined) return { native: false, nativeTx: 0, nativeRx: 0, leftToJsOut: 0, leftToJsIn: 0, nativeFlowOut: 0, nativeFlowIn: 0, handedBackToJs: 0, ...offload };
  return {
    native: true, nativeTx: c.txPackets, nativeRx: c.rxPackets, leftToJsOut: c.leftOut, leftToJsIn: c.leftIn,
    nativeFlowOut: c.flowOut, nativeFlowIn: c.flowIn, handedBackToJs: c.handedBack, ...offload,
  };
}

/** A single-address allowed IP (/32, /128) is the peer's overlay address. */
function overlayIp(allowed: string[]): string | null {
  const host = allowed.find((c) => c.endsWith('/32') || c.endsWith('/128'));
  return host ? host.slice(0, host.lastIndexOf('/')) : null;
}

export function buildStatus(x: { device: Device; tun: TunDevice; udp: BatchUdpSocket; mtu: number; addresses: string[] }): AgentStatus {
  const d = x.device.status();
  return {
    mode: 'static',
    interface: { name: x.tun.name, publicKey: d.publicKey, listenPort: x.udp.port, addresses: x.addresses, mtu: x.mtu },
    peers: d.peers.map((p) => ({
      name: p.name ?? null,
      publicKey: p.publicKey,
      overlayIp: overlayIp(p.allowedIps),
      path: p.sessionIndex !== null && p.endpoint !== null ? 'direct' : 'none',
      endpoint: p.endpoint,
      relay: null,
      latencyMs: null,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      lastHandshake: p.lastHandshake,
      allowedIps: p.allowedIps,
      persistentKeepalive: p.persistentKeepalive,
      relayTrains: p.relayTrains,
    })),
    drops: d.drops,
    handshakes: d.handshakes,
    trains: d.trains,
    io: { tun: io(x.tun.counters()), udp: io(x.udp.counters()) },
    dataPath: dataPath(x.device, x.tun),
  };
}
