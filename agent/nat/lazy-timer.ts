// A one-shot timer whose deadline can move on every ACK without touching Node's timer list:
// the Node timer is only replaced when it would fire too late; firing early just re-arms it
// for the remainder. Unref'd: flows never keep the process alive by themselves.

export class LazyTimer {
  private timer: NodeJS.Timeout | null = null;
  private timerAt = 0;
  private deadline = 0;

  constructor(private readonly now: () => number, private readonly onExpire: () => void) {}

  get armed(): boolean {
    return this.deadline !== 0;
  }

  /** Expires `ms` from now (replacing any earlier deadline); ms <= 0 stops it. */
  set(ms: number): void {
    if (ms <= 0) {
      this.deadline = 0;
      return;
    }
    this.deadline = this.now() + ms;
    if (this.timer && this.timerAt <= this.deadline) return; // fires early, re-arms then
    if (this.timer) clearTimeout(this.timer);
    this.schedule(ms);
  }

  /** Stops it and releases the Node timer. */
  dispose(): void {
    this.deadline = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    this.timerAt = this.deadline;
    this.timer = setTimeout(this.fire, ms);
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = null;
    if (this.deadline === 0) return;
    const left = this.deadline - this.now();
    if (left > 1) {
      this.schedule(left);
      return;
    }
    this.deadline = 0;
    this.onExpire();
  };
}
