// What the magic socket knows of one peer: identity (node key, disco key and the box key shared
// with it), its relay, its path state, and the WireGuard peer the path is applied to.
import { discoSharedKey } from '../../proto/disco/messages.js';
import { DiscoReplayWindow } from '../../proto/disco/replay-window.js';
import type { Peer } from '../wireguard/peer.js';
import { relayAddr } from './path-addr.js';
import { PeerPath } from './peer-path.js';

export class DiscoPeer {
  readonly path = new PeerPath();
  /** Sent-at values seen from this peer's disco key (replaced with the key). */
  replay = new DiscoReplayWindow();
  readonly relayAddr: Uint8Array;
  sharedKey: Uint8Array;
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
    this.discoKeyB64 = Buffer.from(discoKey).toString('base64');
    this.sharedKey = discoSharedKey(discoKey, discoSecret);
    this.name = name;
  }

  setDiscoKey(discoKey: Uint8Array, discoSecret: Uint8Array): void {
    this.discoKeyB64 = Buffer.from(discoKey).toString('base64');
    this.sharedKey = discoSharedKey(discoKey, discoSecret);
    this.replay = new DiscoReplayWindow();
  }
}
