// What the magic socket knows of one peer: identity (node key, disco key and the box key shared
// with it), its relay, its path state, and the WireGuard peer the path is applied to.
import { discoSharedKey } from './disco-key.js';
import { DiscoReplayWindow } from '../../proto/disco/replay-window.js';
import type { Peer } from '../wireguard/peer.js';
import type { NatKind } from '../netcheck/nat-type.js';
import { packedText } from './path-addr.js';
import { relayAddr } from './path-addr.js';
import { PeerPath } from './peer-path.js';

export class DiscoPeer {
  readonly path = new PeerPath();
  /** Sent-at values seen from this peer's disco key (replaced with the key). */
  replay = new DiscoReplayWindow();
  readonly relayAddr: Uint8Array;
  sharedKey: Uint8Array;
  /** false when the peer's disco key is of low order (disco-key.ts): nothing is sent to it or accepted from it. */
  discoUsable: boolean;
  discoKeyB64: string;
  name: string;
  homeRelay: string | null = null;
  /** The relay the current path goes through (null while direct or without relays). */
  relayInUse: string | null = null;
  lastTx = 0;
  lastRx = 0;
  lastSourceCheckAt = 0;
  /** When this peer joined the magic socket (ms), and whether its first packet / first direct path were reported. */
  addedAt = 0;
  firstPacketSeen = false;
  firstDirectSeen = false;
  /** Endpoints the netmap listed for the peer, and why each refused one was (candidate-filter.ts). */
  netmapEndpoints = 0;
  netmapRefused: string[] = [];
  /** The coordinator sees the peer online (its netmap record). */
  online = true;
  /** The peer's NAT as its pings showed it (null: unknown). */
  peerNat: NatKind | null = null;
  /** The peer's NAT as it reported it to the coordinator (its netmap record; null: not reported). */
  reportedNat: NatKind | null = null;
  /** Our disco 'features' went to this disco key (else the peer's own features are answered with ours). */
  featuresSent = false;

  constructor(
    readonly id: number,
    readonly nodeKey: Uint8Array,
    readonly nodeKeyB64: string,
    discoKey: Uint8Array,
    discoSecret: Uint8Array,
    readonly wg: Peer,
    name: string,
  ) {
    this.relayAddr = relayAddr(id);
    wg.relayTrains = false; // until this disco key says otherwise (setDiscoKey)
    this.discoKeyB64 = Buffer.from(discoKey).toString('base64');
    ({ key: this.sharedKey, usable: this.discoUsable } = discoSharedKey(discoKey, discoSecret));
    this.name = name;
  }

  /**
   * A disco ping from the peer came from `from` (packed UDP address): from an address the netmap
   * lists with another port, its NAT gave us a mapping of its own (symmetric: endpoint-dependent).
   */
  notePingFrom(from: Uint8Array): void {
    if (this.peerNat === 'symmetric') return;
    const text = packedText(from);
    const ip = text.slice(0, text.lastIndexOf(':'));
    let sameIp = false;
    for (const c of this.path.candidates.values()) {
      if (c.source !== 'netmap') continue;
      if (c.text === text) return;
      if (c.text.slice(0, c.text.lastIndexOf(':')) === ip) sameIp = true;
    }
    if (sameIp) this.peerNat = 'symmetric';
  }

  /** The peer's NAT for decisions and "why not direct": what it reported, else what its pings showed. */
  nat(): { kind: NatKind | null; source: 'reported' | 'inferred' | null } {
    if (this.reportedNat !== null) return { kind: this.reportedNat, source: 'reported' };
    if (this.peerNat !== null) return { kind: this.peerNat, source: 'inferred' };
    return { kind: null, source: null };
  }

  setDiscoKey(discoKey: Uint8Array, discoSecret: Uint8Array): void {
    this.discoKeyB64 = Buffer.from(discoKey).toString('base64');
    ({ key: this.sharedKey, usable: this.discoUsable } = discoSharedKey(discoKey, discoSecret));
    this.replay = new DiscoReplayWindow();
    // A new disco key is a restarted peer, perhaps another version: it says again what it accepts.
    this.featuresSent = false;
    this.wg.relayTrains = false;
  }
}
