// The data path: TUN batch → encrypt in place → one UDP batch send, and UDP batch → decrypt in
// place → one TUN batch write. No per-packet allocation in steady state: packets stay in the
// slabs the native side filled, headers are written into the headroom in front of them.
import { sodium } from '../../proto/sodium.js';
import { TAG_LEN, TRANSPORT_HEADER_LEN } from '../../proto/wireguard/constants.js';
import { transportCounter, transportReceiver, writeTransportHeader } from '../../proto/wireguard/messages.js';
import type { Keypair } from '../../proto/wireguard/keypair.js';
import { ipPacketLength } from '../../proto/ip/packet.js';
import type { DeviceContext } from './context.js';
import { PACKED_ADDR_SIZE as ADDR_LEN } from '../tun/packed-addr.js';
import type { Peer } from './peer.js';
import { SlotViews } from './slot-views.js';
import { TAKEN_BY_NATIVE } from './fast-path.js';
import { addrKind } from '../magicsock/path-addr.js';
import { RelayTrain, type CryptoViews } from './relay-train.js';

/** A slab of fixed-size slots; packet i starts at i*slotSize + headroom. */
export interface SlabLayout {
  slab: Buffer;
  slotSize: number;
  headroom: number;
  slots: number;
}

/** Padded plaintext length per the paper: a multiple of 16, but never past the MTU. */
export function paddedLength(len: number, mtu: number): number {
  let last = len;
  if (last > mtu) last %= mtu;
  let padded = (last + 15) & ~15;
  if (padded > mtu) padded = mtu;
  return len + (padded - last);
}

/** The slab host-made packets are encrypted into, and the batch they leave in. */
interface HostBatch {
  layout: SlabLayout;
  views: SlotViews;
  offsets: Uint32Array;
  lengths: Uint32Array;
  addrs: Uint8Array;
  count: number;
  queued: boolean;
}

function newHostBatch(slotSize: number): HostBatch {
  const slots = 64;
  const layout: SlabLayout = { slab: Buffer.alloc(slotSize * slots), slotSize, headroom: TRANSPORT_HEADER_LEN, slots };
  return {
    layout, views: new SlotViews(layout.slab, slotSize, TRANSPORT_HEADER_LEN, slots),
    offsets: new Uint32Array(slots), lengths: new Uint32Array(slots), addrs: new Uint8Array(slots * ADDR_LEN), count: 0, queued: false,
  };
}

export class TransportSender {
  private readonly offsets: Uint32Array;
  private readonly lengths: Uint32Array;
  private readonly addrs: Uint8Array;
  private readonly nonce = Buffer.alloc(12);
  private readonly views: SlotViews;
  private readonly scratch: SlabLayout;
  private readonly scratchViews: SlotViews;

  constructor(private readonly ctx: DeviceContext, private readonly layout: SlabLayout, private readonly mtu: number) {
    if (layout.headroom < TRANSPORT_HEADER_LEN) throw new Error('TUN slab needs 16 bytes of headroom');
    this.offsets = new Uint32Array(layout.slots);
    this.lengths = new Uint32Array(layout.slots);
    this.addrs = new Uint8Array(layout.slots * ADDR_LEN);
    this.views = new SlotViews(layout.slab, layout.slotSize, layout.headroom, layout.slots);
    const slotSize = TRANSPORT_HEADER_LEN + ((Math.max(mtu, 1280) + 15) & ~15) + TAG_LEN + 16;
    this.scratch = { slab: Buffer.alloc(slotSize * 64), slotSize, headroom: TRANSPORT_HEADER_LEN, slots: 64 };
    this.scratchViews = new SlotViews(this.scratch.slab, slotSize, TRANSPORT_HEADER_LEN, 64);
  }

