// Per-peer (overlay source address) accounting: how many flows of each kind a peer holds and a
// token bucket for new TCP flows. Looked up only when a flow is created, never per data packet.
import { formatAddress } from '../../proto/ip/address.js';
import { copyBytes } from '../../proto/bytes.js';

export class PeerState {
  tcp = 0;
  tcpConnecting = 0;
  udp = 0;
  icmp = 0;
  synTokens: number;
  synRefilledAt: number;
  /** Last time a flow of this peer was created or removed (for forgetting idle peers). */
  touchedAt: number;

  constructor(readonly key: string, readonly address: Uint8Array, burst: number, now: number) {
    this.synTokens = burst;
    this.synRefilledAt = now;
    this.touchedAt = now;
  }

  get flows(): number {
    return this.tcp + this.udp + this.icmp;
  }

  /** Takes one token for a new TCP flow; false when the peer is over its SYN rate. */
  takeSynToken(ratePerSecond: number, burst: number, now: number): boolean {
    const elapsed = now - this.synRefilledAt;
    if (elapsed > 0) {
      this.synTokens = Math.min(burst, this.synTokens + (elapsed * ratePerSecond) / 1000);
      this.synRefilledAt = now;
    }
    if (this.synTokens < 1) return false;
    this.synTokens -= 1;
    return true;
  }
}

export class PeerTable {
  private readonly peers = new Map<string, PeerState>();

  constructor(private readonly maxPeers: number, private readonly synBurst: number) {}

  get size(): number {
    return this.peers.size;
  }

  /** The state of the peer whose address is buf[off, off+len); null when the table is full. */
  get(buf: Uint8Array, off: number, len: number, now: number): PeerState | null {
    const address = copyBytes(buf, off, off + len);
    const key = formatAddress(address);
    let peer = this.peers.get(key);
    if (!peer) {
      if (this.peers.size >= this.maxPeers) {
        this.forgetIdle(now, 0);
        if (this.peers.size >= this.maxPeers) return null;
      }
      peer = new PeerState(key, address, this.synBurst, now);
      this.peers.set(key, peer);
    }
    peer.touchedAt = now;
    return peer;
  }

  /** Drops peers without flows untouched for minIdleMs (their SYN bucket has refilled by then). */
  forgetIdle(now: number, minIdleMs: number): void {
    for (const [key, peer] of this.peers) {
      if (peer.flows === 0 && now - peer.touchedAt >= minIdleMs) this.peers.delete(key);
    }
  }
}
