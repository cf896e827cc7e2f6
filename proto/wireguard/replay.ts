// Sliding-window replay filter for transport-data counters (WireGuard paper §5.4.6, RFC 6479),
// laid out like wireguard-go's: a ring of 32-bit words, one bit per counter, advanced by whole
// words so moving the window costs at most one pass over the ring.

/** Bits per ring word (log2 and value). */
const WORD_BITS_LOG = 5;
const WORD_BITS = 1 << WORD_BITS_LOG;
/** Words in the ring: 256 × 32 = 8192 bits, the same 8 KiB-bit ring as wireguard-go. */
const RING_WORDS = 256;
const RING_MASK = RING_WORDS - 1;
const BIT_MASK = WORD_BITS - 1;

/**
 * How far behind the highest counter seen a counter may be and still be accepted.
 * One word of the ring always holds the "current" block, so the usable window is one word short.
 */
export const REPLAY_WINDOW_SIZE = (RING_WORDS - 1) * WORD_BITS; // 8160

/**
 * Counters at or above this are rejected (exclusive limit).
 * The paper's REJECT_AFTER_MESSAGES is 2^64 − 2^13 − 1, which no JS number holds exactly; we keep
 * counters as numbers and so stop at 2^53, the first integer past Number.MAX_SAFE_INTEGER. That is
 * still ~28 years at 10 Mpps, and REKEY_AFTER_TIME (120 s) replaces a session long before.
 * Any 64-bit counter read as hi·2^32 + lo that is really ≥ 2^53 also rounds to ≥ 2^53, so it is
 * rejected rather than aliased onto a smaller counter.
 */
export const COUNTER_LIMIT = 2 ** 53;

/** Bytes of the state a window can live in: f64 slot (unused by the window), f64 last, ring. */
export const REPLAY_STATE_BYTES = 16 + RING_WORDS * 4;

export class ReplayWindow {
  /** Bit (counter mod 8192) is set iff that counter was accepted while inside the window. */
  private readonly ring: Uint32Array;
  /** [1]: highest counter accepted so far (0 before any, which is harmless: counter 0 is unmarked). */
  private readonly st: Float64Array;

  /**
   * `state`: where the window lives, REPLAY_STATE_BYTES from an 8-aligned offset of an
   * ArrayBuffer (a keypair shares it with the native data path, agent/tun/src/fast_data.c).
   */
  constructor(state: ArrayBuffer = new ArrayBuffer(REPLAY_STATE_BYTES), offset = 0) {
    this.st = new Float64Array(state, offset, 2);
    this.ring = new Uint32Array(state, offset + 16, RING_WORDS);
  }

  private get last(): number {
    return this.st[1]!;
  }

  private set last(v: number) {
    this.st[1] = v;
  }

  /** Forgets everything; used when a keypair's receive state starts afresh. */
  reset(): void {
    this.ring.fill(0);
    this.last = 0;
  }

  /**
   * Call after the packet authenticated. Returns false for a duplicate, a counter too far behind
   * the window, or one outside [0, limit); otherwise marks it and returns true.
   * `limit` (exclusive, like wireguard-go's ValidateCounter) is capped at COUNTER_LIMIT.
   */
  accept(counter: number, limit: number = COUNTER_LIMIT): boolean {
    // Written as a negated range test so NaN and non-integers fall out too.
    if (!(counter >= 0 && counter < limit && counter < COUNTER_LIMIT)) return false;
    if (Math.floor(counter) !== counter) return false;
    const ring = this.ring;
    // Division, not >>>, because counters go past 2^32; `&` is exact for safe integers (ToInt32).
    const block = Math.floor(counter / WORD_BITS);
    if (counter > this.last) {
      const current = Math.floor(this.last / WORD_BITS);
      const diff = block - current;
      if (diff >= RING_WORDS) {
        ring.fill(0); // jumped past the whole ring: nothing in it is inside the window any more
      } else {
        for (let i = current + 1; i <= block; i++) ring[i & RING_MASK] = 0;
      }
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW_SIZE) {
      return false;
    }
    const index = block & RING_MASK;
    const bit = (1 << (counter & BIT_MASK)) >>> 0;
    const old = ring[index];
    if ((old & bit) !== 0) return false;
    ring[index] = old | bit;
    return true;
  }
}
