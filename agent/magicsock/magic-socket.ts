// The magic socket: the agent's one UDP socket plus its relays, as one transport for WireGuard.
// It demultiplexes WireGuard, disco and STUN on the socket; runs disco (ping/pong/call-me-maybe)
// to find direct paths; and points each WireGuard peer at the best path: a direct UDP endpoint
// confirmed by a recent pong, or else the peer's relay, which carries traffic from the first
// packet while probing goes on (see peer-path.ts for the rules).
import { copyBytes } from '../../proto/bytes.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isDecodeError } from '../../proto/errors.js';
import {
  encodeDiscoPayload, isDiscoPacket, openDisco, sealDisco, DiscoClock, DISCO_KEY_LEN, DISCO_MAGIC, FEATURE_RELAY_TRAINS, type DiscoEnvelope, type DiscoMessage,
} from '../../proto/disco/messages.js';
import { messageType } from '../../proto/wireguard/messages.js';
import { isStunMessage } from '../../proto/stun/message.js';
import { encodeBindingRequest } from '../../proto/stun/binding.js';
import type { Device } from '../wireguard/device.js';
import type { DeviceTransport } from '../wireguard/context.js';
import type { PathOwner, Peer } from '../wireguard/peer.js';
import type { BatchUdpSocket } from '../tun/udp-socket.js';
import { decodePackedAddr, encodePackedAddr, packedAddrEquals } from '../tun/packed-addr.js';
import { StunClient } from '../netcheck/stun-client.js';
import { MagicBind } from './magic-bind.js';
import { NO_DISCO_ENDPOINT, addrKind, discoToPacked, packedText, packedToDisco } from './path-addr.js';
import { DiscoPeer } from './disco-peer.js';
import { EndpointDiscovery, relayStunServers } from './endpoint-discovery.js';
import { RelaySet, type RelayEntry, type RelayStatusJson } from './relay-set.js';
import { ACTIVE_MS, MIN_PING_GAP_MS, type Candidate, type PathKind } from './peer-path.js';
import { newMagicCounters, type MagicCounters } from './counters.js';
import { candidateRefusal, readLocalAddresses, type CandidateRefusal, type LocalAddressSet } from './candidate-filter.js';
import { PongLimiter } from './pong-limiter.js';
import { nextTickDelay, TICK_MS } from './tick-schedule.js';
import { Portmapper, type PortmapperOptions } from '../portmap/portmapper.js';
import type { NatKind, NatType } from '../netcheck/nat-type.js';
import { whyNotDirect } from './why-not-direct.js';
import { Birthday, type PeerBirthdayJson } from './birthday.js';
import type { BirthdayNat } from '../../proto/disco/messages.js';

const PING_TIMEOUT_MS = 5000;
/** Relayed bytes (in and out) after which the node counts as carrying bulk traffic through relays (onBulkRelay). */
export const BULK_RELAY_BYTES = 256 * 1024 * 1024;
/** How often our own interface addresses are re-read for the candidate filter. */
const LOCAL_ADDRS_REFRESH_MS = 10_000;

/** The part of the batch UDP socket the magic socket uses (an in-memory one in unit tests). */
export type MagicUdp = Pick<BatchUdpSocket, 'port' | 'send' | 'sendBatch' | 'sendTo'>;

export interface MagicSocketOptions {
  device: Device;
  udp: MagicUdp;
  tunName: string;
  nodePrivate: Uint8Array;
  nodeKey: Uint8Array;
  discoSecret: Uint8Array;
  discoPublic: Uint8Array;
  log: Logger;
  /** Our endpoints or home relay changed: report them to the coordinator. */
  onReportChange: () => void;
  /** The host may be on another network: reconnect what else hangs on the old one (the control stream). */
  onNetworkChange?: () => void;
  /** Never go direct: every peer with a relay is reached through it (benchmarks, debugging; --force-relay, PINHOLE_FORCE_RELAY=1). */
  forceRelay?: boolean;
  /**
   * Announce relay trains to peers (disco 'features') and send them trains where they announced
   * them (agent/wireguard/relay-train.ts). Default on.
   */
  relayTrains?: boolean;
  /** A peer's path kind, endpoint or relay changed (the path reporter looks at the table again). */
  onPathChange?: () => void;
  /** SO_MARK of the relay connections (socket-mark.ts); 0 or absent: unmarked. */
  socketMark?: number;
  /** Told once per peer (metrics): its first packet received, its first direct path. */
  onPathEvent?: (event: PathEvent) => void;
  /** Called once, when BULK_RELAY_BYTES have gone through relays (in and out): this node carries bulk traffic through a relay. */
  onBulkRelay?: () => void;
  /** Ask the gateway to map our UDP port (UPnP, NAT-PMP, PCP); null: never (--no-portmap). */
  portmap: Pick<PortmapperOptions, 'protocols' | 'leaseSeconds'> | null;
  /** Our NAT's mapping kind for birthday probing (birthday.ts); absent: unknown, never tried. */
  natKind?: () => BirthdayNat;
  /** A peer needs our NAT kind and it is unknown: run a netcheck. */
  onNatKindWanted?: () => void;
  /** True while a link monitor reports the host's address changes (networkChanged): the fallback poll of the local addresses slows down. */
  linkWatched?: () => boolean;
}

