// Path selection for one peer: its candidate UDP endpoints, what the disco pings to them showed,
// and the path WireGuard should use now. Pure state and decisions (time is passed in); the magic
// socket does the sending. Rules:
//  - a direct endpoint is used only while a pong from it is recent (PONG_TRUST_MS); otherwise the
//    relay carries the traffic, from the first packet, while all candidates are probed;
//  - among direct endpoints the lowest latency wins, but a working one is only replaced by one
//    that is clearly faster (hysteresis), so the path does not flap;
//  - while direct, the chosen endpoint gets a heartbeat ping; missing pongs drop back to the relay.
import { packedText } from './path-addr.js';

export const HEARTBEAT_MS = 2000;
/** A direct path is trusted this long after its last pong (two heartbeats and some slack). */
export const PONG_TRUST_MS = 4500;
/**
 * While not direct, all candidates are probed at once on activity, then QUICK_PROBES more times
 * QUICK_PROBE_MS apart (NAT filters open in some order: a ping that was dropped a moment ago
 * passes once the other side has pinged us), then every PROBE_INTERVAL_MS.
 */
export const PROBE_INTERVAL_MS = 3000;
export const QUICK_PROBE_MS = 400;
export const QUICK_PROBES = 5;
/** A candidate needs this fraction of the current path's latency to replace it... */
export const SWITCH_LATENCY_RATIO = 0.7;
/** ...and to be at least this much faster, in ms (sub-ms jitter is not a reason to move). */
export const SWITCH_LATENCY_MIN_GAIN_MS = 1;
/** Learned candidates (from pings and call-me-maybe) are forgotten after this long without a pong. */
export const LEARNED_TTL_MS = 60_000;
/** A peer with no traffic for this long gets no heartbeats or probes. */
export const ACTIVE_MS = 45_000;
export const MAX_CANDIDATES = 32;
export const MIN_PING_GAP_MS = 250;
/** A heartbeat unanswered this long makes the chosen path suspect: another endpoint that answers replaces it at once. */
export const SUSPECT_AFTER_MS = 400;
/** Call-me-maybe to one peer at most this often. */
export const CALL_ME_MAYBE_GAP_MS = 1000;

export type CandidateSource = 'netmap' | 'call-me-maybe' | 'ping';

/** A direct endpoint and what pinging it showed; read-only outside: PeerPath's methods change it. */
export interface Candidate {
  readonly text: string;
  readonly packed: Uint8Array;
  readonly source: CandidateSource;
  readonly addedAt: number;
  readonly lastPingAt: number;
  readonly lastPongAt: number;
  readonly latencyMs: number | null;
}

type CandidateState = { -readonly [K in keyof Candidate]: Candidate[K] };

/** Every Candidate is made in this file (add, detached), so each one is a CandidateState. */
const state = (c: Candidate): CandidateState => c as CandidateState;

export type PathKind = 'direct' | 'relay' | 'none';

/** One peer's path state; it changes only through the methods below (the magic socket calls them). */
export class PeerPath {
  readonly candidates: ReadonlyMap<string, Candidate> = new Map<string, Candidate>();
  private _best: Candidate | null = null;
  private _lastActiveAt = 0;
  private lastProbeAt = 0;
  /** Probes since the path last needed discovery (schedule: see QUICK_PROBES). */
  private probesSinceReset = 0;
  private lastCallMeMaybeAt = 0;
  private _relayLatencyMs: number | null = null;
  private _directSince = 0;
  private _changes = 0;
  private _pingsSent = 0;
  private _pongsReceived = 0;
  private _unansweredSince = 0;
  private lastPingSentAt = 0;
  private _lostAt = 0;

  /** The chosen direct endpoint (see direct() for the one to use now), or null. */
  get best(): Candidate | null { return this._best; }
  /** When traffic or disco last went to or came from the peer. */
  get lastActiveAt(): number { return this._lastActiveAt; }
  /** The last round trip of a disco ping through the relay (null: none answered yet). */
  get relayLatencyMs(): number | null { return this._relayLatencyMs; }
  /** When the path last became direct, and how often it changed at all (for tests and status). */
  get directSince(): number { return this._directSince; }
  get changes(): number { return this._changes; }
  /** What was tried ("why not direct"): disco pings sent to candidates and pongs back from them. */
  get pingsSent(): number { return this._pingsSent; }
  get pongsReceived(): number { return this._pongsReceived; }
  /** The first candidate ping since the last pong from any candidate (0: none unanswered). */
  get unansweredSince(): number { return this._unansweredSince; }
  /** When a direct path was last lost (0: never, or direct again since). */
  get lostAt(): number { return this._lostAt; }

