// Single-use, short-lived challenges that registration proofs must cover, so a captured
// registration cannot be replayed. Kept in memory only: a restart simply invalidates them.
import { randomBytes } from 'node:crypto';

/** Outstanding challenges beyond this evict the oldest (bounds memory under a flood of GETs). */
const MAX_OUTSTANDING = 100_000;

export class Challenges {
  /** challenge → expiry (ms); Map order is issue order, so the oldest come first. */
  private readonly open = new Map<string, number>();

  constructor(private readonly ttlMs: number, private readonly now: () => number = Date.now) {}

  issue(): { challenge: string; expiresAt: number } {
    this.sweep();
    if (this.open.size >= MAX_OUTSTANDING) {
      const oldest = this.open.keys().next().value;
      if (oldest !== undefined) this.open.delete(oldest);
    }
    const challenge = randomBytes(24).toString('base64url');
    const expiresAt = this.now() + this.ttlMs;
    this.open.set(challenge, expiresAt);
    return { challenge, expiresAt };
  }

  /** True once per issued, unexpired challenge; the challenge is gone afterwards either way. */
  consume(challenge: string): boolean {
    const expiresAt = this.open.get(challenge);
    if (expiresAt === undefined) return false;
    this.open.delete(challenge);
    return expiresAt > this.now();
  }

  private sweep(): void {
    const now = this.now();
    for (const [c, exp] of this.open) {
      if (exp > now) break; // issue order = expiry order (one ttl for all)
      this.open.delete(c);
    }
  }
}
