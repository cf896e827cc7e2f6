// The agent's path table for the coordinator's live mesh ({type:'paths'} on the control stream,
// when the netmap's serverCapabilities lists 'path-reports'). Each report is the whole table (the
// coordinator keeps only the latest), sent:
//  - when something a viewer sees changed: a peer's path kind, relay, endpoint, "why not direct"
//    (its seconds aside), latency moving by more than LATENCY_RATIO and LATENCY_MIN_MS, a peer
//    added or gone, this node's NAT type;
//  - coalesced: never sooner than minIntervalMs after the previous one (changes meanwhile go out
//    together at that moment);
//  - at least every refreshMs while there are peers (the coordinator's view recovers from a lost
//    message), and in full at once when the stream (re)connects (enable()).
// Changes are found by poke() (the magic socket saw a path change) and by a slow poll (latency and
// reasons move without an event). At most maxPeers peers: the ones idle the longest are left out.
import { Endpoint, MAX_PATH_REPORT_PEERS, PATH_REPORT_MIN_INTERVAL_MS, type PeerPathReport, type StreamPaths } from '../../proto/control/schemas.js';
import type { PeerPathRow } from '../magicsock/magic-socket.js';

/** A latency change is reported when it moves by more than this fraction... */
export const LATENCY_RATIO = 0.2;
/** ...and by more than this many ms (sub-ms lab jitter is not news). */
export const LATENCY_MIN_MS = 5;
export const REFRESH_MS = 30_000;
export const POLL_MS = 1000;
/**
 * The poll while every peer is quiet. Paths move only with an event (poke) then, but a reason can
 * still change without one (pings found unanswered after the traffic stopped): 30 s, the refresh's
 * interval, was tried on 2026-12-07 and the lab test saw "pings unanswered" reported too late.
 */
export const QUIET_POLL_MS = 10_000;

export interface PathTable {
  natType: string | null;
  peers: PeerPathReport[];
}

/** The clock and timers (a fake in unit tests). */
export interface ReporterClock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: ReporterClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => { const t = setTimeout(fn, ms); t.unref(); return t; },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface PathReporterOptions {
  /** The table now (the magic socket's view). */
  table: () => PathTable;
  /** Sends on the control stream; false when it could not (not connected, coordinator not capable). */
  send: (msg: StreamPaths) => boolean;
  /** True while no peer is active: the slow poll (QUIET_POLL_MS) is enough then. */
  quiet?: () => boolean;
  clock?: ReporterClock;
  minIntervalMs?: number;
  refreshMs?: number;
  pollMs?: number;
  quietPollMs?: number;
  maxPeers?: number;
}

export interface PathReporterStats {
  sent: number;
  /** Checks that found nothing worth sending. */
  unchanged: number;
  /** Peers left out of reports (over maxPeers), summed over reports. */
  peersLeftOut: number;
  /** Tables that could not be built (a bug; the message is in lastTableError). */
  tableErrors: number;
}

export class PathReporter {
  private readonly clock: ReporterClock;
  private readonly minIntervalMs: number;
  private readonly refreshMs: number;
  private readonly pollMs: number;
  private readonly quietPollMs: number;
  private readonly maxPeers: number;
  private enabled = false;
  /** What the coordinator holds (the last report sent); null: nothing since enable(). */
  private last: { natType: string | null; peers: Map<string, PeerPathReport> } | null = null;
  private lastSentAt = -Infinity;
  private timer: unknown = null;
  private timerAt = Infinity;
  readonly stats: PathReporterStats = { sent: 0, unchanged: 0, peersLeftOut: 0, tableErrors: 0 };
  lastTableError: string | null = null;

  constructor(private readonly opts: PathReporterOptions) {
    this.clock = opts.clock ?? systemClock;
    this.minIntervalMs = opts.minIntervalMs ?? PATH_REPORT_MIN_INTERVAL_MS;
    this.refreshMs = opts.refreshMs ?? REFRESH_MS;
    this.pollMs = opts.pollMs ?? POLL_MS;
    this.quietPollMs = opts.quietPollMs ?? QUIET_POLL_MS;
    this.maxPeers = opts.maxPeers ?? MAX_PATH_REPORT_PEERS;
  }

  /** The stream (re)connected to a coordinator that takes reports: send the whole table now. */
  enable(): void {
    this.enabled = true;
    this.last = null;
    this.check();
  }

  /** The stream is gone (or the coordinator does not take reports): nothing is sent until enable(). */
  disable(): void {
    this.enabled = false;
    this.last = null;
    this.cancel();
  }

  /** Something changed: look at the table as soon as the rate limit allows. */
  poke(): void {
    if (this.enabled) this.schedule(Math.max(0, this.lastSentAt + this.minIntervalMs - this.clock.now()));
  }

