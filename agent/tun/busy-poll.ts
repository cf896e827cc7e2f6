// Busy polling for latency: a group of handles (a device's TUN and UDP socket) after whose small
// deliveries the event loop polls instead of sleeping, for a short budget (agent/tun/src/busy_poll.h).
import { loadNative, type NativeBusyPoll } from './native.js';

/**
 * Budget of a group created without one: covers a reply crossing one veth from a peer that
 * itself wakes from idle (~250 µs on a 2-vCPU VM), so the reply finds this loop still polling.
 */
export const DEFAULT_BUSY_POLL_MICROS = 300;
/** Smoothed packets per wake-up above which traffic counts as bulk and the loop never spins. */
export const DEFAULT_BUSY_POLL_SMALL_BATCH = 8;
/** Largest budget accepted (100 ms); beyond a few ms busy polling only burns CPU. */
export const MAX_BUSY_POLL_MICROS = 100_000;

export interface BusyPollOptions {
  /** Time the loop keeps polling after the last small delivery; 0 never spins (default 300). */
  micros?: number;
  /** Packets per wake-up (smoothed) above which the group stops spinning (default 8). */
  smallBatch?: number;
}

export interface BusyPollCounters {
  /** Times the loop was kept hot after a delivery. */
  windows: number;
  /** Deliveries that found the loop already hot: wake-ups from idle saved. */
  hotWakes: number;
  /** Total time spent polling, in µs (the CPU cost). */
  hotMicros: number;
  /** Windows cut short because other tasks shared the CPU (the group then backs off 20 ms .. 1 s). */
  contended: number;
  /** True while the loop is being kept hot. */
  spinning: boolean;
}

/**
 * Members join with TunDevice/BatchUdpSocket `busyPoll` (option or setBusyPoll()). While hot, the
 * loop polls every fd with timeout 0 and sched_yield()s between polls; it goes back to sleeping
 * `micros` after the last small delivery, at once in bulk mode or when a yield shows the CPU is
 * shared (then backing off), when the last member closes, or on close(). An idle group costs
 * nothing. It can only help where a core would otherwise sit idle between request and reply.
 */
export class BusyPoll {
  private constructor(
    /** @internal the addon's handle, passed to members' setBusyPoll */
    readonly native: NativeBusyPoll,
    readonly micros: number,
  ) {}

  static create(options: BusyPollOptions = {}): BusyPoll {
    const micros = options.micros ?? DEFAULT_BUSY_POLL_MICROS;
    const smallBatch = options.smallBatch ?? DEFAULT_BUSY_POLL_SMALL_BATCH;
    if (!Number.isInteger(micros) || micros < 0 || micros > MAX_BUSY_POLL_MICROS)
      throw new RangeError(`busy poll budget must be 0..${MAX_BUSY_POLL_MICROS} µs, got ${micros}`);
    if (!Number.isInteger(smallBatch) || smallBatch < 1 || smallBatch > 1024)
      throw new RangeError(`smallBatch must be 1..1024, got ${smallBatch}`);
    return new BusyPoll(new (loadNative().BusyPoll)(micros, smallBatch), micros);
  }

  counters(): BusyPollCounters {
    return this.native.counters();
  }

  /** Stops spinning for good; members keep working and simply sleep in epoll. */
  close(): void {
    this.native.close();
  }
}

export class BusyPollConfigError extends Error {
  override readonly name = 'BusyPollConfigError';
}

/**
 * Budget from an environment variable such as PINHOLE_BUSY_POLL_US: an integer number of µs,
 * "0" disables; unset or empty gives `fallback`, 0 (off) unless told otherwise. Off by default
 * because on a shared 2-vCPU machine it did not lower the median ping RTT and lengthened its
 * tail (a loop that yields waits out other tasks' time slices; a woken one preempts them).
 */
export function busyPollMicrosFromEnv(value: string | undefined, fallback = 0): number {
  if (value === undefined || value.trim() === '') return fallback;
  const micros = Number(value);
  if (!Number.isInteger(micros) || micros < 0 || micros > MAX_BUSY_POLL_MICROS)
    throw new BusyPollConfigError(`PINHOLE_BUSY_POLL_US must be an integer 0..${MAX_BUSY_POLL_MICROS} (µs), got "${value}"`);
  return micros;
}