/**
 * A milestone of one peer's path, in seconds since the peer joined the magic socket (netmap or
 * tunnel start). 'first-packet' is seen by the 250 ms tick, so it is that coarse.
 */
export interface PathEvent {
  kind: 'first-packet' | 'direct';
  seconds: number;
}

export interface PeerSpec {
  nodeKey: string;
  discoKey: string;
  name: string;
  endpoints: string[];
  homeRelay: string | null;
  /** The NAT the peer reported (absent or null: not reported). */
  natKind?: NatKind | null | undefined;
  /** The coordinator sees the peer's stream open (absent: assumed online). */
  online?: boolean;
}

export interface PeerPathStatus {
  path: PathKind;
  endpoint: string | null;
  relay: string | null;
  latencyMs: number | null;
  /** Why the path is not direct, one line (why-not-direct.ts); null when direct. */
  whyNotDirect: string | null;
  /** Direct candidates now, disco pings sent to candidates and pongs back from them. */
  tried: { candidates: number; pingsSent: number; pongsReceived: number };
  /** Seconds since traffic or disco last went to or came from the peer. */
  idleSeconds: number;
  /** Both NAT kinds: ours from netcheck, the peer's as it reported it, else as its pings showed it. */
  nat: PeerNatJson;
  /** Birthday probing toward the peer (null: never tried). */
  birthday: PeerBirthdayJson | null;
}

export interface PeerNatJson {
  self: NatKind | null;
  peer: NatKind | null;
  peerSource: 'reported' | 'inferred' | null;
}

/** One row of the path table the agent reports to the coordinator (StreamPaths). */
export interface PeerPathRow extends PeerPathStatus {
  nodeKey: string;
}

export interface PingResult {
  path: 'direct' | 'relay';
  /** "ip:port" for a direct reply, the relay's name for a relayed one. */
  via: string;
  latencyMs: number;
}

interface PendingPing {
  peer: DiscoPeer;
  /** The candidate pinged, or null for a ping through the relay. */
  target: Candidate | null;
  relay: string | null;
  sentAt: number;
  waiter?: (r: PingResult | null) => void;
  /** A birthday spray probe: its target is not a candidate until it answers. */
  spray?: boolean;
}

/**
 * The device's transport in managed mode (Device.attach) and the one writer of every managed
 * WireGuard peer's endpoint (Peer.takePath): the netmap, roaming and the device only ask it.
 */
export class MagicSocket implements DeviceTransport, PathOwner {
  readonly bind: MagicBind;
  readonly stun: StunClient;
  readonly relays: RelaySet;
  readonly discovery: EndpointDiscovery;
  /** The gateway's port mapping for our UDP port; null when turned off. */
  readonly portmapper: Portmapper | null;
  readonly counters: MagicCounters = newMagicCounters();
  /** Birthday probing (hard NAT × easy NAT); its counters are in status JSON. */
  readonly birthday: Birthday;
  private readonly byNodeKey = new Map<string, DiscoPeer>();
  private readonly byDiscoKey = new Map<string, DiscoPeer>();
  private readonly byId = new Map<number, DiscoPeer>();
  private readonly pending = new Map<string, PendingPing>();
  private readonly hairpins = new Map<string, () => void>();
  /** The endpoint writers of the WireGuard peers this socket took over (Peer.takePath). */
  private readonly endpointWriters = new WeakMap<Peer, (endpoint: Uint8Array) => void>();
  private nextId = 1;
  /** The one timer: tick() at tickAt (see tick-schedule.ts). */
  private ticker: NodeJS.Timeout | undefined;
  private tickAt = Infinity;
  /** Whether any peer was active (or a ping awaited its pong) at the last tick. */
  private busyAtLastTick = true;
  private closed = false;
  private lastRelaySrc: Uint8Array | null = null;
  private lastRelayPeer: DiscoPeer | null = null;
  private readonly log: Logger;
  private readonly discoClock = new DiscoClock();
  private readonly pongLimiter = new PongLimiter();
  private localAddrs: LocalAddressSet = { own: new Set(), broadcast: new Set() };
  private localAddrsAt = -Infinity;
  /** This node's NAT type from its last netcheck (null: none ran, or it could not tell). */
  private nat: NatType | null = null;
  private netcheckUdp: boolean | null = null;

