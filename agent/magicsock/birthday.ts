// Birthday probing for a symmetric NAT facing a filtering, endpoint-independent one (the numbers
// and the decisions are in birthday-plan.ts; docs/traversal.md explains them). Flow, whoever
// notices first:
//   1. A peer stays relayed PUNCH_GRACE_MS after punching began: we ask for our NAT kind
//      (netcheck) and send a birthday 'offer' through the relay with our kind and public endpoint.
//   2. The side whose role is 'hard' (it got an offer from an 'easy' peer) opens BIRTHDAY_SOCKETS
//      UDP sockets, pings the easy side's public endpoint once from each (N NAT mappings toward
//      it), and sends 'go' through the relay. The easy side answers an offer with its own offer.
//   3. On 'go' the easy side sprays disco pings from its main socket at random ports of the hard
//      side's public IP (SprayPlan: rate, budget, wall time) and stops at the first pong.
//   4. A ping that reaches birthday socket k is handed to the magic socket as coming from the
//      birthday address (socket k, ip:port): it answers from socket k and pings back through it,
//      so both sides confirm a direct path. Once the hard side's path runs through socket k the
//      sockets no ping of the peer reached are closed; k (and any other the peer's pings came in
//      on: a second hit the peer may be using) stays open while that path is in use.
// Packets to birthday addresses leave through MagicBind.sideSend (in JS: the native fast path
// only handles plain UDP endpoints); packets received on socket k enter the device like relayed
// ones (Device.receiveRelayed) with that birthday address as their source.
import { copyBytes } from '../../proto/bytes.js';
import dgram from 'node:dgram';
import type { Logger } from 'pino';
import type { BirthdayNat, DiscoEndpoint, DiscoMessage } from '../../proto/disco/messages.js';
import {
  BIRTHDAY_SOCKETS, BirthdayGate, HARD_SIDE_HOLD_MS, PUNCH_GRACE_MS, SprayPlan, birthdayNatOfKind, birthdayRole, type BirthdayRole,
} from './birthday-plan.js';
import { addrKind, birthdayAddr, birthdaySocketId, discoToPacked } from './path-addr.js';
import type { DiscoPeer } from './disco-peer.js';

/** A relayed peer makes us ask for our NAT kind this long after it got stuck. */
const NAT_KIND_AFTER_MS = 1000;
/** Offers to one peer at most this often. */
const OFFER_GAP_MS = 5000;
/** The spray's timer: packets go out in small bursts this often. */
const SPRAY_TICK_MS = 20;
/** A kept birthday socket whose path has not been confirmed for this long is closed. */
const KEEP_IDLE_MS = 60_000;

export type BirthdayMessage = Extract<DiscoMessage, { type: 'birthday' }>;

export interface BirthdayHost {
  log: Logger;
  now(): number;
  /** Our NAT's mapping kind (from the last netcheck). */
  ourNat(): BirthdayNat;
  /** Our kind is unknown and a peer needs it: run a netcheck (the host runs at most one). */
  wantNatKind(): void;
  /** Our STUN-reflexive IPv4 endpoint, if known. */
  ourPublic(): DiscoEndpoint | null;
  /** A birthday message to the peer through its relay. */
  sendBirthday(p: DiscoPeer, msg: BirthdayMessage): boolean;
  /** A sealed disco ping to the peer, not tracked (the hard side's mapping-making pings); null when the peer has no usable disco key. */
  sealedPing(p: DiscoPeer): Uint8Array | null;
  /** A tracked disco ping from the main socket to `to`; its pong confirms a direct path. */
  sprayPing(p: DiscoPeer, to: Uint8Array): void;
  /** A datagram received on a birthday socket, with its birthday source address. */
  receive(data: Uint8Array, from: Uint8Array): void;
}

export interface BirthdayStatus {
  attempts: number;
  successes: number;
  failures: number;
  /** Attempts as the hard side (sockets) and as the easy side (spray). */
  hardAttempts: number;
  easyAttempts: number;
  offersSent: number;
  offersReceived: number;
  /** Packets sent by the easy side's sprays and by the hard side's sockets. */
  packetsSent: number;
  socketsOpened: number;
  socketsOpen: number;
  active: number;
  /** Packets and milliseconds of the last successful attempt (easy side: sprayed probes until the pong). */
  lastSuccessPackets: number | null;
  lastSuccessMs: number | null;
}