  private get table(): Map<string, Candidate> { return this.candidates as Map<string, Candidate>; }

  /** Traffic or disco to or from the peer at `now`. */
  noteActive(now: number): void {
    this._lastActiveAt = now;
  }

  /** A disco ping through the relay came back after `latencyMs`. */
  noteRelayPong(latencyMs: number): void {
    this._relayLatencyMs = latencyMs;
  }

  /** A probe was scheduled for `now` (one per burst of relayed packets; probeTargets runs it). */
  noteProbeScheduled(now: number): void {
    this.lastProbeAt = now;
  }

  /** True, and noted as sent, if a call-me-maybe may go to the peer now (CALL_ME_MAYBE_GAP_MS). */
  takeCallMeMaybe(now: number): boolean {
    if (now - this.lastCallMeMaybeAt < CALL_ME_MAYBE_GAP_MS) return false;
    this.lastCallMeMaybeAt = now;
    return true;
  }

  /** Our endpoints changed: the next probe tells the peer at once. */
  allowCallMeMaybe(): void {
    this.lastCallMeMaybeAt = 0;
  }

  /** A candidate that is not (yet) in the table: a birthday spray target, kept only if it answers. */
  detached(text: string, packed: Uint8Array, now: number): Candidate {
    return { text, packed, source: 'ping', addedAt: now, lastPingAt: 0, lastPongAt: 0, latencyMs: null };
  }

  /** Replaces the coordinator-given candidates, keeping learned ones. */
  setNetmapEndpoints(list: { text: string; packed: Uint8Array }[], now: number): void {
    const wanted = new Set(list.map((e) => e.text));
    for (const [text, c] of this.candidates) {
      if (c.source === 'netmap' && !wanted.has(text)) this.forget(text);
    }
    for (const e of list) this.add(e.text, e.packed, 'netmap', now);
  }

  add(text: string, packed: Uint8Array, source: CandidateSource, now: number): Candidate {
    const existing = this.table.get(text);
    if (existing) {
      if (source === 'netmap') state(existing).source = 'netmap';
      return existing;
    }
    if (this.table.size >= MAX_CANDIDATES) this.evictOne();
    const c: Candidate = { text, packed, source, addedAt: now, lastPingAt: 0, lastPongAt: 0, latencyMs: null };
    this.table.set(text, c);
    return c;
  }

  addPacked(packed: Uint8Array, source: CandidateSource, now: number): Candidate {
    return this.add(packedText(packed), packed, source, now);
  }

  /** A disco ping went to candidate `c`. */
  notePingSent(c: Candidate, now: number): void {
    // Pings before a pause (ACTIVE_MS without any) belong to an earlier attempt: count from now.
    if (this._unansweredSince === 0 || now - this.lastPingSentAt > ACTIVE_MS) this._unansweredSince = now;
    state(c).lastPingAt = now;
    this.lastPingSentAt = now;
    this._pingsSent++;
  }

  /** A pong from candidate `c` after `latencyMs`: maybe the new best path. True if the path changed. */
  onPong(c: Candidate, latencyMs: number, now: number): boolean {
    state(c).lastPongAt = now;
    state(c).latencyMs = latencyMs;
    this._pongsReceived++;
    this._unansweredSince = 0;
    const best = this._best;
    if (best === c) return false;
    if (best === null || !this.trusted(best, now) || this.suspect(now)) return this.choose(c, now);
    const bestMs = best.latencyMs ?? Infinity;
    if (latencyMs < bestMs * SWITCH_LATENCY_RATIO && bestMs - latencyMs >= SWITCH_LATENCY_MIN_GAIN_MS) return this.choose(c, now);
    return false;
  }

  /**
   * The chosen path's last heartbeat went unanswered for SUSPECT_AFTER_MS: its NAT mapping may be
   * gone (conntrack flushed, rebinding). Pings from new addresses are then tried at once.
   */
  suspect(now: number): boolean {
    const b = this.best;
    return b !== null && b.lastPingAt > b.lastPongAt && now - b.lastPingAt >= SUSPECT_AFTER_MS;
  }