  /** Encrypts and sends the `count` packets the TUN just put in the slab. */
  sendTunBatch(lengths: Uint32Array, count: number): void {
    const ctx = this.ctx;
    const { slab, slotSize, headroom } = this.layout;
    const now = ctx.now();
    const observer = ctx.outboundHook;
    let n = 0;
    for (let i = 0; i < count; i++) {
      const off = i * slotSize + headroom;
      const len = lengths[i]!;
      if (len === TAKEN_BY_NATIVE) continue;
      const peer = this.route(slab, off, len);
      if (peer === undefined) { if (isMulticast(slab, off, len)) ctx.drops.multicast++; else ctx.drops.noRoute++; continue; }
      if (observer !== null) observer.observe(slab, off, len, now);
      const kp = this.sendingKeypair(peer, now);
      if (kp === undefined) {
        if (!peer.stage(slab, off, len)) ctx.drops.stagedOverflow++;
        ctx.requestHandshake(peer, now);
        continue;
      }
      if (peer.endpoint === undefined) { ctx.drops.noEndpoint++; continue; }
      const train = this.train;
      // A packet whose IP length is not its length goes alone (the receiver walks a train by IP lengths).
      if (peer.relayTrains && addrKind(peer.endpoint) === 'relay' && ipPacketLength(slab, off, len) === len) {
        if (train !== undefined && !train.fits(peer, kp, len)) {
          // In order: what is queued before this train leaves first.
          if (n > 0) { this.flush(slab, n); n = 0; }
          this.sendTrain(now);
        }
        (this.train ??= new RelayTrain()).add(peer, kp, slab, off, len);
        continue;
      }
      if (train !== undefined && train.count > 0 && train.peer === peer) {
        if (n > 0) { this.flush(slab, n); n = 0; }
        this.sendTrain(now);
      }
      const total = this.seal(kp, slab, this.views, i, off, len, now, peer);
      this.offsets[n] = off - TRANSPORT_HEADER_LEN;
      this.lengths[n] = total;
      this.addrs.set(peer.endpoint, n * ADDR_LEN);
      n++;
    }
    if (n > 0) this.flush(slab, n);
    if (this.train !== undefined && this.train.count > 0) this.sendTrain(now);
  }

  // --- relay trains (relay-train.ts) --------------------------------------------------------

  /** The train being filled during sendTunBatch (one peer at a time; empty between batches). */
  private train: RelayTrain | undefined;

  private sendTrain(now: number): void {
    const t = this.train!;
    const peer = t.peer!;
    const total = this.seal(t.keypair!, t.buf, t, 0, TRANSPORT_HEADER_LEN, t.len, now, peer);
    if (t.count > 1) { // a train of one is a plain message
      const trains = this.ctx.trains;
      trains.sent++;
      trains.packetsSent += t.count;
    }
    if (!(this.ctx.bind?.send(t.buf.subarray(0, total), peer.endpoint!) ?? false)) this.ctx.drops.ioDropped += t.count;
    t.reset();
  }

  /** Sends packets held outside the slab (staged ones, or [] for a keepalive) to one peer. */
  sendPackets(peer: Peer, packets: Uint8Array[], now: number): void {
    if (peer.endpoint === undefined) { this.ctx.drops.noEndpoint += Math.max(1, packets.length); return; }
    const { slab, slotSize, headroom, slots } = this.scratch;
    const list = packets.length === 0 ? [new Uint8Array(0)] : packets;
    let n = 0;
    for (const p of list) {
      const kp = this.sendingKeypair(peer, now);
      if (kp === undefined) return;
      if (p.length > slotSize - headroom - TAG_LEN - 16) { this.ctx.drops.ioDropped++; continue; }
      const off = n * slotSize + headroom;
      slab.set(p, off);
      const total = this.seal(kp, slab, this.scratchViews, n, off, p.length, now, peer);
      this.offsets[n] = off - TRANSPORT_HEADER_LEN;
      this.lengths[n] = total;
      this.addrs.set(peer.endpoint, n * ADDR_LEN);
      if (++n === slots) { this.flush(slab, n); n = 0; }
    }
    if (n > 0) this.flush(slab, n);
  }