/** One peer's birthday probing as `status --json` shows it: attempts, and how the last one went. */
export interface PeerBirthdayJson {
  attempts: number;
  role: BirthdayRole | null;
  outcome: 'direct' | 'gave-up' | 'running' | null;
  /** The last finished attempt's duration, and its packets (easy side: probes sprayed; hard side: sockets opened). */
  ms?: number;
  probes?: number;
}

/** The peer's last attempt ended: how, after how long, with how many packets (status). */
function finished(st: PeerState, outcome: 'direct' | 'gave-up', ms: number, probes: number): void {
  st.last = { ...st.last, outcome, ms: Math.round(ms), probes };
}

interface HardRun {
  round: number;
  startedAt: number;
  sockets: Map<number, dgram.Socket>;
  /** The socket the confirmed path runs through, once known. */
  kept: number | null;
  /** Sockets this run opened (its packets: one ping each). */
  opened: number;
  timer: NodeJS.Timeout | undefined;
}

interface EasyRun {
  round: number;
  startedAt: number;
  plan: SprayPlan;
  ip: Uint8Array;
  timer: NodeJS.Timeout | undefined;
}

interface PeerState {
  stuckSince: number;
  lastOfferAt: number;
  round: number;
  remoteNat: BirthdayNat;
  remotePublic: DiscoEndpoint | null;
  hard: HardRun | null;
  easy: EasyRun | null;
  /** What status shows (PeerBirthdayJson). */
  last: PeerBirthdayJson;
}

export class Birthday {
  readonly gate = new BirthdayGate();
  private readonly peers = new Map<DiscoPeer, PeerState>();
  /** Socket id → its peer and socket (every open birthday socket of every run). */
  private readonly sockets = new Map<number, { peer: DiscoPeer; socket: dgram.Socket }>();
  private nextSocketId = 1;
  private closed = false;
  private readonly stats: BirthdayStatus = {
    attempts: 0, successes: 0, failures: 0, hardAttempts: 0, easyAttempts: 0, offersSent: 0, offersReceived: 0,
    packetsSent: 0, socketsOpened: 0, socketsOpen: 0, active: 0, lastSuccessPackets: null, lastSuccessMs: null,
  };

  constructor(private readonly host: BirthdayHost) {}

  status(): BirthdayStatus {
    return { ...this.stats, socketsOpen: this.sockets.size, active: this.gate.active };
  }

  /** The peer's attempts and the last one's outcome; null when it never had one. */
  peerStatus(p: DiscoPeer): PeerBirthdayJson | null {
    const st = this.peers.get(p);
    return st && st.last.attempts > 0 ? { ...st.last } : null;
  }

  /**
   * MagicBind.sideSend: a packet to a birthday address leaves through its socket. The packet is
   * usually a view into a slab the device reuses (TUN batch, keepalive/staged scratch, NAT answers),
   * and dgram reads the bytes only later (its address lookup defers the send to the next tick, and
   * a full socket buffer longer): so the socket gets a copy of its own.
   */
  readonly send = (addr: Uint8Array, packet: Uint8Array): boolean => {
    if (addrKind(addr) !== 'birthday') return false;
    const s = this.sockets.get(birthdaySocketId(addr));
    if (!s) return false;
    s.socket.send(copyBytes(packet), (addr[2]! << 8) | addr[3]!, `${addr[4]}.${addr[5]}.${addr[6]}.${addr[7]}`);
    return true;
  };