  constructor(private readonly opts: MagicSocketOptions) {
    this.log = opts.log;
    const { udp } = opts;
    this.stun = new StunClient({ send: (packet, port, address) => { udp.sendTo(packet, { address, port }); } });
    this.relays = new RelaySet({
      nodePrivateKey: opts.nodePrivate, log: opts.log, socketMark: opts.socketMark,
      onRecv: (relay, src, data) => this.onRelayPacket(relay, src, data),
      onHomeChange: () => { this.opts.onReportChange(); for (const p of this.byId.values()) this.applyPath(p, this.now()); },
      // Peers that avoided the relay while it was down use it again (their pending handshakes follow).
      onConnect: () => { for (const p of this.byId.values()) this.applyPath(p, this.now()); },
    });
    this.discovery = new EndpointDiscovery({
      stun: this.stun, port: () => udp.port, exclude: [opts.tunName], log: opts.log,
      servers: () => [...new Set(this.relays.relays().flatMap((r) => relayStunServers(r)))],
      onChange: () => this.opts.onReportChange(),
      onLocalChange: () => this.networkChanged(['local addresses changed (poll)']),
      linkWatched: () => this.opts.linkWatched?.() ?? false,
      mapped: () => this.portmapper?.external ?? null,
    });
    this.portmapper = opts.portmap ? new Portmapper({
      ...opts.portmap, localPort: () => udp.port, log: opts.log, onChange: () => this.discovery.mappedChanged(),
    }) : null;
    this.birthday = new Birthday({
      log: opts.log,
      now: () => this.now(),
      ourNat: () => (this.opts.forceRelay ? 'unknown' : this.opts.natKind?.() ?? 'unknown'),
      wantNatKind: () => this.opts.onNatKindWanted?.(),
      ourPublic: () => {
        const first = this.discovery.reflexiveEndpoints.map(packedFromText).find((x) => x !== undefined && x[0] === 4);
        return first ? packedToDisco(first) : null;
      },
      sendBirthday: (p, msg) => {
        const relay = this.relayFor(p);
        return relay !== null && this.sendDisco(p, this.payload(msg), null, relay);
      },
      sealedPing: (p) => !p.discoUsable ? null : sealDisco(this.payload({ type: 'ping', txid: randomBytes(12), nodeKey: this.opts.nodeKey }), this.opts.discoPublic, p.sharedKey),
      sprayPing: (p, to) => {
        const now = this.now();
        this.sendPing(p, p.path.detached(packedText(to), to, now), now, undefined, true);
      },
      receive: (data, from) => this.onBirthdayPacket(data, from),
    });
    this.bind = new MagicBind(udp, (id, packet) => this.sendViaRelay(id, packet), this.birthday.send);
  }

