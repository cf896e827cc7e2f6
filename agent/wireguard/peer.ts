// A WireGuard peer: its identity, sessions (previous/current/next keypairs), handshake state,
// endpoint, the timestamps the timers run on, and what it has carried.
import type { Cidr } from '../../proto/ip/address.js';
import type { InitiatorState, RemoteIdentity } from '../../proto/wireguard/handshake.js';
import type { Keypair } from '../../proto/wireguard/keypair.js';
import { CookieJar } from '../../proto/wireguard/macs.js';
import { PACKED_ADDR_SIZE as ADDR_LEN, packedAddrEquals } from '../tun/packed-addr.js';

/** The one writer of a managed peer's endpoint (the magic socket). */
export interface PathOwner {
  /** An authenticated packet from `peer` came from addrs[off], which is not its endpoint (or it has none). */
  onPeerSource(peer: Peer, addrs: Uint8Array, off: number): void;
}

/** Packets queued while a handshake is in flight, per peer (wireguard-go keeps 1024). */
export const MAX_STAGED_PACKETS = 256;

export interface PeerOptions {
  remote: RemoteIdentity;
  allowedIps: Cidr[];
  endpoint?: Uint8Array;
  persistentKeepaliveSeconds?: number;
  name?: string;
}

/** Slots of Peer.state, shared with the native data path (agent/tun/src/fastpath.h FP_PS_*). */
const KEEPALIVE_DUE = 0, NEW_HANDSHAKE_DUE = 1, LAST_AUTH = 2, RX_BYTES = 3, TX_BYTES = 4, RX_PACKETS = 5, TX_PACKETS = 6;
export const PEER_STATE_SLOTS = 7;

export class Peer {
  readonly remote: RemoteIdentity;
  readonly cookieJar: CookieJar;
  readonly publicKeyBase64: string;
  name: string | undefined;
  allowedIps: Cidr[];
  /**
   * Called when what the native data path mirrors changes (endpoint, sessions); the device
   * resynchronises it before the next batch (fast-path.ts).
   */
  onChange: (() => void) | undefined;
  private _endpoint: Uint8Array | undefined;
  private _previous: Keypair | undefined;
  private _current: Keypair | undefined;
  private _next: Keypair | undefined;
  /** Timer timestamps and traffic counts, in memory the native data path updates too. */
  readonly state = new Float64Array(PEER_STATE_SLOTS);
  persistentKeepaliveSeconds: number;
  /**
   * Null (static mode): the endpoint follows the source of authenticated packets, as WireGuard
   * roams. Set (managed mode): the magic socket's path selection owns the endpoint; it alone
   * writes it (takePath) and hears of packets from other sources instead.
   */
  private owner: PathOwner | null = null;

  /** Where to send, in the 20-byte address format (path-addr.ts); set by config, roaming or the path owner. */
  get endpoint(): Uint8Array | undefined { return this._endpoint; }

  get previous(): Keypair | undefined { return this._previous; }
  set previous(v: Keypair | undefined) { this._previous = v; this.onChange?.(); }
  get current(): Keypair | undefined { return this._current; }
  set current(v: Keypair | undefined) { this._current = v; this.onChange?.(); }
  /** Responder's new keypair, promoted once the initiator proves it has it by sending data. */
  get next(): Keypair | undefined { return this._next; }
  set next(v: Keypair | undefined) { this._next = v; this.onChange?.(); }

  handshake: InitiatorState | undefined;
  /** The initiation `handshake` belongs to, as sent: copies of it go out on a new path (Device.resendInitiation). */
  initiation: Uint8Array | undefined;
  /** Copies of `initiation` sent so far (bounded by MAX_INITIATION_COPIES). */
  initiationCopies = 0;
  /** Greatest TAI64N timestamp accepted from this peer (initiation replay protection). */
  lastInitiationTimestamp: Uint8Array | undefined;
  lastInitiationReceivedAt = 0;

  staged: Uint8Array[] = [];
  /**
   * The peer said (disco 'features') that a WireGuard message reaching it through a relay may
   * carry a train of packets (relay-train.ts); the magic socket sets it, and clears it when the
   * peer's disco key changes (a restart, perhaps into an older version).
   */
  relayTrains = false;

