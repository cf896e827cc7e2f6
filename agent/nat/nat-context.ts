// What the NAT's protocol engines share: limits, counters, the writer toward the overlay, the
// per-peer table and the clock.
import type { NatCounters } from './counters.js';
import type { NatLimits } from './nat-limits.js';
import type { OverlayWriter } from './overlay-writer.js';
import type { PeerTable } from './peer-table.js';

export interface NatLog {
  debug(msg: string): void;
  warn(msg: string): void;
}

export interface NatContext {
  readonly limits: NatLimits;
  readonly counters: NatCounters;
  readonly writer: OverlayWriter;
  readonly peers: PeerTable;
  readonly log: NatLog;
  /** Monotonic milliseconds. */
  now(): number;
}
