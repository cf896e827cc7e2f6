// A bounded table of recent flows for the stateful packet filter: open addressing over typed
// arrays, so a lookup or insert allocates nothing. Entries expire by time; no deletion is needed.
// A key hashes to a window of PROBE consecutive slots: a lookup scans the window, an insert takes
// the matching, the first expired, or else the oldest slot of the window (counted as an eviction),
// so memory is fixed and a flood of new flows can only push out the oldest ones.
//
// Key layout, `words` 32-bit words: [tag, local address (1 or 4 words), remote address, ports].
// The caller fills `key` (a scratch array) and calls lookup/insert.

const PROBE = 8;

export interface FlowTableCounters {
  inserts: number;
  evictions: number;
}

export class FlowTable {
  /** Scratch key the caller fills before lookup/insert. */
  readonly key: Int32Array;
  private readonly keys: Int32Array;
  private readonly expiry: Float64Array;
  /** Filter generation that admitted the entry (0: tracked outbound flow, valid in every generation). */
  private readonly generation: Uint32Array;
  private readonly mask: number;
  readonly counters: FlowTableCounters = { inserts: 0, evictions: 0 };

  /** `capacity` is rounded up to a power of two; `words` per key (4 for IPv4, 10 for IPv6). */
  constructor(capacity: number, readonly words: number) {
    let size = PROBE;
    while (size < capacity) size *= 2;
    this.mask = size - 1;
    this.key = new Int32Array(words);
    this.keys = new Int32Array(size * words);
    this.expiry = new Float64Array(size);
    this.generation = new Uint32Array(size);
  }

  get capacity(): number {
    return this.mask + 1;
  }

  /** The arrays themselves, for the native data path to share (it looks up and refreshes, never inserts). */
  shared(): { keys: Int32Array; expiry: Float64Array; generation: Uint32Array } {
    return { keys: this.keys, expiry: this.expiry, generation: this.generation };
  }

  /** Live entries (a scan: for status, not the data path). */
  size(now: number, generation: number): number {
    let n = 0;
    for (let s = 0; s <= this.mask; s++) if (this.live(s, now, generation)) n++;
    return n;
  }

  private hash(): number {
    const k = this.key;
    let h = 0x811c9dc5 | 0;
    for (let i = 0; i < this.words; i++) {
      h = Math.imul(h ^ k[i]!, 0x01000193);
      h ^= h >>> 15;
    }
    return Math.imul(h ^ (h >>> 13), 0x5bd1e995) & this.mask;
  }

  private matches(slot: number): boolean {
    const k = this.key;
    const w = this.words;
    const base = slot * w;
    for (let i = 0; i < w; i++) if (this.keys[base + i] !== k[i]) return false;
    return true;
  }

  private live(slot: number, now: number, generation: number): boolean {
    if (this.expiry[slot]! <= now) return false;
    const g = this.generation[slot]!;
    return g === 0 || g === generation;
  }

  /** True if the key is present, unexpired and of this generation (or an outbound one); refreshes it to `until`. */
  lookup(now: number, generation: number, until: number): boolean {
    const start = this.hash();
    for (let i = 0; i < PROBE; i++) {
      const s = (start + i) & this.mask;
      if (this.live(s, now, generation) && this.matches(s)) {
        if (this.expiry[s]! < until) this.expiry[s] = until;
        return true;
      }
    }
    return false;
  }

  /** Adds or refreshes the key until `until`; generation 0 marks an outbound flow. */
  insert(now: number, generation: number, until: number): void {
    const start = this.hash();
    let free = -1;
    let oldest = start;
    for (let i = 0; i < PROBE; i++) {
      const s = (start + i) & this.mask;
      if (this.matches(s)) {
        if (this.expiry[s]! > now) {
          if (this.expiry[s]! < until) this.expiry[s] = until;
          // An outbound sighting makes the entry valid in every generation.
          if (generation === 0) this.generation[s] = 0;
          else if (this.generation[s] !== 0) this.generation[s] = generation;
          return;
        }
        free = s;
        break;
      }
      if (free < 0 && !this.live(s, now, generation)) free = s;
      if (this.expiry[s]! < this.expiry[oldest]!) oldest = s;
    }
    let slot = free;
    if (slot < 0) {
      slot = oldest;
      this.counters.evictions++;
    }
    this.keys.set(this.key, slot * this.words);
    this.expiry[slot] = until;
    this.generation[slot] = generation;
    this.counters.inserts++;
  }

  clear(): void {
    this.expiry.fill(0);
  }
}
