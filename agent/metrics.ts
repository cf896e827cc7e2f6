// What the agent shows Prometheus (`pinhole agent --metrics-listen`): per-peer path, bytes and
// handshake age, drops by reason, NAT behaviour, read from the agent's status at scrape time (the
// same numbers `pinhole status --json` shows), and two histograms observed once per peer when the
// magic socket sees its first packet and its first direct path. Labels carry peer names and
// overlay addresses, never keys. docs/metrics.md lists every metric.
import { Histogram, type Registry } from 'prom-client';
import { counterFrom, fieldsAs, gaugeFrom, newProcessRegistry, one, type Labels, type Samples } from '../metrics/collectors.js';
import type { PathEvent } from './magicsock/magic-socket.js';
import type { NetcheckReport } from './netcheck/report.js';
import type { AgentStatus, PeerStatusJson } from './static/status.js';

export interface AgentMetricsSource {
  /** The agent's status now (managed mode). */
  status(): AgentStatus;
  /** The last netcheck report, or null if none ran since the daemon started. */
  netcheck(): NetcheckReport | null;
}

export interface AgentMetrics {
  readonly registry: Registry;
  /** Wired into the magic socket: one observation per peer and milestone. */
  onPathEvent(event: PathEvent): void;
}

const PATHS = ['direct', 'relay', 'none'] as const;
/** Magic-socket counters that count packets not taken; the others count disco traffic. */
const MAGICSOCK_DROPS = new Set(['discoBadPacket', 'discoUnknownSender', 'relayUnknownSender', 'relayNoRoute', 'discoReplayed', 'discoStale', 'pongsUnmatched', 'unknownDropped']);
/** Seconds: from LAN-fast to a slow relay-first start. */
const PATH_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60];

function peerLabels(p: PeerStatusJson): Labels {
  return { peer: p.name ?? p.overlayIp ?? 'unnamed', ip: p.overlayIp ?? '' };
}

