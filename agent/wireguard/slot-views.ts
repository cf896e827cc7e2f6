// Cached Buffer views over a packet slab, so that the per-packet crypto calls (which take views,
// not offsets) allocate nothing in steady state. A view is cached per (slot, length) for lengths
// that are a multiple of 16 — every padded WireGuard payload is — up to MAX_CACHED_LEN, and made
// on demand otherwise (a relay train's slots are 64 KiB: caching every length would hold 4,096
// views per slot).

/** Longest view cached: past any packet of an MTU up to jumbo frames (9,000). */
const MAX_CACHED_LEN = 9216;

export class SlotViews {
  private readonly cache: Array<Buffer | undefined>;
  private readonly units: number;

  constructor(
    private readonly slab: Buffer,
    private readonly slotSize: number,
    /** Where views start inside a slot. */
    private readonly start: number,
    slots: number,
  ) {
    this.units = Math.floor(Math.min(slotSize - start, MAX_CACHED_LEN) / 16) + 1;
    this.cache = new Array<Buffer | undefined>(slots * this.units).fill(undefined);
  }

  view(slot: number, len: number): Buffer {
    const base = slot * this.slotSize + this.start;
    if ((len & 15) !== 0 || len > MAX_CACHED_LEN) return this.slab.subarray(base, base + len);
    const key = slot * this.units + (len >>> 4);
    let v = this.cache[key];
    if (v === undefined) {
      v = this.slab.subarray(base, base + len);
      this.cache[key] = v;
    }
    return v;
  }
}