  trusted(c: Candidate, now: number): boolean {
    return now - c.lastPongAt <= PONG_TRUST_MS;
  }

  /** When the chosen direct path stops being trusted without another pong; Infinity without one. */
  trustExpiresAt(): number {
    return this.best === null ? Infinity : this.best.lastPongAt + PONG_TRUST_MS;
  }

  /** The direct endpoint to use now, or null (relay). Drops a best path whose pongs stopped. */
  direct(now: number): Candidate | null {
    if (this.suspect(now)) {
      // Move to an endpoint that answered after the chosen one went quiet, if there is one.
      const quietSince = this.best!.lastPingAt;
      let alt: Candidate | null = null;
      for (const c of this.candidates.values()) {
        if (c !== this.best && c.lastPongAt > quietSince && (alt === null || (c.latencyMs ?? Infinity) < (alt.latencyMs ?? Infinity))) alt = c;
      }
      if (alt) this.choose(alt, now);
    }
    if (this._best && !this.trusted(this._best, now)) {
      this._best = null;
      this.resetProbes();
      this._directSince = 0;
      this._lostAt = now;
      this._changes++;
    }
    return this._best;
  }

  active(now: number): boolean {
    return now - this._lastActiveAt <= ACTIVE_MS;
  }

  /** What to ping now: the heartbeat target, or every candidate when a probe is due. */
  due(now: number): { heartbeat: Candidate | null; probe: Candidate[] | null } {
    const best = this.direct(now);
    if (!this.active(now)) return { heartbeat: null, probe: null };
    const heartbeat = best && now - best.lastPingAt >= HEARTBEAT_MS ? best : null;
    const probe = !best && this.probeDue(now) ? this.probeTargets(now) : null;
    return { heartbeat, probe };
  }

  probeDue(now: number): boolean {
    const gap = this.probesSinceReset <= QUICK_PROBES ? QUICK_PROBE_MS : PROBE_INTERVAL_MS;
    return now - this.lastProbeAt >= gap;
  }

  /**
   * The host may be on another network: the chosen path was confirmed from the old one, so it is
   * trusted again only after a new pong (the relay carries traffic meanwhile); probe at once.
   */
  networkChanged(now: number): void {
    if (this._best !== null) { this._best = null; this._directSince = 0; this._lostAt = now; this._changes++; }
    this._unansweredSince = 0;
    for (const c of this.candidates.values()) state(c).lastPingAt = 0;
    this.lastCallMeMaybeAt = 0;
    this.resetProbes();
  }

  /** Start the quick probe schedule again (path lost, peer asked us to call, traffic after a pause). */
  resetProbes(): void {
    this.probesSinceReset = 0;
    this.lastProbeAt = 0;
  }

  /** Every candidate not pinged in the last MIN_PING_GAP_MS; marks the probe. */
  probeTargets(now: number): Candidate[] {
    this.lastProbeAt = now;
    this.probesSinceReset++;
    this.expireLearned(now);
    return [...this.candidates.values()].filter((c) => now - c.lastPingAt >= MIN_PING_GAP_MS);
  }

  private choose(c: Candidate, now: number): boolean {
    if (this._best === null) this._directSince = now;
    this._lostAt = 0;
    this._best = c;
    this._changes++;
    return true;
  }

  private forget(text: string): void {
    if (this._best?.text === text) { this._best = null; this._directSince = 0; this._changes++; }
    this.table.delete(text);
  }

  private expireLearned(now: number): void {
    for (const [text, c] of this.candidates) {
      if (c.source !== 'netmap' && now - Math.max(c.lastPongAt, c.addedAt) > LEARNED_TTL_MS) this.forget(text);
    }
  }

  private evictOne(): void {
    let victim: Candidate | null = null;
    for (const c of this.candidates.values()) {
      if (c === this.best || c.source === 'netmap') continue;
      if (!victim || Math.max(c.lastPongAt, c.addedAt) < Math.max(victim.lastPongAt, victim.addedAt)) victim = c;
    }
    if (victim) this.forget(victim.text);
    else {
      const first = this.candidates.keys().next();
      if (!first.done) this.forget(first.value);
    }
  }
}
