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

export type CandidateSource = 'netmap' | 'call-me-maybe' | 'ping';

export interface Candidate {
  text: string;
  packed: Uint8Array;
  source: CandidateSource;
  addedAt: number;
  lastPingAt: number;
  lastPongAt: number;
  latencyMs: number | null;
}

export type PathKind = 'direct' | 'relay' | 'none';

export class PeerPath {
  readonly candidates = new Map<string, Candidate>();
  best: Candidate | null = null;
  lastActiveAt = 0;
  lastProbeAt = 0;
  /** Probes since the path last needed discovery (schedule: see QUICK_PROBES). */
  probesSinceReset = 0;
  lastCallMeMaybeAt = 0;
  relayLatencyMs: number | null = null;
  /** When the path last became direct, and when it last changed at all (for tests and status). */
  directSince = 0;
  changes = 0;
  /** What was tried ("why not direct"): disco pings sent to candidates and pongs back from them. */
  pingsSent = 0;
  pongsReceived = 0;
  /** The first candidate ping since the last pong from any candidate (0: none unanswered). */
  unansweredSince = 0;
  private lastPingSentAt = 0;
  /** When a direct path was last lost (0: never, or direct again since). */
  lostAt = 0;

  /** Replaces the coordinator-given candidates, keeping learned ones. */
  setNetmapEndpoints(list: { text: string; packed: Uint8Array }[], now: number): void {
    const wanted = new Set(list.map((e) => e.text));
    for (const [text, c] of this.candidates) {
      if (c.source === 'netmap' && !wanted.has(text)) this.forget(text);
    }
    for (const e of list) this.add(e.text, e.packed, 'netmap', now);
  }

  add(text: string, packed: Uint8Array, source: CandidateSource, now: number): Candidate {
    const existing = this.candidates.get(text);
    if (existing) {
      if (source === 'netmap') existing.source = 'netmap';
      return existing;
    }
    if (this.candidates.size >= MAX_CANDIDATES) this.evictOne();
    const c: Candidate = { text, packed, source, addedAt: now, lastPingAt: 0, lastPongAt: 0, latencyMs: null };
    this.candidates.set(text, c);
    return c;
  }

  addPacked(packed: Uint8Array, source: CandidateSource, now: number): Candidate {
    return this.add(packedText(packed), packed, source, now);
  }

  /** A disco ping went to candidate `c`. */
  notePingSent(c: Candidate, now: number): void {
    // Pings before a pause (ACTIVE_MS without any) belong to an earlier attempt: count from now.
    if (this.unansweredSince === 0 || now - this.lastPingSentAt > ACTIVE_MS) this.unansweredSince = now;
    c.lastPingAt = now;
    this.lastPingSentAt = now;
    this.pingsSent++;
  }

  /** A pong from candidate `c` after `latencyMs`: maybe the new best path. True if the path changed. */
  onPong(c: Candidate, latencyMs: number, now: number): boolean {
    c.lastPongAt = now;
    c.latencyMs = latencyMs;
    this.pongsReceived++;
    this.unansweredSince = 0;
    const best = this.best;
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
    if (this.best && !this.trusted(this.best, now)) {
      this.best = null;
      this.resetProbes();
      this.directSince = 0;
      this.lostAt = now;
      this.changes++;
    }
    return this.best;
  }

  active(now: number): boolean {
    return now - this.lastActiveAt <= ACTIVE_MS;
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
    if (this.best !== null) { this.best = null; this.directSince = 0; this.lostAt = now; this.changes++; }
    this.unansweredSince = 0;
    for (const c of this.candidates.values()) c.lastPingAt = 0;
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
    if (this.best === null) this.directSince = now;
    this.lostAt = 0;
    this.best = c;
    this.changes++;
    return true;
  }

  private forget(text: string): void {
    if (this.best?.text === text) { this.best = null; this.directSince = 0; this.changes++; }
    this.candidates.delete(text);
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
