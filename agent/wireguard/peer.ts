// A WireGuard peer: its identity, sessions (previous/current/next keypairs), handshake state,
// endpoint, the timestamps the timers run on, and what it has carried.
import type { Cidr } from '../../proto/ip/address.js';
import type { InitiatorState, RemoteIdentity } from '../../proto/wireguard/handshake.js';
import type { Keypair } from '../../proto/wireguard/keypair.js';
import { CookieJar } from '../../proto/wireguard/macs.js';
import { PACKED_ADDR_SIZE as ADDR_LEN } from '../tun/packed-addr.js';

/** Packets queued while a handshake is in flight, per peer (wireguard-go keeps 1024). */
export const MAX_STAGED_PACKETS = 256;

export interface PeerOptions {
  remote: RemoteIdentity;
  allowedIps: Cidr[];
  endpoint?: Uint8Array;
  persistentKeepaliveSeconds?: number;
  name?: string;
}

export class Peer {
  readonly remote: RemoteIdentity;
  readonly cookieJar: CookieJar;
  readonly publicKeyBase64: string;
  name: string | undefined;
  allowedIps: Cidr[];
  /** Where to send, in the 20-byte address format; learned from authenticated packets (roaming). */
  endpoint: Uint8Array | undefined;
  persistentKeepaliveSeconds: number;
  /**
   * Static mode (true): follow the source of authenticated packets, as WireGuard does. Managed
   * mode (false): the magic socket's path selection owns the endpoint; packets only fill it in
   * while it is unset.
   */
  roaming = true;

  previous: Keypair | undefined;
  current: Keypair | undefined;
  /** Responder's new keypair, promoted once the initiator proves it has it by sending data. */
  next: Keypair | undefined;

  handshake: InitiatorState | undefined;
  /** Greatest TAI64N timestamp accepted from this peer (initiation replay protection). */
  lastInitiationTimestamp: Uint8Array | undefined;
  lastInitiationReceivedAt = 0;

  staged: Uint8Array[] = [];

  // Timer state, as timestamps in ms (0 = not armed); see timers.ts.
  lastInitiationSentAt = 0;
  handshakeAttemptStartedAt = 0;
  retransmitDueAt = 0;
  keepaliveDueAt = 0;
  newHandshakeDueAt = 0;
  lastAuthenticatedTraversalAt = 0;
  lastHandshakeCompletedAt = 0;

  rxBytes = 0;
  txBytes = 0;
  rxPackets = 0;
  txPackets = 0;

  constructor(opts: PeerOptions) {
    this.remote = opts.remote;
    this.cookieJar = new CookieJar(opts.remote);
    this.publicKeyBase64 = Buffer.from(opts.remote.publicKey).toString('base64');
    this.name = opts.name;
    this.allowedIps = opts.allowedIps;
    this.endpoint = opts.endpoint ? Uint8Array.from(opts.endpoint) : undefined;
    this.persistentKeepaliveSeconds = opts.persistentKeepaliveSeconds ?? 0;
  }

  setEndpointFrom(buf: Uint8Array, off: number): void {
    if (!this.roaming && this.endpoint !== undefined) return;
    this.endpoint = copyBytes(buf, off, ADDR_LEN);
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