  /**
   * Called by the magic socket's tick for every peer: `direct` is its confirmed direct endpoint's
   * packed address (null: none), `relayed` whether the relay carries it now.
   */
  tick(p: DiscoPeer, now: number, active: boolean, direct: Uint8Array | null, relayed: boolean): void {
    const st = this.state(p);
    if (direct) {
      st.stuckSince = 0;
      // Direct while spraying (our pong handler ends a spray that hit): nothing left to find.
      if (st.easy) this.endEasy(p, st, 'moot', now);
      this.onDirect(p, st, direct, now);
      return;
    }
    this.closeIdleKept(p, st, now);
    if (!active || !relayed) { st.stuckSince = 0; return; }
    const ours = this.host.ourNat();
    // Our NAT kind is asked for NAT_KIND_AFTER_MS into the grace (a netcheck takes a second or
    // two), so it is known when the grace ends; pairs plain punching opens never ask.
    if (st.stuckSince === 0) { st.stuckSince = now; return; }
    if (ours === 'unknown' && now - st.stuckSince >= NAT_KIND_AFTER_MS) this.host.wantNatKind();
    if (now - st.stuckSince < PUNCH_GRACE_MS) return;
    if (ours === 'unknown') { this.host.wantNatKind(); return; }
    if (ours !== 'hard' && ours !== 'easy') return;
    if (st.hard || st.easy || now < this.gate.notBefore(key(p)) || now - st.lastOfferAt < OFFER_GAP_MS) return;
    // A peer that told us its kind and cannot pair with ours is not asked again and again.
    // Before its offer, the peer's reported (else inferred) NAT kind says whether to offer at all.
    const theirs = st.remoteNat !== 'unknown' ? st.remoteNat : birthdayNatOfKind(p.nat().kind);
    if (theirs !== 'unknown' && birthdayRole(ours, theirs) === null) return;
    this.offer(p, st, now, (Math.random() * 0xffffffff) >>> 0);
  }

  /** A birthday message from the peer (through the relay; its disco box proved who sent it). */
  onMessage(p: DiscoPeer, msg: BirthdayMessage, now: number): void {
    const st = this.state(p);
    const ours = this.host.ourNat();
    if (msg.phase === 'offer') {
      this.stats.offersReceived++;
      st.remoteNat = msg.nat;
      st.remotePublic = discoToPacked(msg.public) ? msg.public : null;
      if (ours === 'unknown') { this.host.wantNatKind(); return; }
      const role = birthdayRole(ours, msg.nat);
      if (role === 'hard' && st.remotePublic) this.startHard(p, st, msg.round, st.remotePublic, now);
      else if (role === 'easy' && !st.easy && now - st.lastOfferAt >= 1000) this.offer(p, st, now, msg.round);
      return;
    }
    if (msg.phase === 'go') {
      if (birthdayRole(ours, msg.nat) !== 'easy') return;
      this.startEasy(p, st, msg.round, msg.public, now);
      return;
    }
    // 'stop': the peer gave up; our spray stops, or our sockets close.
    if (st.easy && st.easy.round === msg.round) this.endEasy(p, st, 'gave-up', now);
    if (st.hard && st.hard.round === msg.round && st.hard.kept === null) this.endHard(p, st, false, now, true);
  }

  /** The pong to one of our spray pings came back: the spray stops, the attempt succeeded. */
  sprayHit(p: DiscoPeer, now: number): void {
    const st = this.peers.get(p);
    if (st?.easy) this.endEasy(p, st, 'hit', now);
  }

  /** The peer left the netmap. */
  forget(p: DiscoPeer): void {
    const st = this.peers.get(p);
    if (!st) return;
    if (st.easy) this.endEasy(p, st, 'gave-up', this.host.now());
    if (st.hard) this.endHard(p, st, false, this.host.now(), true);
    this.gate.forget(key(p));
    this.peers.delete(p);
  }

  close(): void {
    this.closed = true;
    for (const p of [...this.peers.keys()]) this.forget(p);
    for (const s of this.sockets.values()) s.socket.close();
    this.sockets.clear();
  }

  // --- roles --------------------------------------------------------------------------------

  private offer(p: DiscoPeer, st: PeerState, now: number, round: number): void {
    const pub = this.host.ourPublic();
    if (!pub) return;
    st.lastOfferAt = now;
    st.round = round;
    if (this.host.sendBirthday(p, { type: 'birthday', nat: this.host.ourNat(), phase: 'offer', sockets: 0, round, public: pub })) this.stats.offersSent++;
  }

