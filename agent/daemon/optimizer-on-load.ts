// V8's optimizing compiler (TurboFan) only for an agent that is busy (docs/protocol.md, "At idle:
// timers and memory"). bin/pinhole starts the agent with `--no-turbofan`: an idle agent runs its
// JavaScript in the interpreter and the baseline compiler, which is plenty for timers and control
// messages. Left on, TurboFan compiled a handful of start-up loops (zod building its schemas, the
// x25519 of the disco keys) and the idle agent then held the compiler's code pages and zones for
// good: about 5 MB of its RSS. Once the tunnel moves packets through JavaScript in earnest, or
// bulk traffic through a relay, TurboFan is turned on for the rest of the process.
import { setFlagsFromString } from 'node:v8';
import type { Logger } from 'pino';

/** The tunnel's batches (each one call from the native side into JavaScript) in one look. */
export const BUSY_WINDOW_BATCHES = 256;
/** ...arriving within this long of each other... */
export const BUSY_WINDOW_MS = 2_000;
/** ...while the process used at least this share of a core: busy. */
export const BUSY_CPU_SHARE = 0.1;

export interface OptimizerClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** CPU time of the process (user + system), microseconds. */
  cpuMicros(): number;
}

const PROCESS_CLOCK: OptimizerClock = {
  now: () => performance.now(),
  cpuMicros: () => { const u = process.cpuUsage(); return u.user + u.system; },
};

export interface OptimizerOnLoadOptions {
  log: Pick<Logger, 'info'>;
  env?: NodeJS.ProcessEnv;
  clock?: OptimizerClock;
  /** Turns the compiler on (tests pass a spy). */
  enable?: () => void;
  /**
   * Also called once when the agent becomes busy, PINHOLE_V8_FLAGS or not: the daemon moves its
   * bulk crypto to sodium-native then (agent/tun/addon-sodium.ts, sodiumWhenBusy).
   */
  onBusy?: () => string;
}

export class OptimizerOnLoad {
  private readonly clock: OptimizerClock;
  private readonly enable: () => void;
  private readonly log: Pick<Logger, 'info'>;
  /** Busy was seen (it is seen once). */
  private settled = false;
  /** V8's flags are not ours to change (PINHOLE_V8_FLAGS: the user chose them). */
  private readonly userFlags: boolean;
  private readonly onBusy: (() => string) | undefined;
  private enabled = false;
  private batches = 0;
  private windowAt: number;
  private windowCpu: number;

  constructor(opts: OptimizerOnLoadOptions) {
    this.clock = opts.clock ?? PROCESS_CLOCK;
    this.enable = opts.enable ?? (() => setFlagsFromString('--turbofan'));
    this.log = opts.log;
    this.userFlags = (opts.env ?? process.env).PINHOLE_V8_FLAGS !== undefined;
    this.onBusy = opts.onBusy;
    // Nothing to do when busy: no need to watch for it.
    this.settled = this.userFlags && !this.onBusy;
    this.windowAt = this.clock.now();
    this.windowCpu = this.clock.cpuMicros();
  }

  /** TurboFan was turned on by this switch. */
  get on(): boolean {
    return this.enabled;
  }

  /** The device's onBatch: one call per batch the native side hands to JavaScript. Cheap. */
  readonly noteBatch = (): void => {
    if (this.settled || ++this.batches < BUSY_WINDOW_BATCHES) return;
    const now = this.clock.now();
    const cpu = this.clock.cpuMicros();
    const ms = now - this.windowAt;
    const share = ms > 0 ? (cpu - this.windowCpu) / 1000 / ms : 0;
    if (ms <= BUSY_WINDOW_MS && share >= BUSY_CPU_SHARE) {
      this.turnOn(`${BUSY_WINDOW_BATCHES} packet batches in ${ms.toFixed(0)} ms at ${(share * 100).toFixed(0)}% of a core`);
      return;
    }
    this.batches = 0;
    this.windowAt = now;
    this.windowCpu = cpu;
  };

  /** The magic socket's onBulkRelay: bulk traffic through a relay is busy by definition. */
  readonly noteBulkRelay = (): void => {
    if (!this.settled) this.turnOn('bulk traffic through a relay');
  };

  private turnOn(why: string): void {
    this.settled = true;
    const done: string[] = [];
    if (!this.userFlags) {
      this.enabled = true;
      this.enable();
      done.push('V8\'s optimizing compiler on');
    }
    if (this.onBusy) done.push(this.onBusy());
    this.log.info(`busy (${why}): ${done.join(', ')} for this process (docs/protocol.md, "At idle")`);
  }
}
