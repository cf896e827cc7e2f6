// Preallocated packet buffers shared with the native addon: the hot path allocates nothing.
import { PACKED_ADDR_SIZE } from './packed-addr.js';

/** Bytes before each packet: room to prepend the 16-byte WireGuard data header in place. */
export const DEFAULT_HEADROOM = 16;
/** Bytes after each packet: ChaCha20-Poly1305 padding (<= 15) + the 16-byte tag. */
export const DEFAULT_TAILROOM = 32;
const SLOT_ALIGN = 64;

export interface PacketSlabOptions {
  /** Number of slots = the largest batch (default 64). */
  slots?: number;
  /** Largest packet a slot receives (e.g. the TUN MTU). */
  packetSize: number;
  headroom?: number;
  tailroom?: number;
}

/**
 * Slab layout (one Buffer, `slots` slots of `slotSize` bytes, slotSize a multiple of 64):
 *
 *   slot i:  | headroom | packet (<= packetSize bytes)        | tailroom + alignment |
 *            ^ i*slotSize ^ offsets[i] = i*slotSize + headroom          ^ (i+1)*slotSize
 *
 *   lengths[i]               length of the packet in slot i (set by the addon on receive,
 *                            by JS before a send)
 *   addrs[i*20 .. i*20+20]   endpoint of packet i in the packed format of packed-addr.ts
 *                            (UDP source on receive, destination on send; unused for TUN)
 *
 * The addon receives packet i at offsets[i] and never past offsets[i] + packetSize. JS may
 * process in place (e.g. encrypt and write the header at offsets[i] - 16) and pass its own
 * offsets/lengths arrays to writeBatch/sendBatch. Never transfer or detach `buffer`: the addon
 * keeps a raw pointer to it.
 */
export class PacketSlab {
  readonly buffer: Buffer;
  readonly slots: number;
  readonly slotSize: number;
  readonly headroom: number;
  readonly tailroom: number;
  /** Bytes a slot can receive. */
  readonly packetSize: number;
  readonly lengths: Uint32Array;
  /** Constant start of the packet in each slot: i * slotSize + headroom. */
  readonly offsets: Uint32Array;
  readonly addrs: Uint8Array;

  constructor(options: PacketSlabOptions) {
    const slots = options.slots ?? 64;
    const headroom = options.headroom ?? DEFAULT_HEADROOM;
    const tailroom = options.tailroom ?? DEFAULT_TAILROOM;
    if (!Number.isInteger(slots) || slots < 1 || slots > 1024) throw new RangeError('slots must be 1..1024');
    if (!Number.isInteger(options.packetSize) || options.packetSize < 1 || options.packetSize > 65535)
      throw new RangeError('packetSize must be 1..65535');
    if (!Number.isInteger(headroom) || headroom < 0 || !Number.isInteger(tailroom) || tailroom < 0)
      throw new RangeError('headroom and tailroom must be non-negative integers');
    const needed = headroom + options.packetSize + tailroom;
    this.slotSize = Math.ceil(needed / SLOT_ALIGN) * SLOT_ALIGN;
    this.slots = slots;
    this.headroom = headroom;
    this.packetSize = options.packetSize;
    this.tailroom = this.slotSize - headroom - options.packetSize;
    this.buffer = Buffer.alloc(slots * this.slotSize);
    this.lengths = new Uint32Array(slots);
    this.offsets = new Uint32Array(slots);
    for (let i = 0; i < slots; i++) this.offsets[i] = i * this.slotSize + headroom;
    this.addrs = new Uint8Array(slots * PACKED_ADDR_SIZE);
  }

  /** A view of packet i (allocates a Buffer view: for tests and slow paths, not per packet). */
  packet(i: number): Buffer {
    const start = this.offsets[i]!;
    return this.buffer.subarray(start, start + this.lengths[i]!);
  }

  /** A view of the packed address of packet i (allocates a view). */
  addr(i: number): Uint8Array {
    return this.addrs.subarray(i * PACKED_ADDR_SIZE, (i + 1) * PACKED_ADDR_SIZE);
  }
}
