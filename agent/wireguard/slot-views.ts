// Cached Buffer views over a packet slab, so that the per-packet crypto calls (which take views,
// not offsets) allocate nothing in steady state. A view is cached per (slot, length) for lengths
// that are a multiple of 16 — every padded WireGuard payload is — and made on demand otherwise.

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
    this.units = Math.floor((slotSize - start) / 16) + 1;
    this.cache = new Array<Buffer | undefined>(slots * this.units).fill(undefined);
  }

  view(slot: number, len: number): Buffer {
    const base = slot * this.slotSize + this.start;
    if ((len & 15) !== 0) return this.slab.subarray(base, base + len);
    const key = slot * this.units + (len >>> 4);
    let v = this.cache[key];
    if (v === undefined) {
      v = this.slab.subarray(base, base + len);
      this.cache[key] = v;
    }
    return v;
  }
}
