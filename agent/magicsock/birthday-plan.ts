// Birthday probing: the decisions and budgets, without I/O (the sockets live in birthday.ts).
//
// A symmetric ("hard") NAT gives every destination a new random external port, so the port a
// STUN server saw is useless to a peer behind a filtering ("easy": endpoint-independent mapping,
// restricted or port-restricted filtering) NAT. The hard side opens N sockets and sends one disco
// ping from each to the easy side's public endpoint: N mappings toward that endpoint, at N random
// ports of the hard side's public IP (the easy NAT drops these pings; that is expected). The easy
// side sprays disco pings at random ports of that IP from its main socket; a probe that hits one
// of the N ports passes the hard NAT (its mapping was made toward exactly this source), and its
// pong opens the easy NAT's filter the other way. With N mappings among P usable ports, k probes
// hit at least once with probability 1 - (1 - N/P)^k; see docs/traversal.md for the numbers.
import type { BirthdayNat } from '../../proto/disco/messages.js';
import type { NatKind } from '../../proto/control/schemas.js';

/** Sockets the hard side opens. */
export const BIRTHDAY_SOCKETS = 256;
/** The easy side's spray: packets per second, total packets, wall time. */
export const SPRAY_RATE_PPS = 400;
export const SPRAY_BUDGET = 2000;
export const SPRAY_WALL_MS = 10_000;
/** Ports a NAT picks from (Linux masquerade --random-fully: 1024..65535). */
export const PORT_SPACE = 65535 - 1024 + 1;
/** A peer without a direct path this long after punching began is a birthday candidate. */
export const PUNCH_GRACE_MS = 2500;
/** Cool-down after a failed attempt: doubles per failure up to the cap. */
export const COOLDOWN_MS = 60_000;
export const COOLDOWN_MAX_MS = 600_000;
/** Attempts one node runs at a time. */
export const MAX_CONCURRENT = 3;
/** The hard side keeps its sockets open this long after 'go' (the easy side's wall time plus slack). */
export const HARD_SIDE_HOLD_MS = SPRAY_WALL_MS + 3000;

export type BirthdayRole = 'hard' | 'easy';

/** Our role if (ours, theirs) is a pair birthday probing can open; null otherwise. */
export function birthdayRole(ours: BirthdayNat, theirs: BirthdayNat): BirthdayRole | null {
  if (ours === 'hard' && theirs === 'easy') return 'hard';
  if (ours === 'easy' && theirs === 'hard') return 'easy';
  return null;
}

/** The NAT kind netcheck's mapping behaviour names (RFC 4787), as birthday probing sees it. */
export function natKindOf(mapping: string | null | undefined): BirthdayNat {
  if (mapping === 'endpoint-independent') return 'easy';
  if (mapping === 'address-dependent' || mapping === 'address-and-port-dependent') return 'hard';
  return 'unknown';
}

/**
 * A peer's NAT kind as birthday probing sees it, for a peer that sent no offer yet (its reported
 * or inferred kind): symmetric is hard, a cone easy; no NAT, UDP blocked or unknown say nothing.
 */
export function birthdayNatOfKind(kind: NatKind | null): BirthdayNat {
  if (kind === 'symmetric') return 'hard';
  if (kind === 'full-cone' || kind === 'restricted-cone' || kind === 'port-restricted-cone' || kind === 'cone') return 'easy';
  return 'unknown';
}

/** Probability that `probes` uniformly random probes hit at least one of `mappings` open ports among `space`. */
export function hitProbability(mappings: number, probes: number, space = PORT_SPACE): number {
  return 1 - Math.pow(1 - mappings / space, probes);
}

/** Probes needed for `p` success probability. */
export function probesFor(p: number, mappings: number, space = PORT_SPACE): number {
  return Math.ceil(Math.log(1 - p) / Math.log(1 - mappings / space));
}

interface GateEntry {
  running: boolean;
  failures: number;
  notBefore: number;
}

/**
 * Who may start an attempt now: one per peer at a time, at most MAX_CONCURRENT per node, and a
 * cool-down after a failure (COOLDOWN_MS, doubled per failure up to COOLDOWN_MAX_MS). A success
 * clears the peer's failures. Bounded: one entry per peer key, dropped with the peer.
 */
export class BirthdayGate {
  private readonly peers = new Map<string, GateEntry>();
  private running = 0;

  constructor(private readonly maxConcurrent = MAX_CONCURRENT) {}

  /** True (and the attempt counts as running) if `peer` may start one at `now`. */
  tryStart(peer: string, now: number): boolean {
    const e = this.peers.get(peer) ?? { running: false, failures: 0, notBefore: 0 };
    if (e.running || now < e.notBefore || this.running >= this.maxConcurrent) return false;
    e.running = true;
    this.peers.set(peer, e);
    this.running++;
    return true;
  }

  finish(peer: string, ok: boolean, now: number): void {
    const e = this.peers.get(peer);
    if (!e || !e.running) return;
    e.running = false;
    this.running--;
    if (ok) { e.failures = 0; e.notBefore = 0; return; }
    e.failures++;
    e.notBefore = now + Math.min(COOLDOWN_MAX_MS, COOLDOWN_MS * 2 ** (e.failures - 1));
  }

  /** When `peer` may try again (0: now). */
  notBefore(peer: string): number {
    return this.peers.get(peer)?.notBefore ?? 0;
  }

  isRunning(peer: string): boolean {
    return this.peers.get(peer)?.running ?? false;
  }

  get active(): number {
    return this.running;
  }

  forget(peer: string): void {
    const e = this.peers.get(peer);
    if (e?.running) this.running--;
    this.peers.delete(peer);
  }
}

/**
 * The easy side's spray schedule: which ports to probe at each tick, within the rate, the
 * total budget and the wall time. Ports are drawn without repetition from PORT_SPACE.
 */
export class SprayPlan {
  sent = 0;
  private readonly started: number;
  private readonly tried = new Set<number>();

  constructor(
    now: number,
    private readonly random: () => number = Math.random,
    readonly rate = SPRAY_RATE_PPS,
    readonly budget = SPRAY_BUDGET,
    readonly wallMs = SPRAY_WALL_MS,
  ) {
    this.started = now;
  }

  /** True once the budget or the wall time is spent. */
  done(now: number): boolean {
    return this.sent >= this.budget || now - this.started >= this.wallMs;
  }

  /** The ports to probe now: as many as the rate allows since the start, minus those already sent. */
  next(now: number): number[] {
    if (this.done(now)) return [];
    const allowed = Math.min(this.budget, Math.floor(((now - this.started) / 1000) * this.rate) + 1);
    const out: number[] = [];
    while (this.sent < allowed) {
      let port: number;
      do port = 1024 + Math.floor(this.random() * PORT_SPACE); while (this.tried.has(port));
      this.tried.add(port);
      out.push(port);
      this.sent++;
    }
    return out;
  }
}
