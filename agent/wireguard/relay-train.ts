// Relay trains. Through a relay every WireGuard message is a frame the relay parses, queues and
// forwards, and on each agent a crypto call and a frame of its own: per-packet costs that a
// direct path pays in the addon, in batches. So, to a peer that said it accepts them (disco
// 'features', FEATURE_RELAY_TRAINS), the packets of one TUN batch that go to that peer through a
// relay leave as one message whose plaintext is the packets back to back: a train, up to
// TRAIN_MAX_PLAINTEXT bytes. A train is an ordinary transport message (one counter, one tag);
// the receiver (TransportReceiver with trains on, for relayed messages only) walks it by each IP
// packet's own length and checks every packet as if it had come alone: valid IP, source in the
// peer's allowed IPs, destination this node's (or a route it serves), the packet filter. Zero
// bytes after the last packet are WireGuard's padding. A train of one packet is a plain message.
import { MAX_PACKET_LEN } from '../../proto/relay/frames.js';
import { MAX_RUN_PACKET } from '../../proto/relay/mesh-frames.js';
import { TAG_LEN, TRANSPORT_HEADER_LEN } from '../../proto/wireguard/constants.js';
import type { Keypair } from '../../proto/wireguard/keypair.js';
import type { Peer } from './peer.js';

/**
 * The most plaintext a train carries: sealed (header, padding to 16, tag) it still fits one relay
 * packet and one run of the relay mesh.
 */
export const TRAIN_MAX_PLAINTEXT = (Math.min(MAX_PACKET_LEN, MAX_RUN_PACKET) - TRANSPORT_HEADER_LEN - TAG_LEN - 15) & ~15;

/** Views over one buffer for the crypto calls: made per train (one allocation per ~45 packets). */
export interface CryptoViews {
  view(slot: number, len: number): Buffer;
}

/** The train being filled for one peer: its packets sit at buf[TRANSPORT_HEADER_LEN, +len). */
export class RelayTrain implements CryptoViews {
  readonly buf = Buffer.alloc(TRANSPORT_HEADER_LEN + TRAIN_MAX_PLAINTEXT + 16 + TAG_LEN);
  peer: Peer | undefined;
  keypair: Keypair | undefined;
  len = 0;
  count = 0;

  /** Room for `len` more bytes of the same peer and session? */
  fits(peer: Peer, keypair: Keypair, len: number): boolean {
    return this.count === 0 || (this.peer === peer && this.keypair === keypair && this.len + len <= TRAIN_MAX_PLAINTEXT);
  }

  add(peer: Peer, keypair: Keypair, slab: Buffer, off: number, len: number): void {
    this.peer = peer;
    this.keypair = keypair;
    slab.copy(this.buf, TRANSPORT_HEADER_LEN + this.len, off, off + len);
    this.len += len;
    this.count++;
  }

  reset(): void {
    this.peer = undefined;
    this.keypair = undefined;
    this.len = 0;
    this.count = 0;
  }

  view(_slot: number, len: number): Buffer {
    return this.buf.subarray(TRANSPORT_HEADER_LEN, TRANSPORT_HEADER_LEN + len);
  }
}
