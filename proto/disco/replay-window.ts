// The receiver's half of disco replay protection: one window per sender over the sent-at values
// inside its boxes (see messages.ts). Pure state, time passed in.
//
// A sent-at is accepted once, if all of:
//  - it is within MAX_CLOCK_SKEW_MS of our clock (a capture from long ago, or a forged far-future
//    value that would push the window ahead, is refused even right after we restart);
//  - it is not more than REORDER_US behind the newest value accepted from this sender (UDP and the
//    relay may reorder a little; nothing honest arrives a minute late);
//  - it was not accepted before (the set of values accepted inside the reorder span, bounded; when
//    it is full the oldest leaves and becomes the floor, so the set never forgets a replay).

/** How far a sender's clock may be from ours. Wide: an honest peer with a bad clock loses direct paths, not the relay. */
export const MAX_CLOCK_SKEW_MS = 10 * 60_000;
/** How far behind the newest accepted value a late packet may be. */
export const REORDER_US = 10_000_000;
/** Values remembered inside the reorder span (a peer sends a few disco packets a second). */
export const MAX_REMEMBERED = 256;

export type ReplayVerdict = 'ok' | 'replayed' | 'stale';

export class DiscoReplayWindow {
  /** Newest accepted sent-at; 0 before the first. */
  private newest = 0;
  /** Nothing at or below this is accepted (raised as remembered values are let go). */
  private floor = 0;
  private readonly seen = new Set<number>();

  /**
   * Checks sentAt (µs) at our time nowMs and, if it passes, records it.
   * 'stale': outside the clock skew or the reorder span; 'replayed': seen already or below the floor.
   */
  accept(sentAt: number, nowMs: number): ReplayVerdict {
    if (Math.abs(sentAt / 1000 - nowMs) > MAX_CLOCK_SKEW_MS) return 'stale';
    if (sentAt <= this.floor || this.seen.has(sentAt)) return 'replayed';
    if (sentAt < this.newest - REORDER_US) return 'stale';
    this.seen.add(sentAt);
    if (sentAt > this.newest) {
      this.newest = sentAt;
      this.raiseFloor(this.newest - REORDER_US);
    }
    if (this.seen.size > MAX_REMEMBERED) {
      let min = Infinity;
      for (const v of this.seen) if (v < min) min = v;
      this.raiseFloor(min);
    }
    return 'ok';
  }

  /** Forgets every value at or below f: from now on they are refused by the floor instead. */
  private raiseFloor(f: number): void {
    if (f <= this.floor) return;
    this.floor = f;
    for (const v of this.seen) if (v <= f) this.seen.delete(v);
  }
}