  private check(): void {
    this.cancel();
    if (!this.enabled) return;
    const now = this.clock.now();
    const wait = this.lastSentAt + this.minIntervalMs - now;
    if (wait > 0) { this.schedule(wait); return; }
    let table: PathTable;
    try {
      table = this.bounded(this.opts.table());
    } catch (err) {
      // A bug in building the table must not take the daemon down with it: count it, try again later.
      this.stats.tableErrors++;
      this.lastTableError = (err as Error).message;
      this.schedule(this.pollMs);
      return;
    }
    const refreshDue = table.peers.length > 0 && now - this.lastSentAt >= this.refreshMs;
    if (this.last === null || refreshDue || this.changed(table)) {
      if (this.opts.send({ type: 'paths', natType: table.natType, peers: table.peers })) {
        this.last = { natType: table.natType, peers: new Map(table.peers.map((p) => [p.peer, p])) };
        this.lastSentAt = now;
        this.stats.sent++;
      }
    } else {
      this.stats.unchanged++;
    }
    this.schedule(this.nextPollMs(table.peers.length > 0));
  }

  /** Every pollMs while peers are active; else at the next refresh or after quietPollMs, whichever is first. */
  private nextPollMs(hasPeers: boolean): number {
    if (!this.opts.quiet?.()) return this.pollMs;
    const untilRefresh = hasPeers ? this.lastSentAt + this.refreshMs - this.clock.now() : Infinity;
    return Math.max(this.pollMs, Math.min(this.quietPollMs, untilRefresh));
  }

  /** At most maxPeers peers, the most recently active kept. */
  private bounded(t: PathTable): PathTable {
    if (t.peers.length <= this.maxPeers) return t;
    this.stats.peersLeftOut += t.peers.length - this.maxPeers;
    return { natType: t.natType, peers: [...t.peers].sort((a, b) => a.idleSeconds - b.idleSeconds).slice(0, this.maxPeers) };
  }

  private changed(t: PathTable): boolean {
    const last = this.last!;
    if (t.natType !== last.natType || t.peers.length !== last.peers.size) return true;
    for (const p of t.peers) {
      const q = last.peers.get(p.peer);
      if (!q || peerChanged(q, p)) return true;
    }
    return false;
  }

  private schedule(ms: number): void {
    const at = this.clock.now() + ms;
    if (this.timer !== null && this.timerAt <= at) return;
    this.cancel();
    this.timerAt = at;
    this.timer = this.clock.setTimeout(() => { this.timer = null; this.timerAt = Infinity; this.check(); }, ms);
  }

  private cancel(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Infinity;
  }
}

/** Would a viewer see a difference between the reported `a` and the current `b`? */
export function peerChanged(a: PeerPathReport, b: PeerPathReport): boolean {
  if (a.path !== b.path || a.relay !== b.relay || a.endpoint !== b.endpoint) return true;
  if (reasonKey(a.whyNotDirect) !== reasonKey(b.whyNotDirect)) return true;
  return latencyMoved(a.latencyMs, b.latencyMs);
}

/** The reason without its running seconds ("unanswered for 12 s" and "for 13 s" are the same news). */
export function reasonKey(r: string | null): string | null {
  return r === null ? null : r.replace(/\b\d+ s\b/g, 'N s');
}

export function latencyMoved(a: number | null, b: number | null): boolean {
  if (a === null || b === null) return a !== b;
  const d = Math.abs(a - b);
  return d > LATENCY_MIN_MS && d > LATENCY_RATIO * Math.min(a, b);
}

/**
 * The ip:port of a path as the schema takes it: a birthday path's text names its socket too
 * ("ip:port via birthday socket #k"), which the coordinator would refuse as malformed.
 */
function wireEndpoint(text: string | null): string | null {
  if (text === null) return null;
  if (Endpoint.safeParse(text).success) return text;
  const m = /(\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}/.exec(text);
  return m && Endpoint.safeParse(m[0]).success ? m[0] : null;
}

/** One row of the magic socket's table as the wire carries it (relay only when relayed, endpoint only when direct). */
export function pathReportOf(row: PeerPathRow): PeerPathReport {
  return {
    peer: row.nodeKey, path: row.path,
    relay: row.path === 'relay' ? row.relay : null,
    endpoint: row.path === 'direct' ? wireEndpoint(row.endpoint) : null,
    latencyMs: row.latencyMs === null ? null : Math.min(Math.max(0, row.latencyMs), 600_000),
    whyNotDirect: row.whyNotDirect, tried: row.tried, idleSeconds: Math.min(row.idleSeconds, 1e9),
  };
}
