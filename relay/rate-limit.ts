// Per-client token bucket over bytes received. The relay does not drop over-rate traffic: it stops
// reading that client's socket until the bucket has refilled, so TCP pushes back on the sender.

export interface TokenBucketOptions {
  /** Sustained rate in bytes per second; 0 = unlimited. */
  bytesPerSec: number;
  /** Bytes that may arrive at once after an idle period. */
  burstBytes: number;
  now?: () => number;
}

export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly now: () => number;

  constructor(private readonly opts: TokenBucketOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.tokens = opts.burstBytes;
    this.last = this.now();
  }

  get unlimited(): boolean {
    return this.opts.bytesPerSec <= 0;
  }

  /**
   * Takes n bytes (the balance may go negative: the bytes have already arrived) and returns how
   * many milliseconds the caller should wait before reading more; 0 = within the rate.
   */
  take(n: number): number {
    if (this.unlimited) return 0;
    const t = this.now();
    this.tokens = Math.min(this.opts.burstBytes, this.tokens + ((t - this.last) * this.opts.bytesPerSec) / 1000);
    this.last = t;
    this.tokens -= n;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.opts.bytesPerSec;
  }
}
