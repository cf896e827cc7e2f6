// What the handshake, transport and timer code share: the device's state, behind one interface
// so those files never import each other or the device.
import type { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import type { WireGuardTimers } from '../../proto/wireguard/constants.js';
import type { LocalIdentity } from '../../proto/wireguard/handshake.js';
import type { Keypair } from '../../proto/wireguard/keypair.js';
import type { CookieChecker } from '../../proto/wireguard/macs.js';
import type { DropCounters, HandshakeCounters, TrainCounters } from './counters.js';
import type { LocalAddresses } from './local-addresses.js';
import type { Peer } from './peer.js';
import type { NativeFlowTables } from '../tun/native.js';

/** The UDP side, as the device sees it (the native batch socket implements it). */
export interface PacketBind {
  /** One datagram to a 20-byte address. */
  send(buf: Uint8Array, addr: Uint8Array): boolean;
  /** Many datagrams at once: packet i is slab[offsets[i], +lengths[i]) to addrs[i*20, +20). */
  sendBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, addrs: Uint8Array, count: number): number;
}

/**
 * The device's UDP side as one object (the batch socket itself in static mode, the magic socket
 * in managed mode), given once to Device.attach.
 */
export interface DeviceTransport {
  readonly bind: PacketBind;
  /** A datagram on the UDP socket that is not WireGuard (disco, STUN); absent: counted as malformed. */
  onOtherPacket?(packet: Uint8Array, addrs: Uint8Array, addrOff: number): void;
}

/** The TUN side, as the device sees it. */
export interface PacketTun {
  writeBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
}

/**
 * Decrypted packets pass through here before the TUN (packet filter, exit node / subnet router
 * NAT).
 */
export interface InboundPacketHook {
  /** A packet for one of this node's addresses. True: consumed or dropped (counted); false: to the TUN. */
  intercept(buf: Buffer, off: number, len: number, now: number): boolean;
  /**
   * A packet for any other destination. True: a route this node serves took it (or the filter
   * dropped it, counted); false: the device drops it as notForUs.
   */
  forward(buf: Buffer, off: number, len: number, now: number): boolean;
  /**
   * Set when intercept() is exactly the packet filter over these flow tables (null: no filter):
   * the native path then delivers packets of known flows itself and hands the rest back to JS
   * decrypted. Undefined: the hook must see every packet.
   */
  readonly nativeFilter?: NativeFlowTables | null;
}

/** Packets from the TUN to a peer are shown here first (the packet filter tracks the flows this node opens). */
export interface OutboundPacketHook {
  observe(buf: Buffer, off: number, len: number, now: number): void;
  /** Set when observe() only tracks the flows of these tables: the native path refreshes known flows itself. */
  readonly nativeFilter?: NativeFlowTables;
}

export interface IndexEntry {
  peer: Peer;
  /** Absent while the index names an initiation in flight. */
  keypair: Keypair | undefined;
}

export interface DeviceContext {
  readonly identity: LocalIdentity;
  readonly timers: WireGuardTimers;
  readonly peers: Map<string, Peer>;
  readonly allowedIps: AllowedIps<Peer>;
  readonly indices: Map<number, IndexEntry>;
  readonly cookieChecker: CookieChecker;
  readonly drops: DropCounters;
  /** Relay trains sent and received (relay-train.ts). */
  readonly trains: TrainCounters;
  readonly handshakes: HandshakeCounters;
  /** This node's own addresses: the only destinations a peer's packet is delivered to the TUN for. */
  readonly localAddresses: LocalAddresses;
  readonly bind: PacketBind | undefined;
  readonly tun: PacketTun | undefined;
  /** null: decrypted packets for this node go to the TUN, the rest are dropped (no filter, no routes served). */
  readonly inboundHook: InboundPacketHook | null;
  /** null: nothing watches outbound packets. */
  readonly outboundHook: OutboundPacketHook | null;
  /** Current time in ms; one read per batch on the hot path. */
  now(): number;
  /** A fresh random 32-bit index not in use. */
  newIndex(): number;
  /** Starts a handshake with `peer` unless one was sent less than REKEY_TIMEOUT ago. */
  requestHandshake(peer: Peer, now: number): void;
  /** Sends what was staged for `peer` once a session exists (or a keepalive to confirm it). */
  flushStaged(peer: Peer, now: number): void;
  /** Sends an empty transport message. */
  sendKeepalive(peer: Peer, now: number): void;
  /** True while handshake messages arrive faster than the device handles them calmly. */
  underLoad(now: number): boolean;
}
