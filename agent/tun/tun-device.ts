// A TUN device whose packets move in batches through a preallocated slab (native addon).
import type { BusyPoll } from './busy-poll.js';
import { setMtu, type IpOptions } from './iface.js';
import { BatchHandle } from './batch-handle.js';
import { loadNative, type NativeTun, type TunOffloadCounters } from './native.js';
import { DEFAULT_HEADROOM, DEFAULT_TAILROOM, PacketSlab } from './packet-slab.js';

/** WireGuard's usual inner MTU: 1500 minus IPv6 (40) + UDP (8) + WireGuard (32) overhead. */
export const DEFAULT_TUN_MTU = 1420;
export const DEFAULT_BATCH = 64;

/** Called once per batch: packets 0..count-1 are in rx (slab.packet(i), or offsets/lengths). */
export type PacketsHandler = (count: number, rx: PacketSlab) => void;
export type ErrorHandler = (err: Error) => void;

export class TunOpenError extends Error {
  override readonly name = 'TunOpenError';
  constructor(message: string, readonly code: string) {
    super(message);
  }
}

export interface TunDeviceOptions extends IpOptions {
  /** Interface name (<= 15 chars); empty or absent lets the kernel pick tunN. */
  name?: string;
  /** Interface MTU, also the largest packet a slot receives (default 1420). */
  mtu?: number;
  /** Packets per batch = slots in the receive slab (default 64). */
  batch?: number;
  /** Free bytes before each received packet (default 16, one WireGuard data header). */
  headroom?: number;
  /** Free bytes after each received packet (default 32: padding + Poly1305 tag). */
  tailroom?: number;
  /** Keep the event loop polling for a while after each small batch (busy-poll.ts). */
  busyPoll?: BusyPoll;
  /**
   * TUN offloads: the kernel hands over 64 KB TCP/UDP super packets that the addon cuts into
   * MTU-sized packets, and consecutive TCP segments are written back glued (GRO). Default false.
   */
  offload?: boolean;
  onPackets?: PacketsHandler;
  onError?: ErrorHandler;
}

export class TunDevice extends BatchHandle<NativeTun> {
  /** Handler for each received batch; packets not handled are dropped. */
  onPackets: PacketsHandler;
  /** Called when the device fails for good (e.g. deleted underneath); throws by default. */
  onError: ErrorHandler;
  readonly rx: PacketSlab;

  private constructor(native: NativeTun, readonly mtu: number, options: TunDeviceOptions) {
    super(native);
    this.onPackets = options.onPackets ?? (() => {});
    this.onError = options.onError ?? ((err) => { throw err; });
    this.rx = new PacketSlab({
      slots: options.batch ?? DEFAULT_BATCH,
      packetSize: mtu,
      headroom: options.headroom ?? DEFAULT_HEADROOM,
      tailroom: options.tailroom ?? DEFAULT_TAILROOM,
    });
    const rx = this.rx;
    native.setReceiver(
      rx.buffer, rx.slotSize, rx.headroom, rx.tailroom, rx.slots, rx.lengths, null,
      (count) => this.onPackets(count, rx),
      (err) => this.onError(err),
    );
    if (options.busyPoll) native.setBusyPoll(options.busyPoll.native);
  }

  /** Creates (or attaches to) the TUN device, sets its MTU and starts reading. */
  static async open(options: TunDeviceOptions = {}): Promise<TunDevice> {
    options.signal?.throwIfAborted();
    const mtu = options.mtu ?? DEFAULT_TUN_MTU;
    if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new RangeError(`invalid MTU ${mtu}`);
    let native: NativeTun;
    try {
      native = new (loadNative().Tun)(options.name ?? '', options.offload ?? false);
    } catch (err) {
      const e = err as Error & { code?: string };
      if (e.name === 'NativeAddonMissingError') throw e;
      throw new TunOpenError(e.message, e.code ?? 'ERR_TUN_OPEN');
    }
    try {
      await setMtu(native.name, mtu, options);
      return new TunDevice(native, mtu, options);
    } catch (err) {
      native.close();
      throw err;
    }
  }

  /** The interface name the kernel gave the device. */
  get name(): string {
    return this.native.name;
  }

  /** The offloads in use ("" without). */
  get offloads(): string {
    return this.native.offloads;
  }

  offloadCounters(): TunOffloadCounters {
    return this.native.offloadCounters();
  }


  /**
   * Writes packets to the kernel, one write() each (TUN has no batched write): packet i is
   * slab[offsets[i] .. offsets[i] + lengths[i]). Returns how many were written; the rest are
   * counted as txDrops (queue full) or txErrors (e.g. not an IP packet). Never throws per packet.
   */
  writeBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number {
    return this.native.writeBatch(slab, offsets, lengths, count);
  }
}

