// Keeps the native data path (agent/tun/src/fastpath.h) in step with the device. The addon runs
// the common case of both directions inside its poll callbacks, so an idle tunnel woken by one
// packet answers without entering JavaScript; everything else stays in transport.ts. The device
// decides, this mirrors: per peer its endpoint and current session, the keypairs a packet may
// arrive under (current and previous; a responder's "next" is promoted by JS), the allowed IPs,
// this node's own addresses (the only destinations it delivers to the TUN), and whether packet
// hooks (filter, NAT) are on. Counters, replay windows and timer timestamps
// are not copied: both sides use the same typed arrays (Keypair.state, Peer.state).
import type { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import type { WireGuardTimers } from '../../proto/wireguard/constants.js';
import type { Keypair } from '../../proto/wireguard/keypair.js';
import type { LocalAddresses } from './local-addresses.js';
import type { NativeFastPath, NativeFastPathCounters, NativeFlowTables } from '../tun/native.js';
import type { Peer } from './peer.js';

/** Length the native path gives a packet of a batch it took (FP_TAKEN): JS skips it. */
export const TAKEN_BY_NATIVE = 0xffffffff;
/**
 * Flag on the length of a packet the native path decrypted and checked but hands back for a
 * decision (FP_DECRYPTED): the low bits are the inner IP packet's length (TAKEN_BY_NATIVE has it
 * too: test for that first).
 */
export const DECRYPTED_BY_NATIVE = 0x80000000;

/** What the native path may do (Device.nativeDirections). */
export interface NativeDirections {
  outbound: boolean;
  inbound: boolean;
  /** Decrypted packets it cannot deliver itself go back to JS instead of being dropped. */
  handBack: boolean;
  /** The packet filter's flow tables, when a filter is on. */
  filter: NativeFlowTables | null;
}

interface Mirrored {
  slot: number;
  endpoint: Uint8Array | undefined;
  current: Keypair | undefined;
  previous: Keypair | undefined;
}

/** The limits the native path checks, in the order new FastPath() takes them. */
export function fastPathLimits(t: WireGuardTimers): Float64Array {
  return Float64Array.of(t.REJECT_AFTER_TIME, t.REJECT_AFTER_MESSAGES, t.REKEY_AFTER_MESSAGES, t.REKEY_AFTER_TIME,
    t.KEEPALIVE_TIMEOUT, t.REKEY_TIMEOUT);
}

export class FastPathLink {
  private readonly mirrored = new Map<Peer, Mirrored>();
  private readonly keypairs = new Map<number, Keypair>();
  private readonly freeSlots: number[] = [];
  private nextSlot = 0;
  private routesDirty = true;
  private localDirty = true;
  private mode = '';
  private filter: NativeFlowTables | null = null;
  private queued = false;
  private closed = false;

  constructor(
    private readonly native: NativeFastPath,
    private readonly peers: () => Iterable<Peer>,
    private readonly allowedIps: AllowedIps<Peer>,
    private readonly local: LocalAddresses,
    /** Directions the native path may take: false while a hook must see every packet. */
    private readonly directions: () => NativeDirections,
  ) {}

  /** Something changed: resynchronise once the current JS turn is over, before the next batch. */
  readonly schedule = (): void => {
    if (this.queued || this.closed) return;
    this.queued = true;
    queueMicrotask(this.syncNow);
  };

  routesChanged(): void {
    this.routesDirty = true;
    this.schedule();
  }

  localChanged(): void {
    this.localDirty = true;
    this.schedule();
  }

  private readonly syncNow = (): void => {
    this.queued = false;
    if (!this.closed) this.sync();
  };

  sync(): void {
    const native = this.native;
    const { outbound, inbound, handBack, filter } = this.directions();
    // The tables before the mode: a direction never runs natively without the filter it needs.
    if (filter !== this.filter) {
      if (filter === null) native.setFilter(null);
      else native.setFilter(filter.v4.keys, filter.v4.expiry, filter.v4.generation, filter.v6.keys, filter.v6.expiry, filter.v6.generation, filter.state, filter.timeouts);
      this.filter = filter;
    }
    const mode = `${outbound}${inbound}${handBack}`;
    if (mode !== this.mode) {
      native.setMode(outbound, inbound, handBack);
      this.mode = mode;
    }
    const live = new Set<Peer>();
    for (const peer of this.peers()) {
      live.add(peer);
      let m = this.mirrored.get(peer);
      if (m === undefined) {
        m = { slot: this.freeSlots.pop() ?? this.nextSlot++, endpoint: undefined, current: undefined, previous: undefined };
        this.mirrored.set(peer, m);
        this.routesDirty = true;
        this.push(peer, m);
      } else if (m.endpoint !== peer.endpoint || m.current !== peer.current || m.previous !== peer.previous) {
        this.push(peer, m);
      }
    }
    for (const [peer, m] of this.mirrored) {
      if (live.has(peer)) continue;
      native.removePeer(m.slot);
      for (const [index, kp] of this.keypairs) if (kp === m.current || kp === m.previous) this.keypairs.delete(index);
      this.mirrored.delete(peer);
      this.freeSlots.push(m.slot);
      this.routesDirty = true;
    }
    if (this.routesDirty) this.pushRoutes();
    if (this.localDirty) {
      const { v4, v6 } = this.local.packed();
      native.setLocal(v4, v6);
      this.localDirty = false;
    }
  }

  private push(peer: Peer, m: Mirrored): void {
    const native = this.native;
    const want = [peer.current, peer.previous].filter((k): k is Keypair => k !== undefined);
    for (const kp of [m.current, m.previous]) {
      if (kp !== undefined && !want.includes(kp) && this.keypairs.get(kp.localIndex) === kp) {
        native.removeKeypair(kp.localIndex);
        this.keypairs.delete(kp.localIndex);
      }
    }
    for (const kp of want) {
      if (this.keypairs.get(kp.localIndex) === kp) continue;
      native.addKeypair(kp.localIndex, kp.remoteIndex, m.slot, kp.sendKey, kp.receiveKey, kp.isInitiator, kp.created, kp.state);
      this.keypairs.set(kp.localIndex, kp);
    }
    native.setPeer(m.slot, peer.state, peer.endpoint ?? null, peer.current?.localIndex ?? 0);
    m.endpoint = peer.endpoint;
    m.current = peer.current;
    m.previous = peer.previous;
  }

  private pushRoutes(): void {
    const entries = this.allowedIps.entries();
    const v4 = entries.filter((e) => e.cidr.family === 4);
    const v6 = entries.filter((e) => e.cidr.family === 6);
    const pack = (list: typeof entries, len: number): Uint8Array => {
      const out = new Uint8Array(list.length * (len + 5));
      const view = new DataView(out.buffer);
      list.forEach((e, i) => {
        const o = i * (len + 5);
        out.set(e.cidr.bytes, o);
        out[o + len] = e.cidr.bits;
        view.setUint32(o + len + 1, this.mirrored.get(e.value)?.slot ?? 0xffffffff, true);
      });
      return out;
    };
    this.native.setRoutes(pack(v4, 4), pack(v6, 16));
    this.routesDirty = false;
  }

  counters(): NativeFastPathCounters {
    return this.native.counters();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}
