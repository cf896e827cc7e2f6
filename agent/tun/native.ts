// Loads the pinhole_native addon (agent/tun/build/Release/pinhole_native.node) and types it.
// Loaded lazily, so importing the wrappers never fails on a machine without the addon.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Counters kept by the addon for one device or socket (numbers, exact up to 2^53). */
export interface NativeCounters {
  rxPackets: number;
  rxBytes: number;
  /** onPackets calls: rxPackets / rxBatches is the mean batch size. */
  rxBatches: number;
  /** Received packets that did not fit a slot. */
  rxDrops: number;
  rxErrors: number;
  /** Received packets that arrived coalesced in one UDP GRO datagram. */
  rxGro: number;
  txPackets: number;
  txBytes: number;
  /** Packets not sent because the kernel queue was full (EAGAIN/ENOBUFS). */
  txDrops: number;
  /** Packets refused by the kernel for another reason (see lastError). */
  txErrors: number;
  /** Packets that left as segments of a UDP GSO message (one stack traversal per run). */
  txGso: number;
  /** errno name of the last rx/tx failure other than EAGAIN, e.g. "ENETUNREACH". */
  lastError: string | null;
}

/** Methods shared by the native Tun and Udp handles (agent/tun/src/io_handle.c). */
export interface NativeIoHandle {
  setReceiver(
    slab: Uint8Array, slotSize: number, headroom: number, tailroom: number, maxBatch: number,
    lengths: Uint32Array, addrs: Uint8Array | null,
    onPackets: (count: number) => void, onError: (err: Error) => void,
  ): void;
  /** Joins a busy-poll group (leaving the previous one); null leaves. */
  setBusyPoll(group: NativeBusyPoll | null): void;
  pause(): void;
  resume(): void;
  ref(): void;
  unref(): void;
  close(): void;
  counters(): NativeCounters;
}

export interface NativeTun extends NativeIoHandle {
  readonly name: string;
  /** Offloads the kernel granted (e.g. "csum,tso4,tso6,uso4,uso6"); "" when opened without. */
  readonly offloads: string;
  writeBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, count: number): number;
  offloadCounters(): TunOffloadCounters;
}

/** What the TUN's offloads did (agent/tun/src/tun_offload.h). */
export interface TunOffloadCounters {
  /** Super packets read from the kernel and the packets they were cut into. */
  superIn: number;
  segmentsIn: number;
  /** Super packets dropped as malformed or too large to cut. */
  badSuper: number;
  /** Writes that carried several TCP segments glued together (GRO), and those segments. */
  groWrites: number;
  groPackets: number;
}

export interface NativeUdp extends NativeIoHandle {
  /** Bound address in the 20-byte packed format (packed-addr.ts). */
  readonly localAddress: Uint8Array;
  readonly family: 4 | 6;
  readonly dualStack: boolean;
  /** UDP GSO (UDP_SEGMENT) in use for sendBatch. */
  readonly gso: boolean;
  /** UDP GRO in use on receive. */
  readonly gro: boolean;
  sendBatch(slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, addrs: Uint8Array, count: number): number;
  send(packet: Uint8Array, addr: Uint8Array): boolean;
}

/** An ICMP echo socket (agent/tun/src/icmp.c): ping socket, or raw where that is not permitted. */
export interface NativeIcmp extends NativeIoHandle {
  readonly kind: 'dgram' | 'raw';
  readonly family: 4 | 6;
  /** Echo identifier the kernel gave a ping socket (it replaces ours on send); 0 for raw. */
  readonly ident: number;
  /** Sends one ICMP message (from its type byte) to a packed address; false if not sent. */
  send(message: Uint8Array, addr: Uint8Array): boolean;
}

/** A busy-poll group (agent/tun/src/busy_poll.c). */
export interface NativeBusyPoll {
  counters(): { windows: number; hotWakes: number; hotMicros: number; contended: number; spinning: boolean };
  close(): void;
}

