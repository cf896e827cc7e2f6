// An ICMP echo socket for the userspace NAT (native addon): the unprivileged ping socket where
// net.ipv4.ping_group_range allows our group, else a raw socket (root). Received messages
// arrive in batches in a slab, each starting at its ICMP type byte, with the sender in rx.addrs.
import { BatchHandle } from './batch-handle.js';
import { loadNative, type NativeIcmp } from './native.js';
import { PacketSlab } from './packet-slab.js';
import type { ErrorHandler, PacketsHandler } from './tun-device.js';

export class IcmpOpenError extends Error {
  override readonly name = 'IcmpOpenError';
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

export interface IcmpSocketOptions {
  family: 4 | 6;
  /** Messages per batch = slots in the receive slab (default 16). */
  batch?: number;
  /** Largest message received; larger ones are dropped and counted (default 1500). */
  maxMessage?: number;
  bufferBytes?: number;
  onPackets?: PacketsHandler;
  onError?: ErrorHandler;
}

export class IcmpSocket extends BatchHandle<NativeIcmp> {
  onPackets: PacketsHandler;
  onError: ErrorHandler;
  readonly rx: PacketSlab;

  private constructor(native: NativeIcmp, options: IcmpSocketOptions) {
    super(native);
    this.onPackets = options.onPackets ?? (() => {});
    this.onError = options.onError ?? ((err) => { throw err; });
    this.rx = new PacketSlab({ slots: options.batch ?? 16, packetSize: options.maxMessage ?? 1500, headroom: 0, tailroom: 0 });
    const rx = this.rx;
    native.setReceiver(
      rx.buffer, rx.slotSize, rx.headroom, rx.tailroom, rx.slots, rx.lengths, rx.addrs,
      (count) => this.onPackets(count, rx),
      (err) => this.onError(err),
    );
  }

  /** Opens the socket and starts receiving. Throws IcmpOpenError when neither kind is permitted. */
  static open(options: IcmpSocketOptions): IcmpSocket {
    let native: NativeIcmp;
    try {
      native = new (loadNative().Icmp)(options.family, options.bufferBytes ?? 1 << 20);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.name === 'NativeAddonMissingError') throw e;
      throw new IcmpOpenError(e.message, e.code ?? 'ERR_ICMP_OPEN');
    }
    try {
      return new IcmpSocket(native, options);
    } catch (err) {
      native.close();
      throw err;
    }
  }

  /** 'dgram' (ping socket: the kernel owns the echo identifier) or 'raw'. */
  get kind(): 'dgram' | 'raw' {
    return this.native.kind;
  }

  get family(): 4 | 6 {
    return this.native.family;
  }

  /** The identifier a ping socket puts in every echo request it sends (0 for a raw socket). */
  get ident(): number {
    return this.native.ident;
  }

  /** Sends an ICMP message (from the type byte) to a packed address (port 0); false if not sent. */
  send(message: Uint8Array, addr: Uint8Array): boolean {
    return this.native.send(message, addr);
  }
}
