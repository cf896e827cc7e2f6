// Keepalive rounds spread over their interval. Members are dealt into slots and one slot is
// visited per tick, so each member is still visited once per interval while a tick touches only
// a slice of them. One loop over every stream at once stalled the event loop: 50,000 pings, each
// sealed and written, held every netmap change waiting behind them for seconds.
export interface WheelMember {
  /** The slot this member was dealt into (set by the wheel). */
  wheelSlot: number;
}

/** Ticks at least this far apart; and at most this many slots. */
const MIN_TICK_MS = 100;
const MAX_SLOTS = 600;

export class KeepaliveWheel<T extends WheelMember> {
  private readonly slots: Set<T>[];
  private readonly timer: NodeJS.Timeout;
  private dealt = 0;
  private cursor = 0;

  constructor(intervalMs: number, private readonly visit: (member: T) => void) {
    const n = Math.max(1, Math.min(MAX_SLOTS, Math.floor(intervalMs / MIN_TICK_MS)));
    this.slots = Array.from({ length: n }, () => new Set<T>());
    this.timer = setInterval(() => this.tick(), intervalMs / n);
    this.timer.unref();
  }

  get size(): number { return this.slots.reduce((sum, s) => sum + s.size, 0); }

  add(member: T): void {
    member.wheelSlot = this.dealt++ % this.slots.length;
    this.slots[member.wheelSlot]!.add(member);
  }

  delete(member: T): void {
    this.slots[member.wheelSlot]?.delete(member);
  }

  forEach(f: (member: T) => void): void {
    for (const slot of this.slots) for (const m of slot) f(m);
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Visits the next slot (the timer calls this; tests may too). */
  tick(): void {
    const slot = this.slots[this.cursor]!;
    this.cursor = (this.cursor + 1) % this.slots.length;
    for (const m of slot) this.visit(m);
  }
}