  // --- packets made on this host for a peer (an exit node's NAT answering), batched per turn ---

  private host: HostBatch | undefined;

  /**
   * Encrypts a packet made on this host (not read from the TUN) for `peer`. Everything queued in
   * one turn of the event loop leaves in one batch. Without a session the packet is staged and a
   * handshake started, as for TUN packets.
   */
  queueHostPacket(peer: Peer, packet: Uint8Array, now: number): void {
    const ctx = this.ctx;
    const kp = this.sendingKeypair(peer, now);
    if (kp === undefined) {
      if (!peer.stage(packet, 0, packet.length)) ctx.drops.stagedOverflow++;
      ctx.requestHandshake(peer, now);
      return;
    }
    if (peer.endpoint === undefined) { ctx.drops.noEndpoint++; return; }
    const h = (this.host ??= newHostBatch(this.scratch.slotSize));
    const { slab, slotSize, headroom } = h.layout;
    if (packet.length > slotSize - headroom - TAG_LEN - 16) { ctx.drops.ioDropped++; return; }
    const i = h.count++;
    const off = i * slotSize + headroom;
    slab.set(packet, off);
    h.offsets[i] = off - TRANSPORT_HEADER_LEN;
    h.lengths[i] = this.seal(kp, slab, h.views, i, off, packet.length, now, peer);
    h.addrs.set(peer.endpoint, i * ADDR_LEN);
    if (h.count === h.layout.slots) this.flushHost();
    else if (!h.queued) {
      h.queued = true;
      queueMicrotask(this.flushHostLater);
    }
  }

  private readonly flushHostLater = (): void => {
    if (this.host) this.host.queued = false;
    this.flushHost();
  };

  private flushHost(): void {
    const h = this.host;
    if (h === undefined || h.count === 0) return;
    const n = h.count;
    h.count = 0;
    const sent = this.ctx.bind?.sendBatch(h.layout.slab, h.offsets, h.lengths, h.addrs, n) ?? 0;
    if (sent < n) this.ctx.drops.ioDropped += n - sent;
  }

  private flush(slab: Buffer, n: number): void {
    const sent = this.ctx.bind?.sendBatch(slab, this.offsets, this.lengths, this.addrs, n) ?? 0;
    if (sent < n) this.ctx.drops.ioDropped += n - sent;
  }

  private route(slab: Buffer, off: number, len: number): Peer | undefined {
    const version = slab[off]! >>> 4;
    if (version === 4 && len >= 20) return this.ctx.allowedIps.lookupV4(slab, off + 16);
    if (version === 6 && len >= 40) return this.ctx.allowedIps.lookupV6(slab, off + 24);
    return undefined;
  }

  private sendingKeypair(peer: Peer, now: number): Keypair | undefined {
    const kp = peer.current;
    const t = this.ctx.timers;
    if (kp === undefined || now - kp.created >= t.REJECT_AFTER_TIME || kp.sendCounter >= t.REJECT_AFTER_MESSAGES) {
      return undefined;
    }
    return kp;
  }

