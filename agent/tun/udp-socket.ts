// The magic socket's transport: one UDP socket with batched receive (recvmmsg) and send
// (sendmmsg) through preallocated slabs (native addon).
import { isIPv4 } from 'node:net';
import type { BusyPoll } from './busy-poll.js';
import { BatchHandle } from './batch-handle.js';
import { UDP_NO_GRO, UDP_NO_GSO, loadNative, type NativeUdp } from './native.js';
import { DEFAULT_BATCH, type ErrorHandler, type PacketsHandler } from './tun-device.js';
import { PacketSlab } from './packet-slab.js';
import { decodePackedAddr, encodePackedAddr, type DecodedEndpoint, type Endpoint } from './packed-addr.js';

/** Socket buffer size asked for (SO_RCVBUFFORCE as root, else capped by net.core.rmem_max). */
export const DEFAULT_SOCKET_BUFFER = 7 << 20;
/** Largest datagram received by default: an IPv6 path MTU of 1500 fits with room to spare. */
export const DEFAULT_MAX_DATAGRAM = 2048 - 64;

export class UdpBindError extends Error {
  override readonly name = 'UdpBindError';
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

export interface BatchUdpSocketOptions {
  /** Local port; 0 (default) picks an ephemeral one. */
  port?: number;
  /** Local address to bind; default the wildcard address. */
  address?: string;
  /** 'dual' (default): IPv6 socket that also carries IPv4, falling back to IPv4 only. */
  family?: 4 | 6 | 'dual';
  /** Datagrams per batch = slots in the receive slab (default 64). */
  batch?: number;
  /** Largest datagram received; larger ones are dropped and counted (default 1984). */
  maxDatagram?: number;
  /** Free bytes before/after each received datagram (default 0 / 0). */
  headroom?: number;
  tailroom?: number;
  bufferBytes?: number;
  /** Send runs of equal-sized datagrams to one address as one UDP GSO message (default true). */
  gso?: boolean;
  /** Let the kernel coalesce received datagrams (UDP GRO); split again here (default true). */
  gro?: boolean;
  /** SO_MARK on every datagram sent (socket-mark.ts); default none. Needs CAP_NET_ADMIN. */
  mark?: number;
  /** Keep the event loop polling for a while after each small batch (busy-poll.ts). */
  busyPoll?: BusyPoll;
  onPackets?: PacketsHandler;
  onError?: ErrorHandler;
}

export class BatchUdpSocket extends BatchHandle<NativeUdp> {
  /** Handler for each received batch: rx.addrs holds each datagram's source address. */
  onPackets: PacketsHandler;
  onError: ErrorHandler;
  readonly rx: PacketSlab;

  private constructor(native: NativeUdp, options: BatchUdpSocketOptions) {
    super(native);
    this.onPackets = options.onPackets ?? (() => {});
    this.onError = options.onError ?? ((err) => { throw err; });
    this.rx = new PacketSlab({
      slots: options.batch ?? DEFAULT_BATCH,
      packetSize: options.maxDatagram ?? DEFAULT_MAX_DATAGRAM,
      headroom: options.headroom ?? 0,
      tailroom: options.tailroom ?? 0,
    });
    const rx = this.rx;
    native.setReceiver(
      rx.buffer, rx.slotSize, rx.headroom, rx.tailroom, rx.slots, rx.lengths, rx.addrs,
      (count) => this.onPackets(count, rx),
      (err) => this.onError(err),
    );
    if (options.busyPoll) native.setBusyPoll(options.busyPoll.native);
  }

  /** Opens and binds the socket and starts receiving. Throws UdpBindError on failure. */
  static open(options: BatchUdpSocketOptions = {}): BatchUdpSocket {
    const port = options.port ?? 0;
    // "::" without family 6 is the dual-stack wildcard, not an IPv6-only socket.
    const wildcard = options.address === undefined || (options.address === '::' && options.family !== 6);
    const bind = wildcard ? null : encodePackedAddr({ address: options.address!, port });
    const family = options.family === 4 ? 4 : options.family === 6 ? 6 : 0;
    if (bind && options.family !== undefined && options.family !== 'dual' && (bind[0] === 4) !== (options.family === 4))
      throw new UdpBindError(`address ${options.address} is not an IPv${options.family} address`, 'ERR_INVALID_ARG_VALUE');
    if (bind && options.family === 'dual' && isIPv4(options.address!))
      throw new UdpBindError(`a dual-stack socket cannot bind the IPv4 address ${options.address}`, 'ERR_INVALID_ARG_VALUE');
    let native: NativeUdp;
    try {
      const flags = (options.gso === false ? UDP_NO_GSO : 0) | (options.gro === false ? UDP_NO_GRO : 0);
      native = new (loadNative().Udp)(family, bind, port, options.bufferBytes ?? DEFAULT_SOCKET_BUFFER, flags, options.mark ?? 0);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.name === 'NativeAddonMissingError') throw e;
      throw new UdpBindError(e.message, e.code ?? 'ERR_UDP_BIND');
    }
    try {
      return new BatchUdpSocket(native, options);
    } catch (err) {
      native.close();
      throw err;
    }
  }

  get port(): number {
    return decodePackedAddr(this.native.localAddress).port;
  }

  /** The socket's family: 6 for a dual-stack socket. */
  get family(): 4 | 6 {
    return this.native.family;
  }

  get dualStack(): boolean {
    return this.native.dualStack;
  }

  /** Whether UDP GSO / GRO are in use (the kernel has them and options did not turn them off). */
  get offloads(): { gso: boolean; gro: boolean } {
    return { gso: this.native.gso, gro: this.native.gro };
  }

  localAddress(): DecodedEndpoint {
    return decodePackedAddr(this.native.localAddress);
  }


  /**
   * Sends datagram i = slab[offsets[i] .. +lengths[i]) to the packed address addrs[i*20 ..]
   * with sendmmsg, in one syscall per 64 packets. Consecutive datagrams to the same address
   * with equal lengths (the last of a run may be shorter) leave as one UDP GSO message.
   * Returns how many were sent; when the socket buffer is full the rest are dropped
   * (txDrops), refused ones are counted (txErrors). Never throws per packet.
   */
  sendBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, addrs: Uint8Array, count: number): number {
    return this.native.sendBatch(slab, offsets, lengths, addrs, count);
  }

  /** Sends one datagram (handshake, disco, STUN) to a packed address; false if not sent. */
  send(packet: Uint8Array, addr: Uint8Array): boolean {
    return this.native.send(packet, addr);
  }

  /** send() with a textual endpoint; encodes the address, so only for slow paths. */
  sendTo(packet: Uint8Array, to: Endpoint): boolean {
    return this.native.send(packet, encodePackedAddr(to));
  }
}

