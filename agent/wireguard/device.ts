// A WireGuard device: peers, cryptokey routing, the index table, and the glue between the
// native TUN/UDP batches and the handshake, transport and timer code.
import { randomInt } from 'node:crypto';
import { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import { DEFAULT_TIMERS, type WireGuardTimers } from '../../proto/wireguard/constants.js';
import { localIdentity, remoteIdentity, type LocalIdentity } from '../../proto/wireguard/handshake.js';
import { CookieChecker } from '../../proto/wireguard/macs.js';
import { messageType } from '../../proto/wireguard/messages.js';
import { publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { formatCidr, maskCidr, type Cidr } from '../../proto/ip/address.js';
import type { DeviceContext, DeviceTransport, InboundPacketHook, IndexEntry, OutboundPacketHook, PacketBind, PacketTun } from './context.js';
import { newDropCounters, newHandshakeCounters, newTrainCounters } from './counters.js';
import { TRAIN_MAX_PLAINTEXT } from './relay-train.js';
import { decodePackedAddr, formatEndpoint } from '../tun/packed-addr.js';
import { receiveHandshake, sendInitiation, sendInitiationCopy } from './handshakes.js';
import { Peer } from './peer.js';
import { nextTimerDeadline, tickPeer, timerWakeDelay, TIMER_TICK_MS } from './timers.js';
import { DECRYPTED_BY_NATIVE, FastPathLink, TAKEN_BY_NATIVE, fastPathLimits, type NativeDirections } from './fast-path.js';
import type { NativeFastPath, NativeFastPathCounters } from '../tun/native.js';
import { TransportReceiver, TransportSender, type SlabLayout } from './transport.js';
import { LocalAddresses } from './local-addresses.js';
import { addrKind } from '../magicsock/path-addr.js';

/** Handshake messages per second above which the device answers with cookies (wireguard-go: queue ≥ 1/8 full). */
export const DEFAULT_UNDER_LOAD_THRESHOLD = 128;
/** Relayed messages decrypted as one batch, and the largest one (a full train, sealed: relay-train.ts). */
const RELAYED_SLOTS = 32;
const RELAYED_MAX = TRAIN_MAX_PLAINTEXT + 64;
/** How long the device stays "under load" after the rate drops. */
const UNDER_LOAD_AFTER_MS = 1000;
const noop = (): void => undefined;

export interface DeviceOptions {
  privateKey: Uint8Array;
  mtu: number;
  /**
   * This node's own addresses (host bits kept; taken as /32, /128): the only destinations a
   * peer's packet is delivered to the TUN for (setLocalAddresses changes them).
   */
  localAddresses: Cidr[];
  timers?: Partial<WireGuardTimers>;
  underLoadThreshold?: number;
  /** Called once per batch the native side hands to JavaScript (TUN, UDP, relayed): a load signal. */
  onBatch?: () => void;
}

export interface PeerConfig {
  publicKey: Uint8Array;
  presharedKey?: Uint8Array;
  allowedIps: Cidr[];
  endpoint?: Uint8Array;
  persistentKeepaliveSeconds?: number;
  name?: string;
}

/** What Device.attach joins the device to. */
export interface DeviceAttachment {
  tun: PacketTun;
  /** The TUN's read slab. */
  tunSlab: SlabLayout;
  transport: DeviceTransport;
  /** The UDP socket's receive slab. */
  udpSlab: SlabLayout;
}

export class Device implements DeviceContext {
  readonly identity: LocalIdentity;
  readonly timers: WireGuardTimers;
  readonly peers = new Map<string, Peer>();
  readonly allowedIps = new AllowedIps<Peer>();
  readonly indices = new Map<number, IndexEntry>();
  readonly cookieChecker: CookieChecker;
  readonly drops = newDropCounters();
  readonly handshakes = newHandshakeCounters();
  readonly trains = newTrainCounters();
  readonly localAddresses: LocalAddresses;
  private _bind: PacketBind | undefined;
  private _tun: PacketTun | undefined;
  private transport: DeviceTransport | undefined;
  private _inboundHook: InboundPacketHook | null = null;
  private _outboundHook: OutboundPacketHook | null = null;
  /** The native data path, when the device runs over the addon's handles (fast-path.ts). */
  private fast: FastPathLink | undefined;
  readonly mtu: number;

  private sender: TransportSender | undefined;
  private receiver: TransportReceiver | undefined;
  private udpLayout: SlabLayout | undefined;
  /** Packets that came through a relay, gathered into a slab of their own and run as one batch. */
  private relayed: { layout: SlabLayout; receiver: TransportReceiver; lengths: Uint32Array; addrs: Uint8Array; count: number; flushQueued: boolean } | undefined;
  /** The one timer of the device: set for the next timer deadline (see timers.ts), at tickerAt. */
  private ticker: NodeJS.Timeout | undefined;
  private tickerAt = Infinity;
  private attached = false;
  private readonly underLoadThreshold: number;
  private handshakeWindowStart = 0;
  private handshakeWindowCount = 0;
  private underLoadUntil = 0;
  private readonly onBatch: () => void;

  constructor(opts: DeviceOptions) {
    this.identity = localIdentity(Uint8Array.from(opts.privateKey), publicKeyFromPrivate(opts.privateKey));
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.mtu = opts.mtu;
    this.cookieChecker = new CookieChecker(this.identity, Date.now(), this.timers.COOKIE_REFRESH_TIME);
    this.underLoadThreshold = opts.underLoadThreshold ?? DEFAULT_UNDER_LOAD_THRESHOLD;
    this.onBatch = opts.onBatch ?? noop;
    this.allowedIps.onChange = () => this.fast?.routesChanged();
    this.localAddresses = new LocalAddresses(opts.localAddresses);
    this.localAddresses.onChange = () => this.fast?.localChanged();
  }

  /** This node's addresses changed (managed mode: the coordinator readdressed it). */
  setLocalAddresses(addresses: Cidr[]): void {
    this.localAddresses.set(addresses);
  }

  get bind(): PacketBind | undefined { return this._bind; }
  get tun(): PacketTun | undefined { return this._tun; }
  /** Packet filter / exit node NAT on decrypted packets (see context.ts); the native path then leaves inbound packets to JS. */
  get inboundHook(): InboundPacketHook | null { return this._inboundHook; }
  /** Flow tracking on outbound packets; the native path then leaves outbound packets to JS. */
  get outboundHook(): OutboundPacketHook | null { return this._outboundHook; }

  /** Sets both packet hooks at once (null: none); the native path is told before the next batch. */
  setPacketHooks(inbound: InboundPacketHook | null, outbound: OutboundPacketHook | null): void {
    this._inboundHook = inbound;
    this._outboundHook = outbound;
    this.fast?.schedule();
  }

  /**
   * Runs the common case of the data path natively over the addon's TUN and UDP handles (see
   * fast-path.ts); `create` makes the addon's FastPath over them. Call after attach().
   */
  attachFastPath(create: (limits: Float64Array, mtu: number, nowMs: number) => NativeFastPath): void {
    if (this.fast !== undefined) return;
    const native = create(fastPathLimits(this.timers), this.mtu, this.now());
    this.fast = new FastPathLink(native, () => this.peers.values(), this.allowedIps, this.localAddresses, () => this.nativeDirections());
    this.fast.sync();
  }

  /**
   * What the native path may do given the hooks: a hook that is only the packet filter over
   * shareable flow tables keeps both directions native (known flows there, new ones through JS);
   * served routes come back to JS decrypted; any other hook keeps its direction in JS.
   */
  private nativeDirections(): NativeDirections {
    const inbound = this._inboundHook;
    const outbound = this._outboundHook;
    const filter = inbound?.nativeFilter ?? null;
    const inboundOk = inbound === null || inbound.nativeFilter !== undefined;
    const outboundOk = outbound === null || (outbound.nativeFilter !== undefined && outbound.nativeFilter === filter);
    return { outbound: outboundOk, inbound: inboundOk, handBack: inbound !== null, filter: inboundOk ? filter : null };
  }

  /** Counters of the native data path, or undefined when it is not in use. */
  fastPathCounters(): NativeFastPathCounters | undefined {
    return this.fast?.counters();
  }

  get publicKeyBase64(): string {
    return Buffer.from(this.identity.publicKey).toString('base64');
  }

  /** Connects the device to its TUN and its UDP transport, once, and starts the timers. */
  attach({ tun, tunSlab, transport, udpSlab }: DeviceAttachment): void {
    if (this.transport !== undefined) throw new Error('device already attached');
    this._tun = tun;
    this._bind = transport.bind;
    this.transport = transport;
    this.sender = new TransportSender(this, tunSlab, this.mtu);
    this.receiver = new TransportReceiver(this, udpSlab);
    this.udpLayout = udpSlab;
    this.attached = true;
    this.armTimers(TIMER_TICK_MS);
    // Peers with a persistent keepalive and an endpoint connect at once, like wireguard-go.
    const now = this.now();
    for (const peer of this.peers.values()) {
      if (peer.persistentKeepaliveSeconds > 0 && peer.endpoint) this.requestHandshake(peer, now);
    }
  }

  close(): void {
    this.attached = false;
    if (this.ticker) clearTimeout(this.ticker);
    this.ticker = undefined;
    this.tickerAt = Infinity;
    this.fast?.close();
    this.fast = undefined;
    for (const peer of this.peers.values()) for (const kp of peer.keypairs()) kp.wipe();
  }

  addPeer(cfg: PeerConfig): Peer {
    const remote = remoteIdentity(this.identity, Uint8Array.from(cfg.publicKey), cfg.presharedKey);
    const peer = new Peer({
      remote, allowedIps: cfg.allowedIps, endpoint: cfg.endpoint,
      persistentKeepaliveSeconds: cfg.persistentKeepaliveSeconds, name: cfg.name,
    });
    if (this.peers.has(peer.publicKeyBase64)) throw new Error(`duplicate peer ${peer.publicKeyBase64}`);
    this.peers.set(peer.publicKeyBase64, peer);
    peer.onChange = () => this.fast?.schedule();
    for (const cidr of cfg.allowedIps) this.allowedIps.insert(maskCidr(cidr), peer);
    this.fast?.schedule();
    this.armTimers(TIMER_TICK_MS); // its persistent keepalive may be due at once
    return peer;
  }

  removePeer(publicKeyBase64: string): boolean {
    const peer = this.peers.get(publicKeyBase64);
    if (!peer) return false;
    this.allowedIps.removeValue(peer);
    for (const [index, entry] of this.indices) if (entry.peer === peer) this.indices.delete(index);
    for (const kp of peer.keypairs()) kp.wipe();
    this.peers.delete(publicKeyBase64);
    peer.onChange = undefined;
    this.fast?.schedule();
    return true;
  }

  /** TUN → peers: the native TUN callback lands here with the packets in the TUN slab. */
  receiveTunBatch(lengths: Uint32Array, count: number): void {
    this.onBatch();
    this.sender?.sendTunBatch(lengths, count);
  }

  /** UDP → TUN: the native UDP callback lands here with datagrams in the UDP slab. */
  receiveUdpBatch(layout: SlabLayout, lengths: Uint32Array, addrs: Uint8Array, count: number): void {
    const receiver = this.receiver;
    if (receiver === undefined) return;
    this.receiveBatch(receiver, layout, lengths, addrs, count);
  }

  /**
   * A WireGuard datagram that came through a relay (or a birthday socket), from the peer the
   * 20-byte `addr` names. It is copied into the relay slab; everything received in the same turn
   * of the event loop (one WebSocket message carries many) is decrypted and written to the TUN as
   * one batch. A relayed message may be a train of packets (relay-train.ts), so its slots hold a
   * whole train; the slab is allocated on the first relayed packet, and the kernel backs only the
   * pages a train touches.
   */
  receiveRelayed(packet: Uint8Array, addr: Uint8Array): void {
    const udp = this.udpLayout;
    if (udp === undefined) return;
    let r = this.relayed;
    if (r === undefined) {
      const slots = RELAYED_SLOTS;
      const slotSize = udp.headroom + RELAYED_MAX;
      const layout: SlabLayout = { slab: Buffer.alloc(slotSize * slots), slotSize, headroom: udp.headroom, slots };
      const receiver = new TransportReceiver(this, layout, true, Math.ceil(TRAIN_MAX_PLAINTEXT / 576));
      r = { layout, receiver, lengths: new Uint32Array(slots), addrs: new Uint8Array(slots * 20), count: 0, flushQueued: false };
      this.relayed = r;
    }
    if (packet.length > RELAYED_MAX) { this.drops.malformed++; return; }
    const i = r.count++;
    r.layout.slab.set(packet, i * r.layout.slotSize + r.layout.headroom);
    r.lengths[i] = packet.length;
    r.addrs.set(addr, i * 20);
    if (r.count === r.layout.slots) this.flushRelayed();
    else if (!r.flushQueued) {
      r.flushQueued = true;
      queueMicrotask(() => this.flushRelayed());
    }
  }

  /** Runs what receiveRelayed gathered now (a microtask does it otherwise; the in-memory test wire calls it). */
  flushRelayed(): void {
    const r = this.relayed;
    if (r === undefined) return;
    r.flushQueued = false;
    const n = r.count;
    r.count = 0;
    if (n > 0) this.receiveBatch(r.receiver, r.layout, r.lengths, r.addrs, n);
  }

  private receiveBatch(receiver: TransportReceiver, layout: SlabLayout, lengths: Uint32Array, addrs: Uint8Array, count: number): void {
    this.onBatch();
    const { slab, slotSize, headroom } = layout;
    const now = this.now();
    for (let i = 0; i < count; i++) {
      const off = i * slotSize + headroom;
      const len = lengths[i]!;
      if (len >= DECRYPTED_BY_NATIVE) {
        if (len !== TAKEN_BY_NATIVE) receiver.deliverOpened(i, len - DECRYPTED_BY_NATIVE, now);
        continue;
      }
      const type = messageType(slab, off, len);
      if (type === 4) {
        if (len >= 32) receiver.open(i, len, addrs, now);
        else this.drops.malformed++;
      } else if (type !== 0) {
        if (type !== 3) this.noteHandshake(now);
        receiveHandshake(this, type, slab.subarray(off, off + len), addrs, i * 20, now);
      } else if (this.transport?.onOtherPacket) {
        this.transport.onOtherPacket(slab.subarray(off, off + len), addrs, i * 20);
      } else {
        this.drops.malformed++;
      }
    }
    receiver.flush();
  }

  now(): number {
    return performance.timeOrigin + performance.now();
  }

  newIndex(): number {
    for (;;) {
      const index = randomInt(1, 0x100000000);
      if (!this.indices.has(index)) return index;
    }
  }

  requestHandshake(peer: Peer, now: number): void {
    if (peer.retransmitDueAt !== 0) return; // an attempt is already running; its timer retries
    if (now - peer.lastInitiationSentAt < this.timers.REKEY_TIMEOUT) return;
    sendInitiation(this, peer, now);
  }

  /**
   * The peer's path changed while an initiation is outstanding (it may have gone to a relay that is
   * down): send a copy of it on the new path now, instead of waiting REKEY_TIMEOUT for the
   * retransmit timer (handshakes.ts, sendInitiationCopy). No-op without an outstanding one.
   */
  resendInitiation(peer: Peer, now: number): void {
    if (peer.retransmitDueAt === 0) return;
    sendInitiationCopy(this, peer, now);
  }

  flushStaged(peer: Peer, now: number): void {
    const staged = peer.staged;
    peer.staged = [];
    this.sender?.sendPackets(peer, staged, now);
  }

  sendKeepalive(peer: Peer, now: number): void {
    if (peer.current === undefined) return;
    this.sender?.sendPackets(peer, [], now);
  }

  // --- packets from the host side (the userspace NAT of an exit node / subnet router) ----------

  /**
   * Sends a packet made on this host (not read from the TUN) into the tunnel: the peer is chosen by
   * its destination through the allowed IPs, like a TUN packet. False if no peer owns it.
   */
  sendFromHost(packet: Uint8Array): boolean {
    const sender = this.sender;
    if (sender === undefined) return false;
    const version = packet.length > 0 ? packet[0]! >>> 4 : 0;
    const peer = version === 4 && packet.length >= 20 ? this.allowedIps.lookupV4(packet, 16)
      : version === 6 && packet.length >= 40 ? this.allowedIps.lookupV6(packet, 24) : undefined;
    if (peer === undefined) { this.drops.noRoute++; return false; }
    sender.queueHostPacket(peer, packet, this.now());
    return true;
  }

  underLoad(now: number): boolean {
    return now < this.underLoadUntil;
  }

  private noteHandshake(now: number): void {
    if (now - this.handshakeWindowStart >= 1000) {
      this.handshakeWindowStart = now;
      this.handshakeWindowCount = 0;
    }
    if (++this.handshakeWindowCount > this.underLoadThreshold) this.underLoadUntil = now + UNDER_LOAD_AFTER_MS;
  }

  private tick(): void {
    this.ticker = undefined;
    this.tickerAt = Infinity;
    const now = this.now();
    let next = Infinity;
    for (const peer of this.peers.values()) {
      tickPeer(this, peer, now);
      next = Math.min(next, nextTimerDeadline(this.timers, peer));
    }
    this.armTimers(timerWakeDelay(this.timers, next, now));
  }

  /** Evaluates the timers in `ms` at the latest (sooner if already armed sooner). */
  private armTimers(ms: number): void {
    if (!this.attached) return;
    const at = performance.now() + ms;
    if (this.ticker !== undefined && this.tickerAt <= at) return;
    if (this.ticker !== undefined) clearTimeout(this.ticker);
    this.tickerAt = at;
    this.ticker = setTimeout(() => this.tick(), ms);
  }

  /** JS's drop counters plus the native data path's. */
  private dropsWithNative(): DeviceStatus['drops'] {
    const drops = { ...this.drops };
    const n = this.fast?.counters();
    if (n) {
      drops.badTag += n.badTag;
      drops.replay += n.replay;
      drops.badInnerPacket += n.badInnerPacket;
      drops.allowedIpsMismatch += n.allowedIpsMismatch;
      drops.notForUs += n.notForUs;
      drops.ioDropped += n.ioDropped;
    }
    return drops;
  }

  status(): DeviceStatus {
    return {
      publicKey: this.publicKeyBase64,
      drops: this.dropsWithNative(),
      handshakes: { ...this.handshakes },
      trains: { ...this.trains },
      peers: [...this.peers.values()].map((p) => ({
        publicKey: p.publicKeyBase64,
        name: p.name,
        endpoint: p.endpoint && addrKind(p.endpoint) === 'udp' ? formatEndpoint(decodePackedAddr(p.endpoint)) : null,
        allowedIps: p.allowedIps.map(formatCidr),
        lastHandshake: p.lastHandshakeCompletedAt ? new Date(p.lastHandshakeCompletedAt).toISOString() : null,
        rxBytes: p.rxBytes,
        txBytes: p.txBytes,
        rxPackets: p.rxPackets,
        txPackets: p.txPackets,
        persistentKeepalive: p.persistentKeepaliveSeconds,
        sessionIndex: p.current?.localIndex ?? null,
        staged: p.staged.length,
        relayTrains: p.relayTrains,
      })),
    };
  }
}

export interface PeerStatus {
  publicKey: string;
  name: string | undefined;
  endpoint: string | null;
  allowedIps: string[];
  lastHandshake: string | null;
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  persistentKeepalive: number;
  sessionIndex: number | null;
  staged: number;
  /** The peer accepts relay trains (relay-train.ts). */
  relayTrains: boolean;
}

export interface DeviceStatus {
  publicKey: string;
  drops: ReturnType<typeof newDropCounters>;
  handshakes: ReturnType<typeof newHandshakeCounters>;
  trains: ReturnType<typeof newTrainCounters>;
  peers: PeerStatus[];
}
