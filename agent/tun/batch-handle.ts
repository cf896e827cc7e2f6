// What a TUN device and a batch UDP socket have in common: a native handle that delivers packet
// batches, can be paused, (un)ref'd, joined to a busy-poll group, counted and closed.
import type { BusyPoll } from './busy-poll.js';
import type { NativeCounters, NativeIoHandle } from './native.js';

export abstract class BatchHandle<N extends NativeIoHandle> {
  private closedFlag = false;

  protected constructor(protected readonly native: N) {}

  /** @internal the addon handle, for the native data path (agent/wireguard/fast-path.ts). */
  get handle(): N {
    return this.native;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Joins a busy-poll group, leaving the previous one; null leaves. */
  setBusyPoll(group: BusyPoll | null): void {
    this.native.setBusyPoll(group?.native ?? null);
  }

  /** Stops reading (backpressure) until resume(). */
  pause(): void {
    this.native.pause();
  }

  resume(): void {
    this.native.resume();
  }

  /** An open handle keeps the process alive; unref() lets it exit anyway. */
  ref(): void {
    this.native.ref();
  }

  unref(): void {
    this.native.unref();
  }

  counters(): NativeCounters {
    return this.native.counters();
  }

  /** Closes the fd; no callback fires after. Safe to call twice. */
  close(): void {
    this.closedFlag = true;
    this.native.close();
  }
}
