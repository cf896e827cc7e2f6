// What `pinhole status --json` returns. The per-peer fields are the contract in design.md
// (name, overlay ip, path, endpoint, relay region, latency, rx/tx bytes, last handshake).
import type { DropCounters, HandshakeCounters, TrainCounters } from '../wireguard/counters.js';
import type { RoutingStatusJson } from '../daemon/node-routing.js';
import type { DnsStatusJson } from '../dns/magic-dns.js';
import type { PortmapStatusJson } from '../portmap/portmapper.js';
import type { PeerNatJson } from '../magicsock/magic-socket.js';
import type { PeerBirthdayJson } from '../magicsock/birthday.js';

export interface PeerStatusJson {
  name: string | null;
  publicKey: string;
  overlayIp: string | null;
  path: 'direct' | 'relay' | 'none';
  endpoint: string | null;
  relay: string | null;
  latencyMs: number | null;
  rxBytes: number;
  txBytes: number;
  lastHandshake: string | null;
  allowedIps: string[];
  persistentKeepalive: number;
  /** The peer said it accepts relay trains (docs/relay.md); always false in static mode. */
  relayTrains: boolean;
  /** Managed mode: the peer's node id, IPv6 overlay address, and whether the coordinator sees it online. */
  nodeId?: number;
  overlayIpv6?: string | null;
  online?: boolean;
  /** Managed mode while up: why the path is not direct (one line; null when direct) and what was tried. */
  whyNotDirect?: string | null;
  tried?: { candidates: number; pingsSent: number; pongsReceived: number };
  /** Seconds since traffic or disco last went to or came from the peer. */
  idleSeconds?: number;
  /** Managed mode while up: both NAT kinds (the peer's as it reported it, else as its pings showed it). */
  nat?: PeerNatJson;
  /** Managed mode while up: birthday probing toward the peer (null: never tried). */
  birthday?: PeerBirthdayJson | null;
}

export interface IoCountersJson {
  rxPackets: number;
  txPackets: number;
  rxDrops: number;
  txDrops: number;
  rxErrors: number;
  txErrors: number;
  meanRxBatch: number;
}

/** The native data path's share of the traffic (agent/wireguard/fast-path.ts). */
export interface DataPathJson {
  /** False when PINHOLE_FASTPATH=0 keeps every packet in JS. */
  native: boolean;
  /** Packets encrypted and sent / received and decrypted by the addon without entering JS. */
  nativeTx: number;
  nativeRx: number;
  /** Packets the addon left to JS: no session yet, timers due, relay paths, hooks, handshakes, disco. */
  leftToJsOut: number;
  leftToJsIn: number;
  /** Packets of known packet-filter flows the addon passed itself, each way (0 without a filter). */
  nativeFlowOut: number;
  nativeFlowIn: number;
  /** Decrypted packets the addon handed back to JS: new flows for the filter, packets for served routes. */
  handedBackToJs: number;
  /** TUN offloads in use ("" when off, PINHOLE_TUN_OFFLOAD=0) and what they did. */
  tunOffloads: string;
  tunGso: { superIn: number; segmentsIn: number; badSuper: number; groWrites: number; groPackets: number };
}

/** Managed mode: who this node is to the coordinator, and the state of its connection. */
export interface ManagedSelfJson {
  /** logged-out: no registration; down: registered, tunnel down; up: tunnel up (see `connected`). */
  state: 'logged-out' | 'down' | 'up';
  id: number | null;
  name: string | null;
  ipv4: string | null;
  ipv6: string | null;
  nodeKey: string;
  discoKey: string;
  coordinator: string | null;
  /** Fingerprint of the pinned coordinator key. */
  coordinatorKey?: string | null;
  /** The coordinator answering at `coordinator` does not hold the pinned key (tunnels keep the last netmap). */
  coordinatorKeyMismatch?: boolean;
  /** The control stream is up and has delivered a netmap. */
  connected: boolean;
  /** The coordinator URL the stream uses (with several replicas in `coordinator`: which one). */
  coordinatorConnectedUrl?: string | null;
  keyExpiresAt: string | null;
  netmapSeq: number | null;
  lastError: string | null;
}

export interface ControlStatusJson {
  connectedSince: string | null;
  /** Connection attempts since the stream was (re)started. */
  attempts: number;
  netmaps: number;
  deltas: number;
  /** Inbound control messages dropped as malformed or out of order. */
  malformed: number;
  /** Endpoints last reported to the coordinator. */
  endpoints: string[];
}

export interface AgentStatus {
  mode: 'static' | 'managed';
  /** While a managed node is down: the TUN it would use, no addresses, listenPort 0. */
  interface: { name: string; publicKey: string; listenPort: number; addresses: string[]; mtu: number };
  peers: PeerStatusJson[];
  drops: DropCounters;
  handshakes: HandshakeCounters;
  /** Relay trains sent and received (agent/wireguard/relay-train.ts); zero in static mode. */
  trains: TrainCounters;
  io: { tun: IoCountersJson; udp: IoCountersJson };
  dataPath: DataPathJson;
  /** Managed mode only. */
  self?: ManagedSelfJson;
  /** Managed mode: routes offered and used, the packet filter's and the userspace NAT's counters. */
  routing?: RoutingStatusJson;
  /** Managed mode: the relay map as this node sees it (connected, home, latency). */
  /** refused: why this agent will not use the relay (e.g. "key mismatch: …"), else null. */
  relays?: { name: string; url: string; connected: boolean; home: boolean; latencyMs: number | null; framesIn: number; framesOut: number; sendDrops: number; pendingBytes?: number; refused: string | null }[];
  /** Managed mode: disco and relay counters of the magic socket. */
  magicsock?: Record<string, number>;
  /** Managed mode while up: the gateway's port mapping and its lease; null when turned off (--no-portmap). */
  portmap?: PortmapStatusJson | null;
  /** Managed mode while up: birthday probing (hard NAT × easy NAT): attempts, successes, packets, sockets. */
  birthday?: Record<string, number | null>;
  control?: ControlStatusJson;
  /** Managed mode: MagicDNS (domain, how the OS uses it, counters incl. malformed queries dropped). */
  dns?: DnsStatusJson;
}