export function createAgentMetrics(src: AgentMetricsSource): AgentMetrics {
  const r = newProcessRegistry();
  // One status per scrape, however many collectors read it.
  let cached: { at: number; status: AgentStatus } | null = null;
  const status = (): AgentStatus => {
    const now = Date.now();
    if (!cached || now - cached.at > 100) cached = { at: now, status: src.status() };
    return cached.status;
  };
  const perPeer = (value: (p: PeerStatusJson) => number | null): Samples => {
    const out: Array<readonly [Labels, number]> = [];
    for (const p of status().peers) {
      const v = value(p);
      if (v !== null) out.push([peerLabels(p), v]);
    }
    return out;
  };

  gaugeFrom(r, 'pinhole_node_up', 'The tunnel is up (1) or not (0)', [], () => one(status().self?.state === 'up' ? 1 : 0));
  gaugeFrom(r, 'pinhole_control_connected', 'The control stream to the coordinator is up and delivered a netmap', [], () => one(status().self?.connected ? 1 : 0));
  gaugeFrom(r, 'pinhole_peers', 'Peers in the netmap', [], () => one(status().peers.length));
  gaugeFrom(r, 'pinhole_peer_path', 'Path to the peer now: 1 on the current one of direct, relay, none', ['peer', 'ip', 'path'], () =>
    status().peers.flatMap((p) => PATHS.map((path) => [{ ...peerLabels(p), path }, p.path === path ? 1 : 0] as const)));
  gaugeFrom(r, 'pinhole_peer_online', 'The coordinator sees the peer online', ['peer', 'ip'], () => perPeer((p) => (p.online === undefined ? null : p.online ? 1 : 0)));
  counterFrom(r, 'pinhole_peer_rx_bytes_total', 'Bytes received from the peer (since the tunnel came up)', ['peer', 'ip'], () => perPeer((p) => p.rxBytes));
  counterFrom(r, 'pinhole_peer_tx_bytes_total', 'Bytes sent to the peer (since the tunnel came up)', ['peer', 'ip'], () => perPeer((p) => p.txBytes));
  gaugeFrom(r, 'pinhole_peer_last_handshake_age_seconds', 'Seconds since the last completed handshake with the peer (absent: none yet)', ['peer', 'ip'], () => {
    const now = Date.now();
    return perPeer((p) => (p.lastHandshake ? Math.max(0, (now - Date.parse(p.lastHandshake)) / 1000) : null));
  });
  gaugeFrom(r, 'pinhole_peer_latency_seconds', 'Disco round trip on the current path (absent: not measured)', ['peer', 'ip'], () => perPeer((p) => (p.latencyMs === null ? null : p.latencyMs / 1000)));
  const firstPacket = new Histogram({
    name: 'pinhole_peer_time_to_first_packet_seconds',
    help: 'Per peer, once: from the peer joining the tunnel (netmap or start) to its first packet received (250 ms resolution)',
    buckets: PATH_BUCKETS, registers: [r],
  });
  const toDirect = new Histogram({
    name: 'pinhole_peer_time_to_direct_seconds',
    help: 'Per peer, once: from the peer joining the tunnel (netmap or start) to its first direct path',
    buckets: PATH_BUCKETS, registers: [r],
  });
  counterFrom(r, 'pinhole_drops_total', 'Packets dropped, by layer and reason', ['layer', 'reason'], () => {
    const s = status();
    const magic = Object.fromEntries(Object.entries(s.magicsock ?? {}).filter(([k]) => MAGICSOCK_DROPS.has(k)));
    const relaySend = (s.relays ?? []).reduce((n, x) => n + x.sendDrops, 0);
    return [
      ...fieldsAs('reason', { ...s.drops }, { layer: 'wireguard' }),
      ...fieldsAs('reason', magic, { layer: 'magicsock' }),
      ...fieldsAs('reason', { tunRx: s.io.tun.rxDrops, tunTx: s.io.tun.txDrops, udpRx: s.io.udp.rxDrops, udpTx: s.io.udp.txDrops }, { layer: 'io' }),
      [{ layer: 'relay', reason: 'send_queue_full' }, relaySend],
    ];
  });
  counterFrom(r, 'pinhole_disco_events_total', 'Disco messages and path-discovery events of the magic socket', ['event'], () => {
    const m = status().magicsock ?? {};
    return fieldsAs('event', Object.fromEntries(Object.entries(m).filter(([k]) => !MAGICSOCK_DROPS.has(k))));
  });
  counterFrom(r, 'pinhole_handshakes_total', 'WireGuard handshake messages, by kind', ['kind'], () => fieldsAs('kind', { ...status().handshakes }));
  counterFrom(r, 'pinhole_trains_total', 'Relay trains (several packets in one WireGuard message through a relay) and the packets they carried, by kind', ['kind'], () => fieldsAs('kind', { ...status().trains }));
  counterFrom(r, 'pinhole_io_packets_total', 'Packets through the TUN device and the UDP socket', ['device', 'direction'], () => {
    const { tun, udp } = status().io;
    return [[{ device: 'tun', direction: 'rx' }, tun.rxPackets], [{ device: 'tun', direction: 'tx' }, tun.txPackets],
      [{ device: 'udp', direction: 'rx' }, udp.rxPackets], [{ device: 'udp', direction: 'tx' }, udp.txPackets]];
  });
  counterFrom(r, 'pinhole_io_errors_total', 'Errors of the TUN device and the UDP socket', ['device', 'direction'], () => {
    const { tun, udp } = status().io;
    return [[{ device: 'tun', direction: 'rx' }, tun.rxErrors], [{ device: 'tun', direction: 'tx' }, tun.txErrors],
      [{ device: 'udp', direction: 'rx' }, udp.rxErrors], [{ device: 'udp', direction: 'tx' }, udp.txErrors]];
  });
  counterFrom(r, 'pinhole_datapath_packets_total', 'Packets handled in the native data path, or left to JavaScript', ['engine', 'direction'], () => {
    const d = status().dataPath;
    return [[{ engine: 'native', direction: 'tx' }, d.nativeTx], [{ engine: 'native', direction: 'rx' }, d.nativeRx],
      [{ engine: 'js', direction: 'tx' }, d.leftToJsOut], [{ engine: 'js', direction: 'rx' }, d.leftToJsIn]];
  });
  gaugeFrom(r, 'pinhole_agent_relay_connected', 'Connected to the relay (1) or not (0), by relay name', ['relay', 'home'], () =>
    (status().relays ?? []).map((x) => [{ relay: x.name, home: x.home ? 'true' : 'false' }, x.connected ? 1 : 0] as const));
  gaugeFrom(r, 'pinhole_nat_type', 'NAT behaviour (RFC 4787) from the last `pinhole netcheck`: 1 on the reported one; "unknown" before any run', ['mapping', 'filtering'], () => {
    const n = src.netcheck();
    return [[{ mapping: n?.mapping ?? 'unknown', filtering: n?.filtering ?? 'unknown' }, 1]];
  });
  gaugeFrom(r, 'pinhole_nat_report_age_seconds', 'Seconds since the netcheck behind pinhole_nat_type ran (absent: none ran)', [], () => {
    const n = src.netcheck();
    return n ? one(Math.max(0, (Date.now() - Date.parse(n.startedAt)) / 1000)) : [];
  });
  gaugeFrom(r, 'pinhole_portmap_active', 'The gateway holds a port mapping for the agent\'s UDP port (UPnP, NAT-PMP or PCP): 1, else 0', [], () => one(status().portmap?.mapping ? 1 : 0));

  return {
    registry: r,
    onPathEvent(e) {
      (e.kind === 'direct' ? toDirect : firstPacket).observe(e.seconds);
    },
  };
}