/** Counters of the native data path (agent/tun/src/fastpath.h). */
export interface NativeFastPathCounters {
  txPackets: number;
  rxPackets: number;
  /** Packets the native path left to JS (no session, timers due, hooks, handshakes...). */
  leftOut: number;
  leftIn: number;
  badTag: number;
  replay: number;
  badInnerPacket: number;
  allowedIpsMismatch: number;
  /** Decrypted packets whose destination is not one of this node's addresses (setLocal). */
  notForUs: number;
  ioDropped: number;
  /** Packets that passed the packet filter natively as part of a known flow, each way. */
  flowOut: number;
  flowIn: number;
  /** Decrypted packets handed back to JS (new flows for the filter, served routes). */
  handedBack: number;
}

/** The native data path over one Tun + Udp pair (agent/tun/src/fastpath.c; driven by fast-path.ts). */
/**
 * The packet filter's flow tables as the native path shares them (agent/filter/flow-table.ts
 * arrays, agent/tun/src/fast_flows.h): JS inserts flows, native looks them up and refreshes them.
 */
export interface NativeFlowTables {
  v4: { keys: Int32Array; expiry: Float64Array; generation: Uint32Array };
  v6: { keys: Int32Array; expiry: Float64Array; generation: Uint32Array };
  /** [0]: the filter's current rule generation. */
  state: Uint32Array;
  /** Flow lifetimes in ms: TCP, UDP, other. */
  timeouts: Float64Array;
}

export interface NativeFastPath {
  /** handBack: decrypted packets the native path cannot deliver itself go to JS (FP_DECRYPTED). */
  setMode(outbound: boolean, inbound: boolean, handBack?: boolean): void;
  /** Established flows are looked up natively in these tables; null turns that off. */
  setFilter(...tables: [Int32Array, Float64Array, Uint32Array, Int32Array, Float64Array, Uint32Array, Uint32Array, Float64Array] | [null]): void;
  setPeer(slot: number, state: Float64Array, endpoint: Uint8Array | null, sendIndex: number): void;
  removePeer(slot: number): void;
  addKeypair(localIndex: number, remoteIndex: number, slot: number, sendKey: Uint8Array, receiveKey: Uint8Array,
    initiator: boolean, createdMs: number, state: Uint8Array): void;
  removeKeypair(localIndex: number): void;
  /** v4: 9-byte entries (address, bits, slot u32 LE); v6: 21-byte entries. */
  setRoutes(v4: Uint8Array, v6: Uint8Array): void;
  /** This node's own addresses, packed as for setRoutes: the only destinations delivered to the TUN. */
  setLocal(v4: Uint8Array, v6: Uint8Array): void;
  counters(): NativeFastPathCounters;
  close(): void;
}

/** The kernel's record of a unix socket's peer, taken at connect() (agent/tun/src/peercred.c). */
export interface NativePeerCred {
  pid: number;
  uid: number;
  /** Effective gid. */
  gid: number;
  /** Supplementary groups (SO_PEERGROUPS); null on kernels before 4.13. */
  groups: number[] | null;
}

