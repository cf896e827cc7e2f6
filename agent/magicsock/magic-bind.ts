// The device's PacketBind in managed mode: datagrams to UDP addresses go out of the batch UDP
// socket unchanged; datagrams to relay addresses (path-addr.ts) go to the peer's relay, and to
// birthday addresses out of their birthday socket. The common case (no relayed packet in the
// batch) costs one addrKind() per packet.
import type { PacketBind } from '../wireguard/context.js';
import type { BatchUdpSocket } from '../tun/udp-socket.js';
import { PACKED_ADDR_SIZE as ADDR_LEN } from '../tun/packed-addr.js';
import { addrKind, relayAddrPeerId } from './path-addr.js';

/** The part of the batch UDP socket the bind sends through. */
export type BindUdp = Pick<BatchUdpSocket, 'send' | 'sendBatch'>;

/** Sends one packet to a peer through its relay; false if it could not be queued. */
export type RelaySend = (peerId: number, packet: Uint8Array) => boolean;
/** Sends one packet from a birthday socket (path-addr.ts BIRTHDAY_FAMILY); false if it could not. */
export type SideSend = (addr: Uint8Array, packet: Uint8Array) => boolean;

export class MagicBind implements PacketBind {
  private offsets: Uint32Array;
  private lengths: Uint32Array;
  private addrs: Uint8Array;

  /** `sideSend`: packets to birthday addresses (they go out in JS, through the birthday sockets). */
  constructor(private readonly udp: BindUdp, private readonly relaySend: RelaySend, private readonly sideSend: SideSend, batch = 64) {
    this.offsets = new Uint32Array(batch);
    this.lengths = new Uint32Array(batch);
    this.addrs = new Uint8Array(batch * ADDR_LEN);
  }

  send(buf: Uint8Array, addr: Uint8Array): boolean {
    if (addrKind(addr) !== 'udp') return this.sendSpecial(buf, addr, 0);
    return this.udp.send(buf, addr);
  }

  sendBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, addrs: Uint8Array, count: number): number {
    let special = 0;
    for (let i = 0; i < count; i++) if (addrKind(addrs, i * ADDR_LEN) !== 'udp') special++;
    if (special === 0) return this.udp.sendBatch(slab, offsets, lengths, addrs, count);
    if (count > this.offsets.length) this.grow(count);
    let n = 0;
    let sent = 0;
    for (let i = 0; i < count; i++) {
      const a = i * ADDR_LEN;
      if (addrKind(addrs, a) !== 'udp') {
        if (this.sendSpecial(slab.subarray(offsets[i]!, offsets[i]! + lengths[i]!), addrs, a)) sent++;
        continue;
      }
      this.offsets[n] = offsets[i]!;
      this.lengths[n] = lengths[i]!;
      this.addrs.set(addrs.subarray(a, a + ADDR_LEN), n * ADDR_LEN);
      n++;
    }
    if (n > 0) sent += this.udp.sendBatch(slab, this.offsets, this.lengths, this.addrs, n);
    return sent;
  }

  private sendSpecial(buf: Uint8Array, addrs: Uint8Array, off: number): boolean {
    const kind = addrKind(addrs, off);
    if (kind === 'relay') return this.relaySend(relayAddrPeerId(addrs, off), buf);
    return kind === 'birthday' && this.sideSend(off === 0 && addrs.length === ADDR_LEN ? addrs : addrs.subarray(off, off + ADDR_LEN), buf);
  }

  private grow(count: number): void {
    this.offsets = new Uint32Array(count);
    this.lengths = new Uint32Array(count);
    this.addrs = new Uint8Array(count * ADDR_LEN);
  }
}
