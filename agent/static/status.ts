// What `pinhole status --json` returns. The per-peer fields are the contract in design.md
// (name, overlay ip, path, endpoint, relay region, latency, rx/tx bytes, last handshake).
import type { DropCounters, HandshakeCounters } from '../wireguard/counters.js';

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

export interface AgentStatus {
  mode: 'static' | 'managed';
  interface: { name: string; publicKey: string; listenPort: number; addresses: string[]; mtu: number };
  peers: PeerStatusJson[];
  drops: DropCounters;
  handshakes: HandshakeCounters;
  io: { tun: IoCountersJson; udp: IoCountersJson };
}