export interface NativeAddon {
  Tun: new (name: string, offload?: boolean) => NativeTun;
  /**
   * family 0 = dual-stack IPv6 with IPv4 fallback; bind = packed address or null (wildcard);
   * flags = UDP_NO_GSO | UDP_NO_GRO; mark = SO_MARK on every packet sent (0: none; needs CAP_NET_ADMIN).
   */
  Udp: new (family: 0 | 4 | 6, bind: Uint8Array | null, port: number, bufferBytes: number, flags: number, mark?: number) => NativeUdp;
  BusyPoll: new (budgetMicros: number, smallBatch: number) => NativeBusyPoll;
  Icmp: new (family: 4 | 6, bufferBytes: number) => NativeIcmp;
  /** limits: REJECT_AFTER_TIME, REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, KEEPALIVE_TIMEOUT, REKEY_TIMEOUT. */
  /** An unconnected non-blocking TCP socket (fd) with SO_MARK set; family 6 is dual-stack (sockmark.c). */
  markedTcpSocket(family: 4 | 6, mark: number): number;
  /** The SO_MARK of a socket fd. */
  socketMark(fd: number): number;
  FastPath: new (tun: NativeTun, udp: NativeUdp, limits: Float64Array, mtu: number, nowMs: number) => NativeFastPath;
  /** SO_PEERCRED + SO_PEERGROUPS of a connected unix socket's fd. */
  peerCred(fd: number): NativePeerCred;
  /** getgrnam_r: the gid of a group name, null if there is no such group. */
  groupId(name: string): number | null;
  /** getgrgid_r: the name of a gid, null if there is no such group. */
  groupName(gid: number): string | null;
  /**
   * libsodium's crypto_box_beforenm into `out` (32 bytes): NaCl box's key for (their public key,
   * our secret key). false, and `out` zeroed, when their key is of low order (sodium_calls.c).
   */
  boxBeforenm(out: Uint8Array, theirPublic: Uint8Array, ourSecret: Uint8Array): boolean;
  /** libsodium's AEADs (agent/tun/src/sodium_calls.h): ChaCha20-Poly1305 IETF, or XChaCha20 when `xchacha`; c.length. */
  aeadSeal(c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array, xchacha: boolean): number;
  /** m.length, or -1 when c does not verify. */
  aeadOpen(m: Uint8Array, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array, xchacha: boolean): number;
  /** X25519 into q; false (q zeroed) when p is of low order. */
  scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): boolean;
  scalarmultBase(q: Uint8Array, n: Uint8Array): boolean;
  /** XSalsa20-Poly1305 (NaCl secretbox, MAC first). */
  secretboxSeal(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
  secretboxOpen(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
  randomBytes(buf: Uint8Array): void;
  /** Constant-time equality of two arrays of one length. */
  bytesEqual(a: Uint8Array, b: Uint8Array): boolean;
  /**
   * The native path's inbound destination verdicts for a batch against local tables packed as for
   * setLocal: out[i] = 1 delivered, 0 not for us, 2 not an IP packet (for the differential test).
   */
  checkDestinations(v4: Uint8Array, v6: Uint8Array, slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, out: Uint8Array): void;
  /** Test hooks of the TUN offloads (tun_offload.c): the segments a super packet is cut into ([] if refused). */
  gsoSplit(vnetAndPacket: Uint8Array, cap: number): Uint8Array[];
  /** The writes GRO makes of these packets: each a vnet header followed by what writev sends. */
  groWrites(packets: Uint8Array[]): Uint8Array[];
  /** The native flow verdicts for a batch (1: passes natively, 0: left to JS), for the differential test. */
  flowVerdicts(v4keys: Int32Array, v4expiry: Float64Array, v4gen: Uint32Array, v6keys: Int32Array, v6expiry: Float64Array, v6gen: Uint32Array,
    state: Uint32Array, timeouts: Float64Array, slab: Uint8Array, offsets: Uint32Array, lengths: Uint32Array, inbound: boolean, nowMs: number, out: Uint8Array): void;
}

/** Udp constructor flags (agent/tun/src/udp.h). */
export const UDP_NO_GSO = 1;
export const UDP_NO_GRO = 2;

export class NativeAddonMissingError extends Error {
  override readonly name = 'NativeAddonMissingError';
  readonly code = 'ERR_NATIVE_ADDON_MISSING';
}

const ADDON_FILE = join('build', 'Release', 'pinhole_native.node');

/**
 * Another build of the addon to load instead (the sanitizer build: scripts/build-addon-asan.sh).
 * Read once, here, when this module loads; nothing else reads it.
 */
const ADDON_PATH_OVERRIDE = process.env['PINHOLE_ADDON_PATH'] || undefined;

/** Candidate locations: next to the source file, from dist/agent/tun back to agent/tun, or from the bundle (dist/bundle). */
function addonCandidates(): string[] {
  if (ADDON_PATH_OVERRIDE) return [ADDON_PATH_OVERRIDE];
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, ADDON_FILE), join(here, '..', '..', '..', 'agent', 'tun', ADDON_FILE), join(here, '..', '..', 'agent', 'tun', ADDON_FILE)];
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = addonCandidates().find((p) => existsSync(p));
  if (!path) throw new NativeAddonMissingError(ADDON_PATH_OVERRIDE ? `PINHOLE_ADDON_PATH ${ADDON_PATH_OVERRIDE} does not exist` : 'native addon not built: run npm run build');
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as NativeAddon;
  } catch (err) {
    const reason = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new NativeAddonMissingError(`native addon cannot be loaded (${reason}): run npm run build`);
  }
  return cached;
}