  start(): void {
    this.discovery.start();
    this.portmapper?.start();
    this.arm(TICK_MS);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.ticker);
    this.ticker = undefined;
    this.discovery.stop();
    await this.portmapper?.close();
    this.stun.close();
    this.birthday.close();
    for (const p of this.pending.values()) p.waiter?.(null);
    this.pending.clear();
    await this.relays.close();
  }

  get endpoints(): string[] {
    return this.discovery.endpoints;
  }

  get homeRelay(): string | null {
    return this.relays.homeRelay;
  }

  setRelays(list: RelayEntry[]): void {
    const had = this.relays.relays().length;
    this.relays.setRelays(list);
    if (had === 0 && list.length > 0) void this.discovery.discover();
  }

  /**
   * The host may be on another network (link monitor, or the address poll): every relay
   * connection is dialled again, direct paths are re-confirmed (traffic rides the relay until a
   * pong), endpoints are discovered again, and every active peer gets our new endpoints by call-me-maybe
   * through the relay so it pings them at once. The UDP socket is bound to the wildcard address
   * and needs no rebinding.
   */
  networkChanged(reasons: string[]): Promise<void> {
    this.log.info(`network changed (${reasons.join('; ')}): reconnecting relays, re-discovering endpoints`);
    this.counters.networkChanges++;
    this.localAddrsAt = -Infinity;
    this.relays.reconnectAll();
    this.portmapper?.networkChanged();
    this.opts.onNetworkChange?.();
    const now = this.now();
    for (const p of this.byId.values()) {
      p.path.networkChanged(now);
      this.applyPath(p, now);
    }
    return this.discovery.refresh().then(() => {
      // Idle peers learn the new endpoints from the coordinator, and probe when traffic resumes.
      const t = this.now();
      for (const p of this.byId.values()) {
        if (!p.path.active(t)) continue;
        p.path.allowCallMeMaybe();
        this.probe(p, t);
      }
    });
  }

  relayStatus(): RelayStatusJson[] {
    return this.relays.status();
  }

  /** Makes the disco peers match the WireGuard peers the netmap produced. */
  syncPeers(specs: Iterable<PeerSpec>): void {
    const now = this.now();
    const seen = new Set<string>();
    for (const s of specs) {
      const wg = this.opts.device.peers.get(s.nodeKey);
      if (!wg) continue;
      seen.add(s.nodeKey);
      let p = this.byNodeKey.get(s.nodeKey);
      const discoKey = Buffer.from(s.discoKey, 'base64');
      if (discoKey.length !== DISCO_KEY_LEN) continue;
      if (p && p.wg !== wg) { this.forget(p); p = undefined; }
      if (!p) {
        p = new DiscoPeer(this.nextId++, Buffer.from(s.nodeKey, 'base64'), s.nodeKey, discoKey, this.opts.discoSecret, wg, s.name);
        p.addedAt = now;
        // A WireGuard peer that already carried traffic (re-created disco state) has no first packet to time.
        p.firstPacketSeen = wg.rxPackets > 0;
        this.byNodeKey.set(s.nodeKey, p);
        this.byId.set(p.id, p);
        this.byDiscoKey.set(p.discoKeyB64, p);
        if (!this.endpointWriters.has(wg)) this.endpointWriters.set(wg, wg.takePath(this));
      } else if (p.discoKeyB64 !== s.discoKey) {
        this.byDiscoKey.delete(p.discoKeyB64);
        p.setDiscoKey(discoKey, this.opts.discoSecret);
        this.byDiscoKey.set(p.discoKeyB64, p);
      }
      p.name = s.name;
      p.homeRelay = s.homeRelay;
      p.reportedNat = s.natKind ?? null;
      p.online = s.online ?? true;
      const eps: { text: string; packed: Uint8Array }[] = [];
      const refused: string[] = [];
      for (const text of s.endpoints) {
        try {
          const packed = packedFromText(text);
          if (!packed) { refused.push('not ip:port'); continue; }
          const why = this.refusal(p, packed, 'netmap', now);
          if (why === null) eps.push({ text: packedText(packed), packed });
          else refused.push(why);
        } catch { refused.push('not ip:port'); }
      }
      p.netmapEndpoints = s.endpoints.length;
      p.netmapRefused = refused;
      p.path.setNetmapEndpoints(eps, now);
      this.applyPath(p, now);
    }
    for (const p of [...this.byNodeKey.values()]) if (!seen.has(p.nodeKeyB64)) this.forget(p);
  }

  peerStatus(nodeKey: string): PeerPathStatus | null {
    const p = this.byNodeKey.get(nodeKey);
    return p ? this.statusOf(p, this.now()) : null;
  }

  /** Every peer's path, with why it is not direct and what was tried (for the coordinator's live mesh). */
  pathTable(): PeerPathRow[] {
    const now = this.now();
    return [...this.byId.values()].map((p) => ({ nodeKey: p.nodeKeyB64, ...this.statusOf(p, now) }));
  }

  /** This node's NAT type as its last netcheck showed it (StreamPaths.natType). */
  get natType(): string | null {
    return this.nat?.text ?? null;
  }

  /** A netcheck ran: its NAT type and UDP verdict feed "why not direct". */
  setNetcheck(nat: NatType | null, udp: boolean): void {
    this.nat = nat;
    this.netcheckUdp = udp;
    this.opts.onPathChange?.();
  }

  private statusOf(p: DiscoPeer, now: number): PeerPathStatus {
    const path = p.path;
    const best = path.direct(now);
    const relay = this.relayFor(p);
    const tried = { candidates: path.candidates.size, pingsSent: path.pingsSent, pongsReceived: path.pongsReceived };
    const idleSeconds = Math.round(Math.max(0, now - Math.max(path.lastActiveAt, p.addedAt)) / 1000);
    const peerNat = p.nat();
    const nat: PeerNatJson = { self: this.nat?.kind ?? null, peer: peerNat.kind, peerSource: peerNat.source };
    let s: Omit<PeerPathStatus, 'whyNotDirect' | 'tried' | 'idleSeconds' | 'nat' | 'birthday'>;
    if (best) s = { path: 'direct', endpoint: best.text, relay: p.homeRelay, latencyMs: round(best.latencyMs) };
    else if (relay && p.wg.endpoint && addrKind(p.wg.endpoint) === 'relay') s = { path: 'relay', endpoint: firstText(p), relay, latencyMs: round(path.relayLatencyMs) };
    else {
      // No relay to use and no pong yet: packets go to a candidate on trust (applyPath), which is
      // no confirmed path. A relay address left from a relay the netmap no longer lists is none either.
      const ep = p.wg.endpoint && addrKind(p.wg.endpoint) !== 'relay' ? p.wg.endpoint : null;
      s = { path: 'none', endpoint: ep ? packedText(ep) : null, relay: p.homeRelay, latencyMs: null };
    }
    const why = s.path === 'direct' ? null : whyNotDirect({
      path: s.path, forceRelay: this.opts.forceRelay === true, udpBlocked: this.udpBlocked(), selfNat: nat.self, peerNat: nat.peer,
      candidates: path.candidates.size, refused: p.netmapRefused, netmapEndpoints: p.netmapEndpoints,
      pingsSent: path.pingsSent, pongsReceived: path.pongsReceived,
      unansweredMs: path.unansweredSince === 0 ? null : now - path.unansweredSince,
      lostAgoMs: path.lostAt === 0 ? null : now - path.lostAt,
      relay, relayDown: relay !== null && this.relays.down(relay), active: path.active(now), peerOnline: p.online,
    });
    return { ...s, whyNotDirect: why, tried, idleSeconds, nat, birthday: this.birthday.peerStatus(p) };
  }

  /** No STUN server answers over UDP: netcheck said so, or endpoint discovery never got an answer. */
  private udpBlocked(): boolean {
    if (this.netcheckUdp !== null) return !this.netcheckUdp;
    const d = this.discovery;
    return d.lastStunAt !== null && d.lastStunError !== null && d.reflexiveEndpoints.length === 0;
  }

  /** A disco ping over the peer's current path; null on timeout. Also starts path discovery. */
  ping(nodeKey: string, timeoutMs = 2000): Promise<PingResult | null> {
    const p = this.byNodeKey.get(nodeKey);
    if (!p) return Promise.resolve(null);
    const now = this.now();
    this.markActive(p, now);
    const best = p.path.direct(now);
    if (!best && p.path.probeDue(now)) this.probe(p, now);
    return new Promise((resolve) => {
      let done = false;
      const finish = (r: PingResult | null): void => { if (!done) { done = true; clearTimeout(timer); resolve(r); } };
      const timer = setTimeout(() => finish(null), timeoutMs);
      if (!this.sendPing(p, best, now, finish)) finish(null);
    });
  }

  /** For netcheck: a probe from this socket to address:port; true if it comes back to us. */
  hairpin(address: string, port: number, timeoutMs: number): Promise<boolean> {
    const { transactionId, bytes } = encodeBindingRequest();
    const key = Buffer.from(transactionId).toString('hex');
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.hairpins.delete(key); resolve(false); }, timeoutMs);
      this.hairpins.set(key, () => { clearTimeout(timer); this.hairpins.delete(key); resolve(true); });
      if (!this.opts.udp.sendTo(bytes, { address, port })) { clearTimeout(timer); this.hairpins.delete(key); resolve(false); }
    });
  }

  // --- receive ------------------------------------------------------------------------------

  /** DeviceTransport: a datagram on the UDP socket that is not WireGuard (disco or STUN). */
  onOtherPacket(packet: Uint8Array, addrs: Uint8Array, off: number): void {
    if (isDiscoPacket(packet)) {
      this.onDisco(Uint8Array.from(packet), copyBytes(addrs, off, off + 20), null, null);
      return;
    }
    if (isStunMessage(packet)) {
      if (this.hairpins.size > 0 && (packet[0]! & 0x01) === 0 && (packet[1]! & 0x10) === 0) {
        const done = this.hairpins.get(Buffer.from(packet.subarray(8, 20)).toString('hex'));
        if (done) { done(); return; }
      }
      const from = decodePackedAddr(addrs, off);
      this.stun.handlePacket(packet, from);
      return;
    }
    this.counters.unknownDropped++;
  }

  /**
   * PathOwner: WireGuard data from a peer arrived from an address that is not its path (its NAT
   * rebound, or it roamed). Treat it like a ping from there: try that address, and re-check the
   * current path. A peer with no endpoint at all (no relay, no usable netmap endpoint) is answered
   * where it wrote from, as WireGuard would.
   */
  onPeerSource(peer: Peer, addrs: Uint8Array, off: number): void {
    if (peer.endpoint === undefined) { this.setEndpoint(peer, copyBytes(addrs, off, off + 20)); return; }
    if (addrKind(addrs, off) !== 'udp') return; // through a relay or a birthday socket: nothing to learn
    const p = this.byNodeKey.get(peer.publicKeyBase64);
    if (!p || this.opts.forceRelay) return;
    const now = this.now();
    if (now - p.lastSourceCheckAt < 1000) return;
    p.lastSourceCheckAt = now;
    const c = p.path.addPacked(copyBytes(addrs, off, off + 20), 'ping', now);
    this.sendPing(p, c, now);
    const best = p.path.best;
    if (best && best !== c && now - best.lastPingAt >= MIN_PING_GAP_MS) this.sendPing(p, best, now);
  }

  /** A datagram on a birthday socket (birthday.ts): disco from the peer, or its WireGuard traffic. */
  private onBirthdayPacket(data: Uint8Array, from: Uint8Array): void {
    if (isDiscoPacket(data)) { this.onDisco(Uint8Array.from(data), from, null, null); return; }
    if (messageType(data) !== 0) { this.opts.device.receiveRelayed(data, from); return; }
    this.counters.unknownDropped++;
  }

  private onRelayPacket(relay: string, src: Uint8Array, data: Uint8Array): void {
    let p: DiscoPeer | undefined | null = this.lastRelayPeer;
    if (!p || !this.lastRelaySrc || !bytesEqual(this.lastRelaySrc, src)) {
      p = this.byNodeKey.get(Buffer.from(src).toString('base64'));
      this.lastRelaySrc = Uint8Array.from(src);
      this.lastRelayPeer = p ?? null;
    }
    if (!p) { this.counters.relayUnknownSender++; return; }
    this.noteRelayBytes(data.length);
    if (messageType(data) !== 0) {
      this.markActive(p, this.now());
      this.opts.device.receiveRelayed(data, p.relayAddr);
      return;
    }
    if (isDiscoPacket(data)) { this.onDisco(data, null, relay, p); return; }
    this.counters.unknownDropped++;
  }

  private onDisco(packet: Uint8Array, fromUdp: Uint8Array | null, relay: string | null, relayPeer: DiscoPeer | null): void {
    const sender = Buffer.from(packet.subarray(DISCO_MAGIC.length, DISCO_MAGIC.length + DISCO_KEY_LEN)).toString('base64');
    const p = this.byDiscoKey.get(sender);
    if (!p || (relayPeer && relayPeer !== p)) { this.counters.discoUnknownSender++; return; }
    if (!p.discoUsable) { this.counters.discoBadPacket++; return; }
    let env: DiscoEnvelope;
    try {
      env = openDisco(packet, p.sharedKey);
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      this.counters.discoBadPacket++;
      return;
    }
    const now = this.now();
    // Only the sender can set sent-at (it is inside the box): a captured packet sent again is refused here.
    const verdict = p.replay.accept(env.sentAt, now);
    if (verdict !== 'ok') {
      if (verdict === 'replayed') this.counters.discoReplayed++;
      else this.counters.discoStale++;
      return;
    }
    const msg: DiscoMessage = env.msg;
    switch (msg.type) {
      case 'ping': {
        if (!bytesEqual(msg.nodeKey, p.nodeKey)) { this.counters.discoBadPacket++; return; }
        this.counters.pingsReceived++;
        if (fromUdp) p.notePingFrom(fromUdp);
        this.markActive(p, now);
        if (fromUdp && !this.pongAllowed(p, fromUdp, now)) {
          this.counters.pongsRateLimited++;
          return;
        }
        const pong = this.payload({ type: 'pong', txid: msg.txid, src: fromUdp ? packedToDisco(fromUdp) : NO_DISCO_ENDPOINT });
        this.sendDisco(p, pong, fromUdp, relay);
        if (fromUdp && !this.opts.forceRelay) {
          const cur = p.path.best;
          if (cur && !packedAddrEquals(fromUdp, 0, cur.packed, 0) && now - cur.lastPingAt >= MIN_PING_GAP_MS) this.sendPing(p, cur, now); // is our path still alive?
          // A path the peer found to us: try it back at once (this is what opens both NATs).
          const c = p.path.addPacked(fromUdp, 'ping', now);
          const best = p.path.direct(now);
          if (best !== c && now - c.lastPingAt >= 200) this.sendPing(p, c, now);
        }
        return;
      }
      case 'pong': {
        const key = Buffer.from(msg.txid).toString('hex');
        const pend = this.pending.get(key);
        if (!pend || pend.peer !== p) { this.counters.pongsUnmatched++; return; }
        if (pend.target && (!fromUdp || !packedAddrEquals(fromUdp, 0, pend.target.packed, 0))) { this.counters.pongsUnmatched++; return; }
        this.pending.delete(key);
        this.counters.pongsReceived++;
        const latency = now - pend.sentAt;
        if (pend.spray && pend.target) {
          pend.target = p.path.addPacked(pend.target.packed, 'ping', now);
          this.birthday.sprayHit(p, now);
        }
        if (pend.target) {
          if (p.path.onPong(pend.target, latency, now)) this.log.info(`${p.name}: direct path ${pend.target.text} (${latency.toFixed(1)} ms)`);
          this.applyPath(p, now);
          pend.waiter?.({ path: 'direct', via: pend.target.text, latencyMs: latency });
        } else {
          p.path.noteRelayPong(latency);
          pend.waiter?.({ path: 'relay', via: pend.relay ?? '?', latencyMs: latency });
        }
        return;
      }
      case 'call-me-maybe': {
        this.counters.callMeMaybeReceived++;
        this.markActive(p, now);
        if (!p.path.direct(now)) p.path.resetProbes();
        // The peer may have moved (a new network): is our path to it still alive? A missed pong
        // makes it suspect within SUSPECT_AFTER_MS, and one of the endpoints below takes over.
        const cur = p.path.best;
        if (cur && !this.opts.forceRelay && now - cur.lastPingAt >= MIN_PING_GAP_MS) this.sendPing(p, cur, now);
        for (const e of this.opts.forceRelay ? [] : msg.endpoints) {
          const packed = discoToPacked(e);
          if (!packed || !this.probeable(p, packed, 'call-me-maybe', now)) continue;
          const c = p.path.addPacked(packed, 'call-me-maybe', now);
          if (now - c.lastPingAt >= 200) this.sendPing(p, c, now);
        }
        return;
      }
      case 'birthday':
        this.markActive(p, now);
        if (!this.opts.forceRelay) this.birthday.onMessage(p, msg, now);
        return;
      case 'features':
        this.counters.featuresReceived++;
        p.wg.relayTrains = this.opts.relayTrains !== false && (msg.flags & FEATURE_RELAY_TRAINS) !== 0;
        if (!p.featuresSent) this.sendFeatures(p, relay ?? this.relayFor(p));
        return;
    }
  }

  // --- send ---------------------------------------------------------------------------------

  private sendViaRelay(peerId: number, packet: Uint8Array): boolean {
    const p = this.byId.get(peerId);
    const relay = p ? this.relayFor(p) : null;
    if (!p || !relay) { this.counters.relayNoRoute++; return false; }
    this.noteRelayBytes(packet.length);
    const now = this.now();
    if (!p.path.active(now)) p.path.resetProbes();
    this.markActive(p, now);
    if (p.path.probeDue(now)) {
      p.path.noteProbeScheduled(now); // one probe per burst of packets
      setImmediate(() => this.probe(p, this.now()));
    }
    return this.relays.send(relay, p.nodeKey, packet);
  }

  /** Pings every candidate and asks the peer, through the relay, to ping ours (the punch). */
  private probe(p: DiscoPeer, now: number, targets = p.path.probeTargets(now)): void {
    if (!this.byId.has(p.id)) return;
    if (!this.opts.forceRelay) for (const c of targets) this.sendPing(p, c, now);
    const relay = this.relayFor(p);
    if (relay && p.path.takeCallMeMaybe(now)) {
      const endpoints = this.endpoints.map(packedFromText).filter((x): x is Uint8Array => x !== undefined).map((x) => packedToDisco(x));
      this.sendDisco(p, this.payload({ type: 'call-me-maybe', endpoints }), null, relay);
      this.counters.callMeMaybeSent++;
      this.sendFeatures(p, relay);
      this.sendPing(p, null, now);
    }
  }

  /** A disco ping to candidate `target` (or through the relay when null). */
  private sendPing(p: DiscoPeer, target: Candidate | null, now: number, waiter?: (r: PingResult | null) => void, spray = false): boolean {
    const relay = target ? null : this.relayFor(p);
    if (!target && !relay) return false;
    const txid = randomBytes(12);
    const key = txid.toString('hex');
    this.pending.set(key, { peer: p, target, relay, sentAt: now, ...(waiter ? { waiter } : {}), ...(spray ? { spray } : {}) });
    if (target) p.path.notePingSent(target, now);
    this.counters.pingsSent++;
    return this.sendDisco(p, this.payload({ type: 'ping', txid, nodeKey: this.opts.nodeKey }), target?.packed ?? null, relay);
  }

  /** Bytes through relays (both ways), counted up to BULK_RELAY_BYTES. */
  private relayBytes = 0;

  private noteRelayBytes(n: number): void {
    if (this.relayBytes >= BULK_RELAY_BYTES) return;
    this.relayBytes += n;
    if (this.relayBytes >= BULK_RELAY_BYTES) this.opts.onBulkRelay?.();
  }

  /** What we accept beyond plain WireGuard (disco 'features'), through the relay. */
  private sendFeatures(p: DiscoPeer, relay: string | null): void {
    if (relay === null) return;
    const flags = this.opts.relayTrains === false ? 0 : FEATURE_RELAY_TRAINS;
    if (this.sendDisco(p, this.payload({ type: 'features', flags }), null, relay)) {
      p.featuresSent = true;
      this.counters.featuresSent++;
    }
  }

  private payload(msg: DiscoMessage): Uint8Array {
    return encodeDiscoPayload(msg, this.discoClock.next());
  }

  /** A pong to `to` goes out at once if `to` is the peer's confirmed path, else within the pong limits. */
  private pongAllowed(p: DiscoPeer, to: Uint8Array, now: number): boolean {
    const best = p.path.direct(now);
    if (best && packedAddrEquals(best.packed, 0, to, 0)) return true;
    return this.pongLimiter.allow(Buffer.from(to).toString('hex'), now);
  }

  /** False (and counted) for a peer-supplied endpoint we must not probe: see candidate-filter.ts. */
  private probeable(p: DiscoPeer, packed: Uint8Array, source: string, now: number): boolean {
    return this.refusal(p, packed, source, now) === null;
  }

  /** Why a peer-supplied endpoint must not be probed (counted), or null. */
  private refusal(p: DiscoPeer, packed: Uint8Array, source: string, now: number): CandidateRefusal | null {
    if (now - this.localAddrsAt >= LOCAL_ADDRS_REFRESH_MS) {
      this.localAddrs = readLocalAddresses();
      this.localAddrsAt = now;
    }
    const why = candidateRefusal(packed, this.localAddrs);
    if (why === null) return null;
    this.counters.candidatesRefused++;
    this.log.debug(`${p.name}: ${source} endpoint ${packedText(packed)} refused (${why})`);
    return why;
  }

  private sendDisco(p: DiscoPeer, payload: Uint8Array, udpAddr: Uint8Array | null, relay: string | null): boolean {
    if (!p.discoUsable) return false;
    const packet = sealDisco(payload, this.opts.discoPublic, p.sharedKey);
    if (udpAddr) return this.bind.send(packet, udpAddr); // plain UDP, or a birthday socket's address
    if (relay) return this.relays.send(relay, p.nodeKey, packet, true);
    return false;
  }

  // --- path ---------------------------------------------------------------------------------

  private relayFor(p: DiscoPeer): string | null {
    // Theirs, or ours when both are of one meshed region; if theirs is refused here (wrong key),
    // ours is the relay left where they may find us.
    return this.relays.relayToward(p.homeRelay);
  }

  /**
   * Points the WireGuard peer at the path the selector wants: the confirmed direct endpoint, else
   * the relay, unless the relay is down (then a candidate: a handshake sent to a dead relay waits
   * REKEY_TIMEOUT for its retry). A handshake still pending when the path changes is sent again
   * on the new path at once.
   */
  private applyPath(p: DiscoPeer, now: number): void {
    const best = p.path.direct(now);
    let relay = this.relayFor(p);
    const firstCandidate = p.path.candidates.values().next().value?.packed;
    if (!best && relay && firstCandidate && !this.opts.forceRelay && this.relays.down(relay)) relay = null;
    let want: Uint8Array | undefined;
    if (best) want = best.packed;
    else if (relay) want = p.relayAddr;
    else want = firstCandidate ?? p.wg.endpoint;
    const cur = p.wg.endpoint;
    let changed = false;
    if (want && (!cur || !packedAddrEquals(cur, 0, want, 0))) {
      const wasRelay = cur !== undefined && addrKind(cur) === 'relay';
      this.setEndpoint(p.wg, want);
      if (!best && relay && !wasRelay) this.log.info(`${p.name}: path via relay ${relay}`);
      this.opts.device.resendInitiation(p.wg, now);
      changed = true;
    }
    const relayInUse = best ? null : relay;
    if (p.relayInUse !== relayInUse) { p.relayInUse = relayInUse; changed = true; }
    if (changed) this.opts.onPathChange?.();
    if (best && !p.firstDirectSeen) {
      p.firstDirectSeen = true;
      this.opts.onPathEvent?.({ kind: 'direct', seconds: (now - p.addedAt) / 1000 });
    }
  }

  /** The only place a managed peer's endpoint is written (the writer Peer.takePath gave us). */
  private setEndpoint(wg: Peer, endpoint: Uint8Array): void {
    this.endpointWriters.get(wg)?.(endpoint);
  }

  /** Traffic or disco through JS: the peer is active, and the socket ticks at TICK_MS again. */
  private markActive(p: DiscoPeer, now: number): void {
    p.path.noteActive(now);
    this.arm(TICK_MS);
  }

  /** tick() within `ms` at the latest (sooner if already armed sooner). */
  private arm(ms: number): void {
    if (this.closed) return;
    const at = performance.now() + ms;
    if (this.ticker !== undefined && this.tickAt <= at) return;
    if (this.ticker !== undefined) clearTimeout(this.ticker);
    this.tickAt = at;
    this.ticker = setTimeout(this.onTimer, ms);
  }

  private readonly onTimer = (): void => {
    this.ticker = undefined;
    this.tickAt = Infinity;
    this.tick();
    const now = this.now();
    let busy = this.pending.size > 0;
    let trustExpiry = Infinity;
    for (const p of this.byId.values()) {
      // A peer new to the tunnel counts as active until its first packet (or ACTIVE_MS): its
      // first packet and first direct path are timed at the tick's resolution.
      if (p.path.active(now) || (!p.firstPacketSeen && now - p.addedAt < ACTIVE_MS)) { busy = true; break; }
      trustExpiry = Math.min(trustExpiry, p.path.trustExpiresAt());
    }
    this.busyAtLastTick = busy;
    this.arm(nextTickDelay(busy, trustExpiry - now));
  };

  /**
   * True while peers are quiet (as of the last tick): latencies and reasons do not move then, and
   * whatever does change (a path, a new peer) is announced through onPathChange.
   */
  get quiet(): boolean {
    return !this.busyAtLastTick;
  }

  private tick(): void {
    const now = this.now();
    for (const p of this.byId.values()) {
      const wg = p.wg;
      if (wg.txPackets !== p.lastTx || wg.rxPackets !== p.lastRx) {
        p.lastTx = wg.txPackets;
        p.lastRx = wg.rxPackets;
        p.path.noteActive(now);
        if (!p.firstPacketSeen && wg.rxPackets > 0) {
          p.firstPacketSeen = true;
          this.opts.onPathEvent?.({ kind: 'first-packet', seconds: (now - p.addedAt) / 1000 });
        }
      }
      const hadDirect = p.path.best !== null;
      const { heartbeat, probe } = p.path.due(now);
      if (hadDirect && p.path.best === null) this.log.info(`${p.name}: direct path lost, back to the relay`);
      if (heartbeat) this.sendPing(p, heartbeat, now);
      if (probe !== null) this.probe(p, now, probe);
      this.applyPath(p, now);
      this.birthday.tick(p, now, p.path.active(now), p.path.best?.packed ?? null, p.relayInUse !== null);
    }
    for (const [key, pend] of this.pending) {
      if (now - pend.sentAt > PING_TIMEOUT_MS) {
        this.pending.delete(key);
        pend.waiter?.(null);
      }
    }
  }

  private forget(p: DiscoPeer): void {
    this.birthday.forget(p);
    this.byNodeKey.delete(p.nodeKeyB64);
    this.byId.delete(p.id);
    if (this.byDiscoKey.get(p.discoKeyB64) === p) this.byDiscoKey.delete(p.discoKeyB64);
    if (this.lastRelayPeer === p) { this.lastRelayPeer = null; this.lastRelaySrc = null; }
  }

  private now(): number {
    return performance.timeOrigin + performance.now();
  }
}

function packedFromText(text: string): Uint8Array | undefined {
  const m = /^\[?([0-9a-fA-F:.]+)\]?:(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  try { return encodePackedAddr({ address: m[1]!, port: Number(m[2]) }); } catch { return undefined; }
}

function firstText(p: DiscoPeer): string | null {
  return p.path.candidates.values().next().value?.text ?? null;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function round(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 100) / 100;
}