  /** Pads, encrypts in place and writes the header in front; returns the datagram length. */
  private seal(kp: Keypair, slab: Buffer, views: CryptoViews, slot: number, off: number, len: number, now: number, peer: Peer): number {
    const t = this.ctx.timers;
    const padded = paddedLength(len, this.mtu);
    if (padded > len) slab.fill(0, off + len, off + padded);
    const counter = kp.sendCounter++;
    const nonce = this.nonce;
    nonce.writeUInt32LE(counter >>> 0, 4);
    nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
    sodium().crypto_aead_chacha20poly1305_ietf_encrypt(
      views.view(slot, padded + TAG_LEN), views.view(slot, padded), null, null, nonce, kp.sendKey,
    );
    writeTransportHeader(slab, off - TRANSPORT_HEADER_LEN, kp.remoteIndex, counter);
    const total = TRANSPORT_HEADER_LEN + padded + TAG_LEN;
    peer.txBytes += total;
    peer.txPackets++;
    // Timers: any authenticated packet sent cancels a pending keepalive; data arms the
    // "no reply → new handshake" timer.
    peer.keepaliveDueAt = 0;
    peer.lastAuthenticatedTraversalAt = now;
    if (len > 0 && peer.newHandshakeDueAt === 0) peer.newHandshakeDueAt = now + t.KEEPALIVE_TIMEOUT + t.REKEY_TIMEOUT;
    if (counter >= t.REKEY_AFTER_MESSAGES || (kp.isInitiator && now - kp.created >= t.REKEY_AFTER_TIME)) {
      this.ctx.requestHandshake(peer, now);
    }
    return total;
  }
}

export class TransportReceiver {
  private readonly tunOffsets: Uint32Array;
  private readonly tunLengths: Uint32Array;
  private readonly nonce = Buffer.alloc(12);
  private readonly views: SlotViews;

  /**
   * `trains`: a message may carry several packets back to back (relay-train.ts); only for what
   * came through a relay. Then up to `packetsPerTrain` packets per slot are queued for one TUN write.
   */
  constructor(private readonly ctx: DeviceContext, private readonly layout: SlabLayout, private readonly trains = false, packetsPerTrain = 1) {
    this.tunOffsets = new Uint32Array(layout.slots * packetsPerTrain);
    this.tunLengths = new Uint32Array(layout.slots * packetsPerTrain);
    this.views = new SlotViews(layout.slab, layout.slotSize, layout.headroom + TRANSPORT_HEADER_LEN, layout.slots);
  }

  /**
   * Opens transport message `slot` (header already checked by the caller); on success queues the
   * inner packet for the TUN batch. Returns the authenticated peer, or undefined if dropped.
   */
  open(slot: number, len: number, addrs: Uint8Array, now: number): Peer | undefined {
    const ctx = this.ctx;
    const t = ctx.timers;
    const slab = this.layout.slab;
    const off = slot * this.layout.slotSize + this.layout.headroom;
    const entry = ctx.indices.get(transportReceiver(slab, off));
    const kp = entry?.keypair;
    if (entry === undefined || kp === undefined) { ctx.drops.unknownIndex++; return undefined; }
    const counter = transportCounter(slab, off);
    if (counter < 0 || counter >= t.REJECT_AFTER_MESSAGES || now - kp.created >= t.REJECT_AFTER_TIME) {
      ctx.drops.expiredKey++;
      return undefined;
    }
    const nonce = this.nonce;
    nonce.writeUInt32LE(counter >>> 0, 4);
    nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
    const sealedLen = len - TRANSPORT_HEADER_LEN;
    try {
      sodium().crypto_aead_chacha20poly1305_ietf_decrypt(
        this.views.view(slot, sealedLen - TAG_LEN), null, this.views.view(slot, sealedLen), null, nonce, kp.receiveKey,
      );
    } catch {
      ctx.drops.badTag++;
      return undefined;
    }
    if (!kp.replay.accept(counter)) { ctx.drops.replay++; return undefined; }

    const peer = entry.peer;
    if (kp === peer.next) this.promote(peer, kp, now);
    // Static mode roams like WireGuard; in managed mode the path selector hears of it.
    peer.noteSource(addrs, slot * ADDR_LEN);
    peer.rxBytes += len;
    peer.rxPackets++;
    peer.newHandshakeDueAt = 0;
    peer.lastAuthenticatedTraversalAt = now;
    // Keep the session fresh from the receiving side too (wireguard-go keepKeyFreshReceiving).
    if (kp === peer.current && kp.isInitiator && now - kp.created >= t.REJECT_AFTER_TIME - t.KEEPALIVE_TIMEOUT - t.REKEY_TIMEOUT) {
      ctx.requestHandshake(peer, now);
    }

    const plainLen = sealedLen - TAG_LEN;
    if (plainLen === 0) return peer; // keepalive
    const start = off + TRANSPORT_HEADER_LEN;
    const end = start + plainLen;
    let p = start;
    let packets = 0;
    // One packet, or (trains) packets back to back until the end or the zero padding.
    do {
      const ipLen = ipPacketLength(slab, p, end - p);
      if (ipLen <= 0) { ctx.drops.badInnerPacket++; break; }
      const version = slab[p]! >>> 4;
      const owner = version === 4 ? ctx.allowedIps.lookupV4(slab, p + 12) : ctx.allowedIps.lookupV6(slab, p + 8);
      if (owner !== peer) ctx.drops.allowedIpsMismatch++;
      else {
        if (peer.keepaliveDueAt === 0) peer.keepaliveDueAt = now + t.KEEPALIVE_TIMEOUT;
        if (this.pending === this.tunOffsets.length) this.flush();
        this.decide(p, ipLen, now);
      }
      p += ipLen;
      packets++;
    } while (this.trains && p < end && slab[p] !== 0);
    if (packets > 1) {
      ctx.trains.received++;
      ctx.trains.packetsReceived += packets;
    }
    return peer;
  }