  private startHard(p: DiscoPeer, st: PeerState, round: number, target: DiscoEndpoint, now: number): void {
    if (this.closed || st.hard || st.easy) return;
    const to = discoToPacked(target);
    if (!to || to[0] !== 4 || !this.gate.tryStart(key(p), now)) return;
    const pub = this.host.ourPublic();
    if (!pub) { this.gate.finish(key(p), false, now); return; }
    this.stats.attempts++;
    this.stats.hardAttempts++;
    st.last = { attempts: st.last.attempts + 1, role: 'hard', outcome: 'running' };
    const run: HardRun = { round, startedAt: now, sockets: new Map(), kept: null, opened: 0, timer: undefined };
    st.hard = run;
    const ip = `${to[4]}.${to[5]}.${to[6]}.${to[7]}`;
    const port = (to[2]! << 8) | to[3]!;
    this.host.log.info(`${p.name}: birthday probing as the hard side: ${BIRTHDAY_SOCKETS} sockets toward ${ip}:${port}`);
    let bound = 0;
    for (let i = 0; i < BIRTHDAY_SOCKETS; i++) {
      const id = this.nextSocketId++;
      const socket = dgram.createSocket('udp4');
      run.sockets.set(id, socket);
      this.sockets.set(id, { peer: p, socket });
      this.stats.socketsOpened++;
      run.opened++;
      socket.on('error', () => this.closeSocket(run, id));
      socket.on('message', (data, rinfo) => {
        const parts = rinfo.address.split('.').map(Number);
        if (parts.length !== 4) return;
        this.host.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), birthdayAddr(id, Uint8Array.from(parts), rinfo.port));
      });
      socket.bind(0, () => {
        if (st.hard !== run || !run.sockets.has(id)) return;
        const ping = this.host.sealedPing(p);
        if (ping === null) return;
        socket.send(ping, port, ip);
        this.stats.packetsSent++;
        // Once every socket has made its mapping, the easy side may spray.
        if (++bound === BIRTHDAY_SOCKETS || bound === run.sockets.size) {
          this.host.sendBirthday(p, { type: 'birthday', nat: 'hard', phase: 'go', sockets: run.sockets.size, round, public: pub });
        }
      });
    }
    run.timer = setTimeout(() => { if (st.hard === run && run.kept === null) this.endHard(p, st, false, this.host.now(), true); }, HARD_SIDE_HOLD_MS);
  }

  private startEasy(p: DiscoPeer, st: PeerState, round: number, target: DiscoEndpoint, now: number): void {
    if (this.closed || st.easy || st.hard) return;
    const to = discoToPacked(target);
    if (!to || to[0] !== 4 || !this.gate.tryStart(key(p), now)) return;
    this.stats.attempts++;
    this.stats.easyAttempts++;
    st.last = { attempts: st.last.attempts + 1, role: 'easy', outcome: 'running' };
    const run: EasyRun = { round, startedAt: now, plan: new SprayPlan(now), ip: to.slice(4, 8), timer: undefined };
    st.easy = run;
    this.host.log.info(`${p.name}: birthday probing as the easy side: spraying ${to[4]}.${to[5]}.${to[6]}.${to[7]}`);
    const step = (): void => {
      if (st.easy !== run) return;
      const t = this.host.now();
      for (const port of run.plan.next(t)) {
        const packed = new Uint8Array(20);
        packed[0] = 4;
        packed[2] = port >> 8;
        packed[3] = port & 0xff;
        packed.set(run.ip, 4);
        this.host.sprayPing(p, packed);
        this.stats.packetsSent++;
      }
      if (run.plan.done(t)) { this.endEasy(p, st, 'gave-up', t); return; }
      run.timer = setTimeout(step, SPRAY_TICK_MS);
    };
    step();
  }

  /** 'hit': our probe's pong came back; 'gave-up': budget, wall time or the peer's stop; 'moot': direct some other way. */
  private endEasy(p: DiscoPeer, st: PeerState, outcome: 'hit' | 'gave-up' | 'moot', now: number): void {
    const run = st.easy;
    if (!run) return;
    clearTimeout(run.timer);
    st.easy = null;
    this.gate.finish(key(p), outcome !== 'gave-up', now);
    finished(st, outcome === 'gave-up' ? 'gave-up' : 'direct', now - run.startedAt, run.plan.sent);
    if (outcome === 'moot') return;
    if (outcome === 'hit') {
      this.stats.successes++;
      this.stats.lastSuccessPackets = run.plan.sent;
      this.stats.lastSuccessMs = Math.round(now - run.startedAt);
      this.host.log.info(`${p.name}: birthday probing found a path after ${run.plan.sent} probes (${Math.round(now - run.startedAt)} ms)`);
    } else {
      this.stats.failures++;
      this.host.log.info(`${p.name}: birthday probing gave up after ${run.plan.sent} probes`);
      const pub = this.host.ourPublic();
      if (pub) this.host.sendBirthday(p, { type: 'birthday', nat: this.host.ourNat(), phase: 'stop', sockets: 0, round: run.round, public: pub });
    }
  }

  /** The hard side's path is direct: through a birthday socket of ours keep it and every one the peer's pings came in on; close the rest. */
  private onDirect(p: DiscoPeer, st: PeerState, direct: Uint8Array, now: number): void {
    const run = st.hard;
    if (!run) return;
    if (addrKind(direct) !== 'birthday') {
      // Direct some other way: an attempt still looking ends; a kept socket goes once idle.
      if (run.kept === null) {
        finished(st, 'direct', now - run.startedAt, run.opened);
        this.endHard(p, st, false, now, false);
        this.gate.finish(key(p), true, now);
      } else this.closeIdleKept(p, st, now);
      return;
    }
    const id = birthdaySocketId(direct);
    if (!run.sockets.has(id)) return;
    const first = run.kept === null;
    run.kept = id;
    // Two probes can hit: the peer may have chosen the other socket's port and sends there while
    // our path runs through this one, so every socket its authenticated pings arrived on stays
    // open while they keep coming (its heartbeats there get our pongs and our pings back), and
    // the others close.
    if (run.sockets.size > 1) {
      const heard = heardOn(p, now);
      for (const other of [...run.sockets.keys()]) if (other !== id && !heard.has(other)) this.closeSocket(run, other);
    }
    clearTimeout(run.timer);
    if (first) {
      finished(st, 'direct', now - run.startedAt, run.opened);
      this.gate.finish(key(p), true, now);
      this.stats.successes++;
      this.stats.lastSuccessMs = Math.round(now - run.startedAt);
      this.host.log.info(`${p.name}: birthday probing found a path through socket #${id} (${Math.round(now - run.startedAt)} ms)`);
    }
    run.startedAt = now; // from here: when the kept socket last carried the confirmed path
  }

  /** A kept socket whose path went away is closed after KEEP_IDLE_MS (the next attempt opens new ones). */
  private closeIdleKept(p: DiscoPeer, st: PeerState, now: number): void {
    const run = st.hard;
    if (!run || run.kept === null) return;
    if (now - run.startedAt >= KEEP_IDLE_MS) this.endHard(p, st, false, now, false);
  }

  private endHard(p: DiscoPeer, st: PeerState, ok: boolean, now: number, counts: boolean): void {
    const run = st.hard;
    if (!run) return;
    clearTimeout(run.timer);
    for (const id of [...run.sockets.keys()]) this.closeSocket(run, id);
    st.hard = null;
    if (run.kept === null && counts) {
      finished(st, 'gave-up', now - run.startedAt, run.opened);
      this.gate.finish(key(p), ok, now);
      this.stats.failures++;
      this.host.log.info(`${p.name}: birthday probing (hard side) found no path`);
    }
  }

  private closeSocket(run: HardRun, id: number): void {
    const s = run.sockets.get(id);
    if (!s) return;
    run.sockets.delete(id);
    this.sockets.delete(id);
    try { s.close(); } catch { /* already closed */ }
  }

  private state(p: DiscoPeer): PeerState {
    let st = this.peers.get(p);
    if (!st) {
      st = {
        stuckSince: 0, lastOfferAt: -Infinity, round: 0, remoteNat: 'unknown', remotePublic: null, hard: null, easy: null,
        last: { attempts: 0, role: null, outcome: null },
      };
      this.peers.set(p, st);
    }
    return st;
  }
}

/**
 * The birthday sockets the peer's authenticated pings came in on (its path table's birthday
 * addresses), in use within KEEP_IDLE_MS: learned, or answered, since then.
 */
function heardOn(p: DiscoPeer, now: number): Set<number> {
  const ids = new Set<number>();
  for (const c of p.path.candidates.values()) {
    if (addrKind(c.packed) === 'birthday' && now - Math.max(c.addedAt, c.lastPongAt) < KEEP_IDLE_MS) ids.add(birthdaySocketId(c.packed));
  }
  return ids;
}

function key(p: DiscoPeer): string {
  return p.nodeKeyB64;
}