  // Timer state, as timestamps in ms (0 = not armed); see timers.ts.
  lastInitiationSentAt = 0;
  handshakeAttemptStartedAt = 0;
  retransmitDueAt = 0;
  lastHandshakeCompletedAt = 0;
  get keepaliveDueAt(): number { return this.state[KEEPALIVE_DUE]!; }
  set keepaliveDueAt(v: number) { this.state[KEEPALIVE_DUE] = v; }
  get newHandshakeDueAt(): number { return this.state[NEW_HANDSHAKE_DUE]!; }
  set newHandshakeDueAt(v: number) { this.state[NEW_HANDSHAKE_DUE] = v; }
  get lastAuthenticatedTraversalAt(): number { return this.state[LAST_AUTH]!; }
  set lastAuthenticatedTraversalAt(v: number) { this.state[LAST_AUTH] = v; }

  get rxBytes(): number { return this.state[RX_BYTES]!; }
  set rxBytes(v: number) { this.state[RX_BYTES] = v; }
  get txBytes(): number { return this.state[TX_BYTES]!; }
  set txBytes(v: number) { this.state[TX_BYTES] = v; }
  get rxPackets(): number { return this.state[RX_PACKETS]!; }
  set rxPackets(v: number) { this.state[RX_PACKETS] = v; }
  get txPackets(): number { return this.state[TX_PACKETS]!; }
  set txPackets(v: number) { this.state[TX_PACKETS] = v; }

  constructor(opts: PeerOptions) {
    this.remote = opts.remote;
    this.cookieJar = new CookieJar(opts.remote);
    this.publicKeyBase64 = Buffer.from(opts.remote.publicKey).toString('base64');
    this.name = opts.name;
    this.allowedIps = opts.allowedIps;
    this._endpoint = opts.endpoint ? Uint8Array.from(opts.endpoint) : undefined;
    this.persistentKeepaliveSeconds = opts.persistentKeepaliveSeconds ?? 0;
  }

  /**
   * Hands the endpoint to `owner` for good: from now on only the returned function changes it,
   * and packets from other sources are reported to the owner instead of followed.
   */
  takePath(owner: PathOwner): (endpoint: Uint8Array) => void {
    this.owner = owner;
    return (endpoint) => {
      if (this.owner === owner) this.setEndpoint(endpoint);
    };
  }

  /** True once a path owner decides the endpoint (managed mode). */
  get managed(): boolean {
    return this.owner !== null;
  }

  /** An authenticated transport packet came from addrs[off]: roam there, or tell the owner if it is not the endpoint. */
  noteSource(addrs: Uint8Array, off: number): void {
    const ep = this._endpoint;
    if (ep !== undefined && packedAddrEquals(addrs, off, ep, 0)) return;
    if (this.owner !== null) this.owner.onPeerSource(this, addrs, off);
    else this.setEndpoint(copyBytes(addrs, off, ADDR_LEN));
  }

  /** A handshake message came from addrs[off]: roam there; a managed peer's owner hears of it only while it has no endpoint. */
  noteHandshakeSource(addrs: Uint8Array, off: number): void {
    if (this.owner === null) this.setEndpoint(copyBytes(addrs, off, ADDR_LEN));
    else if (this._endpoint === undefined) this.owner.onPeerSource(this, addrs, off);
  }

  private setEndpoint(v: Uint8Array): void {
    this._endpoint = v;
    this.onChange?.();
  }

  /** Copies a packet into the staged queue (only while no session exists: not the hot path). */
  stage(buf: Uint8Array, off: number, len: number): boolean {
    if (this.staged.length >= MAX_STAGED_PACKETS) this.staged.shift();
    this.staged.push(copyBytes(buf, off, len));
    return this.staged.length < MAX_STAGED_PACKETS;
  }

  keypairs(): Keypair[] {
    return [this.previous, this.current, this.next].filter((k): k is Keypair => k !== undefined);
  }
}

/** A copy (Buffer#slice would return a view into a slab that the next batch overwrites). */
function copyBytes(buf: Uint8Array, off: number, len: number): Uint8Array {
  const out = new Uint8Array(len);
  out.set(buf.subarray(off, off + len));
  return out;
}
