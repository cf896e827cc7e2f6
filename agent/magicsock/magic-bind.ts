// The device's PacketBind in managed mode: datagrams to UDP addresses go out of the batch UDP
// socket unchanged; datagrams to relay addresses (path-addr.ts) go to the peer's relay. The
// common case (no relayed packet in the batch) costs one byte compare per packet.
import type { PacketBind } from '../wireguard/context.js';
import type { BatchUdpSocket } from '../tun/udp-socket.js';
import { PACKED_ADDR_SIZE as ADDR_LEN } from '../tun/packed-addr.js';
import { RELAY_FAMILY, relayAddrPeerId } from './path-addr.js';

/** Sends one packet to a peer through its relay; false if it could not be queued. */
export type RelaySend = (peerId: number, packet: Uint8Array) => boolean;

export class MagicBind implements PacketBind {
  private offsets: Uint32Array;
  private lengths: Uint32Array;
  private addrs: Uint8Array;

  constructor(private readonly udp: BatchUdpSocket, private readonly relaySend: RelaySend, batch = 64) {
    this.offsets = new Uint32Array(batch);
    this.lengths = new Uint32Array(batch);
    this.addrs = new Uint8Array(batch * ADDR_LEN);
  }

  send(buf: Uint8Array, addr: Uint8Array): boolean {
    if (addr[0] === RELAY_FAMILY) return this.relaySend(relayAddrPeerId(addr), buf);
    return this.udp.send(buf, addr);
  }

  sendBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, addrs: Uint8Array, count: number): number {
    let relayed = 0;
    for (let i = 0; i < count; i++) if (addrs[i * ADDR_LEN] === RELAY_FAMILY) relayed++;
    if (relayed === 0) return this.udp.sendBatch(slab, offsets, lengths, addrs, count);
    if (count > this.offsets.length) this.grow(count);
    let n = 0;
    let sent = 0;
    for (let i = 0; i < count; i++) {
      const a = i * ADDR_LEN;
      if (addrs[a] === RELAY_FAMILY) {
        if (this.relaySend(relayAddrPeerId(addrs, a), slab.subarray(offsets[i]!, offsets[i]! + lengths[i]!))) sent++;
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

  private grow(count: number): void {
    this.offsets = new Uint32Array(count);
    this.lengths = new Uint32Array(count);
    this.addrs = new Uint8Array(count * ADDR_LEN);
  }
}
