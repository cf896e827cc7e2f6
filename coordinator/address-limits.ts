// Per-source-address token buckets (handshakes, registrations): bounded in the number of
// addresses tracked, so a flood from many addresses costs memory up to the cap and no further.

export interface RateOptions {
  /** Events per second, sustained. */
  perSecond: number;
  /** Events allowed at once after a quiet period. */
  burst: number;
  /** Addresses tracked at most; the least recently seen is forgotten first. */
  maxAddresses?: number;
  now?: () => number;
}

interface Bucket { tokens: number; last: number }

export class AddressRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly max: number;
  private readonly now: () => number;

  constructor(private readonly opts: RateOptions) {
    this.max = opts.maxAddresses ?? 65_536;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Takes one event for `address`: 0 when allowed, else the milliseconds until one would be. */
  take(address: string): number {
    const t = this.now();
    let b = this.buckets.get(address);
    if (b) {
      this.buckets.delete(address); // re-insert: Map order is recency
      b.tokens = Math.min(this.opts.burst, b.tokens + ((t - b.last) * this.opts.perSecond) / 1000);
      b.last = t;
    } else {
      if (this.buckets.size >= this.max) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: this.opts.burst, last: t };
    }
    this.buckets.set(address, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) * 1000) / this.opts.perSecond);
  }

  get size(): number { return this.buckets.size; }
}

/** Counts open things per address (unauthenticated connections), with a global and a per-address cap. */
export class AddressCounter {
  private readonly counts = new Map<string, number>();
  private total = 0;

  constructor(readonly maxTotal: number, readonly maxPerAddress: number) {}

  /** Takes a slot, or says which cap is full. */
  acquire(address: string): 'ok' | 'total' | 'address' {
    if (this.total >= this.maxTotal) return 'total';
    const n = this.counts.get(address) ?? 0;
    if (n >= this.maxPerAddress) return 'address';
    this.counts.set(address, n + 1);
    this.total++;
    return 'ok';
  }

  release(address: string): void {
    const n = this.counts.get(address);
    if (n === undefined) return;
    if (n <= 1) this.counts.delete(address);
    else this.counts.set(address, n - 1);
    this.total--;
  }

  get size(): number { return this.total; }
}
