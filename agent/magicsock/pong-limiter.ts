// How many pongs we send toward addresses that are not a confirmed path of the peer (a ping from
// a new source: a NAT that rebound, or a spoofed copy). Token buckets per address and one for all
// such addresses together, so no source, however many it names, turns us into a reflector.
// Pure state, time passed in.

/** Per unconfirmed address: a burst of PER_ADDR_BURST, then PER_ADDR_PER_SEC. */
export const PER_ADDR_BURST = 5;
export const PER_ADDR_PER_SEC = 2;
/** All unconfirmed addresses together. */
export const GLOBAL_BURST = 200;
export const GLOBAL_PER_SEC = 100;
/** Addresses tracked at once; the least recently seen go first (a fresh one starts with a full burst, bounded by the global bucket). */
export const MAX_TRACKED = 1024;

interface Bucket {
  tokens: number;
  at: number;
}

export class PongLimiter {
  private readonly perAddr = new Map<string, Bucket>();
  private readonly global: Bucket = { tokens: GLOBAL_BURST, at: 0 };

  /** True if a pong to `addr` (any stable text or hex key) may go now; takes a token from both buckets. */
  allow(addr: string, nowMs: number): boolean {
    refill(this.global, nowMs, GLOBAL_BURST, GLOBAL_PER_SEC);
    let b = this.perAddr.get(addr);
    if (b) {
      this.perAddr.delete(addr); // re-insert: the map's order is least recently seen first
      refill(b, nowMs, PER_ADDR_BURST, PER_ADDR_PER_SEC);
    } else {
      b = { tokens: PER_ADDR_BURST, at: nowMs };
      if (this.perAddr.size >= MAX_TRACKED) this.perAddr.delete(this.perAddr.keys().next().value!);
    }
    this.perAddr.set(addr, b);
    if (b.tokens < 1 || this.global.tokens < 1) return false;
    b.tokens -= 1;
    this.global.tokens -= 1;
    return true;
  }

  get tracked(): number {
    return this.perAddr.size;
  }
}

function refill(b: Bucket, nowMs: number, burst: number, perSec: number): void {
  if (nowMs > b.at) b.tokens = Math.min(burst, b.tokens + ((nowMs - b.at) / 1000) * perSec);
  b.at = nowMs;
}