  /**
   * A packet the native path opened and checked (session, replay, allowed IPs, timers) and handed
   * back: the inner packet of `ipLen` bytes sits right after the transport header of `slot`.
   */
  deliverOpened(slot: number, ipLen: number, now: number): void {
    if (this.pending === this.tunOffsets.length) this.flush();
    this.decide(slot * this.layout.slotSize + this.layout.headroom + TRANSPORT_HEADER_LEN, ipLen, now);
  }

  /** The packet filter, the NAT of an exit node / subnet router, or the TUN: one branch when neither hook is on. */
  private decide(p: number, ipLen: number, now: number): void {
    const ctx = this.ctx;
    const slab = this.layout.slab;
    const hook = ctx.inboundHook;
    // Only packets for this node reach the TUN: anything else the host would route on a peer's say-so.
    if (!ctx.localAddresses.hasDestination(slab, p, ipLen)) {
      if (hook === null || !hook.forward(slab, p, ipLen, now)) ctx.drops.notForUs++;
      return;
    }
    if (hook !== null && hook.intercept(slab, p, ipLen, now)) return;
    this.tunOffsets[this.pending] = p;
    this.tunLengths[this.pending] = ipLen;
    this.pending++;
  }

  private pending = 0;

  /** Writes the packets opened since the last flush to the TUN in one batch. */
  flush(): void {
    if (this.pending === 0) return;
    const n = this.pending;
    this.pending = 0;
    const written = this.ctx.tun?.writeBatch(this.layout.slab, this.tunOffsets, this.tunLengths, n) ?? 0;
    if (written < n) this.ctx.drops.ioDropped += n - written;
  }

  private promote(peer: Peer, kp: Keypair, now: number): void {
    const old = peer.previous;
    if (old !== undefined) { this.ctx.indices.delete(old.localIndex); old.wipe(); }
    peer.previous = peer.current;
    peer.current = kp;
    peer.next = undefined;
    this.ctx.flushStaged(peer, now);
  }
}

/** Multicast or limited-broadcast destination (IPv4 224.0.0.0/4, 255.255.255.255; IPv6 ff00::/8). */
function isMulticast(p: Uint8Array, off: number, len: number): boolean {
  const version = len > 0 ? p[off]! >>> 4 : 0;
  if (version === 4 && len >= 20) return (p[off + 16]! & 0xf0) === 0xe0 || (p[off + 16] === 255 && p[off + 17] === 255 && p[off + 18] === 255 && p[off + 19] === 255);
  if (version === 6 && len >= 40) return p[off + 24] === 0xff;
  return false;
}
