// `pinhole status --json` for a managed node: the device's view of each peer (path, endpoint,
// bytes, handshake) joined with the netmap's (node id, IPv6, online), plus who this node is and
// how its control connection is doing. While the node is down, the peers come from the netmap.
import type { Peer as NetmapPeer } from '../../proto/control/schemas.js';
import { newDropCounters, newHandshakeCounters, newTrainCounters } from '../wireguard/counters.js';
import { buildStatus, dataPath } from '../static/status-build.js';
import type { AgentStatus, ControlStatusJson, IoCountersJson, ManagedSelfJson, PeerStatusJson } from '../static/status.js';
import type { Tunnel } from './tunnel.js';
import type { PeerPathStatus } from '../magicsock/magic-socket.js';

export interface ManagedStatusInput {
  self: ManagedSelfJson;
  control: ControlStatusJson;
  tunName: string;
  mtu: number;
  tunnel: Tunnel | null;
  addresses: string[];
  netmapPeers: Iterable<NetmapPeer>;
  /** The magic socket's view of a peer's path (managed mode while up). */
  pathOf?: (nodeKey: string) => PeerPathStatus | null;
  relays?: AgentStatus['relays'];
  routing?: AgentStatus['routing'];
  magicsock?: AgentStatus['magicsock'];
  portmap?: AgentStatus['portmap'];
  birthday?: AgentStatus['birthday'];
}

const noIo = (): IoCountersJson => ({ rxPackets: 0, txPackets: 0, rxDrops: 0, txDrops: 0, rxErrors: 0, txErrors: 0, meanRxBatch: 0 });

function idlePeer(p: NetmapPeer): PeerStatusJson {
  return {
    name: p.name, publicKey: p.nodeKey, overlayIp: p.ipv4, path: 'none', endpoint: p.endpoints[0] ?? null,
    relay: null, latencyMs: null, rxBytes: 0, txBytes: 0, lastHandshake: null,
    allowedIps: [`${p.ipv4}/32`, `${p.ipv6}/128`], persistentKeepalive: 0, relayTrains: false,
  };
}

export function buildManagedStatus(x: ManagedStatusInput): AgentStatus {
  const byKey = new Map<string, NetmapPeer>();
  for (const p of x.netmapPeers) byKey.set(p.nodeKey, p);
  const withNetmap = (s: PeerStatusJson): PeerStatusJson => {
    const p = byKey.get(s.publicKey);
    const path = x.pathOf?.(s.publicKey);
    const withPath = path ? { ...s, ...path } : s;
    return p ? { ...withPath, nodeId: p.id, overlayIp: p.ipv4, overlayIpv6: p.ipv6, online: p.online } : withPath;
  };
  if (x.tunnel) {
    const { device, tun, udp } = x.tunnel;
    const base = buildStatus({ device, tun, udp, mtu: x.mtu, addresses: x.addresses });
    return {
      ...base, mode: 'managed', peers: base.peers.map(withNetmap), self: x.self, control: x.control,
      ...(x.routing ? { routing: x.routing } : {}),
      ...(x.relays ? { relays: x.relays } : {}), ...(x.magicsock ? { magicsock: x.magicsock } : {}),
      ...(x.portmap !== undefined ? { portmap: x.portmap } : {}),
      ...(x.birthday ? { birthday: x.birthday } : {}),
    };
  }
  return {
    mode: 'managed',
    interface: { name: x.tunName, publicKey: x.self.nodeKey, listenPort: 0, addresses: [], mtu: x.mtu },
    peers: [...byKey.values()].map((p) => withNetmap(idlePeer(p))),
    drops: newDropCounters(),
    handshakes: newHandshakeCounters(),
    trains: newTrainCounters(),
    io: { tun: noIo(), udp: noIo() },
    dataPath: dataPath(undefined),
    self: x.self,
    control: x.control,
    ...(x.routing ? { routing: x.routing } : {}),
  };
}
