// The userspace NAT of an exit node / subnet router: IP packets from peers whose destination is
// outside the overlay are terminated here and carried on ordinary host sockets — TCP spliced to
// node:net connections, UDP onto node:dgram sockets, ICMP echo through an ICMP socket — and the
// answers come back as IP packets through emit(). No iptables/nftables, no kernel forwarding.
//
//   const nat = new UserspaceNat({ emit: (packet) => tunnel.send(peer, packet) });
//   nat.handle(packet);      // each decrypted packet from a peer for a non-overlay destination
//   nat.status();            // counters and table sizes for `status --json`
//   nat.close();
import { performance } from 'node:perf_hooks';
import { ICMPV4_ECHO_REQUEST, ICMPV6_ECHO_REQUEST, UnreachableCode } from '../../proto/ip/icmp.js';
import {
  IP_PROTO_ICMP, IP_PROTO_ICMPV6, IP_PROTO_TCP, IP_PROTO_UDP, IpHeaderProblem, newIpHeaderView, readIpHeader,
} from '../../proto/ip/ip-header.js';
import { NatCounters, type DropCounters, type DropReason, type IcmpCounters, type TcpCounters, type UdpCounters } from './counters.js';
import { isForbiddenDestination, type DestinationPolicy } from './destination-policy.js';
import { IcmpEcho, type IcmpSocketState } from './icmp-echo.js';
import type { NatContext, NatLog } from './nat-context.js';
import { resolveNatLimits, type NatLimits } from './nat-limits.js';
import { OverlayWriter } from './overlay-writer.js';
import { copyBytes } from '../../proto/bytes.js';
import { PeerTable } from './peer-table.js';
import { TcpSplice, type TcpTableStatus } from './tcp-splice.js';
import { UdpNat, type UdpFiltering } from './udp-nat.js';

export type { NatLimits } from './nat-limits.js';
export { DEFAULT_NAT_LIMITS } from './nat-limits.js';
export type { UdpFiltering } from './udp-nat.js';

/** How often idle flows, unanswered echoes and empty peers are swept. */
const SWEEP_INTERVAL_MS = 1000;
/** A peer without flows is forgotten after this (its SYN bucket has long refilled). */
const PEER_FORGET_MS = 60_000;

export interface UserspaceNatOptions {
  /**
   * Sends an IP packet (IPv4 or IPv6, complete, checksums valid) back toward the overlay; its
   * destination is the peer address that sent the flow. The buffer is the engine's and is
   * reused as soon as emit() returns: copy or encrypt it synchronously, do not keep it. emit()
   * may be called from inside handle() and from socket/timer callbacks; it must not call
   * handle() synchronously. An exception thrown by emit() is counted (drops['emit-failed']).
   */
  emit(packet: Uint8Array): void;
  /** UDP filtering: 'endpoint-independent' (full cone, default) or 'address-and-port-dependent'. */
  udpFiltering?: UdpFiltering;
  /** Limits and timeouts; defaults in DEFAULT_NAT_LIMITS (nat-limits.ts). */
  limits?: Partial<NatLimits>;
  log?: NatLog;
  /**
   * Let clients reach this host's loopback (127.0.0.0/8, ::1) and link-local addresses
   * (169.254.0.0/16 — cloud metadata — and fe80::/10). Default false: they get ICMP
   * "administratively prohibited". Multicast, broadcast and unspecified are always refused.
   */
  allowLocalDestinations?: boolean;
  /**
   * Further destinations to refuse (an exit node's "internet only" rule, exit-policy.ts): counted
   * as drops['refused-destination'] and answered like forbidden ones.
   */
  destinationPolicy?: DestinationPolicy;
}

export interface NatStatus {
  udpFiltering: UdpFiltering;
  mtu: number;
  /** Overlay sources with state. */
  peers: number;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  unreachableSent: number;
  tcp: TcpTableStatus & TcpCounters;
  udp: { mappings: number } & UdpCounters;
  icmp: { pending: number; socketV4: IcmpSocketState; socketV6: IcmpSocketState } & IcmpCounters;
  /** Drops by reason, and their sum. */
  drops: DropCounters;
  dropped: number;
}

const IP_PROBLEM_REASONS = new Map<number, DropReason>([
  [IpHeaderProblem.Fragment, 'fragment'],
  [IpHeaderProblem.BadHeaderChecksum, 'bad-ip-checksum'],
  [IpHeaderProblem.BadExtensionHeader, 'bad-extension-header'],
]);

const silentLog: NatLog = { debug() {}, warn() {} };

export class UserspaceNat {
  private readonly ctx: NatContext;
  private readonly counters = new NatCounters();
  private readonly ip = newIpHeaderView();
  private readonly tcp: TcpSplice;
  private readonly udp: UdpNat;
  private readonly icmp: IcmpEcho;
  private readonly allowLocal: boolean;
  private readonly policy: DestinationPolicy | null;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(opts: UserspaceNatOptions) {
    if (typeof opts?.emit !== 'function') throw new TypeError('UserspaceNat needs an emit(packet) function');
    const filtering = opts.udpFiltering ?? 'endpoint-independent';
    if (filtering !== 'endpoint-independent' && filtering !== 'address-and-port-dependent') {
      throw new TypeError(`udpFiltering must be 'endpoint-independent' or 'address-and-port-dependent', not ${String(filtering)}`);
    }
    const limits = resolveNatLimits(opts.limits);
    this.allowLocal = opts.allowLocalDestinations === true;
    this.policy = opts.destinationPolicy ?? null;
    this.ctx = {
      limits,
      counters: this.counters,
      writer: new OverlayWriter(opts.emit, this.counters),
      peers: new PeerTable(limits.maxPeers, limits.synBurst),
      log: opts.log ?? silentLog,
      now: () => performance.now(),
    };
    this.tcp = new TcpSplice(this.ctx);
    this.udp = new UdpNat(this.ctx, filtering);
    this.icmp = new IcmpEcho(this.ctx);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweeper.unref();
  }

  /** One IP packet from the overlay (src = a peer's overlay address). Never throws; bad input is counted. */
  handle(packet: Uint8Array): void {
    if (this.closed) return;
    const c = this.counters;
    try {
      c.packetsIn++;
      c.bytesIn += packet.length;
      const ip = this.ip;
      const problem = readIpHeader(packet, 0, packet.length, ip);
      if (problem < 0) {
        c.drop(IP_PROBLEM_REASONS.get(problem) ?? 'malformed-ip');
        return;
      }
      // A source that is not a unicast address cannot be answered.
      if (isForbiddenDestination(packet, ip.srcOffset, ip.version, true)) {
        c.drop('malformed-ip');
        return;
      }
      const proto = ip.protocol;
      const isIcmp = proto === (ip.version === 4 ? IP_PROTO_ICMP : IP_PROTO_ICMPV6);
      if (proto !== IP_PROTO_TCP && proto !== IP_PROTO_UDP && !isIcmp) {
        c.drop('unsupported-protocol');
        return;
      }
      if (isForbiddenDestination(packet, ip.dstOffset, ip.version, this.allowLocal)) {
        c.drop('forbidden-destination');
        this.refuse(packet, proto, isIcmp);
        return;
      }
      if (this.policy !== null && this.policy.refuses(packet, ip.dstOffset, ip.version)) {
        c.drop('refused-destination');
        this.refuse(packet, proto, isIcmp);
        return;
      }
      if (proto === IP_PROTO_TCP) this.tcp.handle(packet, ip);
      else if (proto === IP_PROTO_UDP) this.udp.handle(packet, ip);
      else this.icmp.handle(packet, ip);
    } catch (err) {
      c.drop('internal-error');
      this.ctx.log.warn(`NAT: packet handling failed: ${(err as Error).stack ?? String(err)}`);
    }
  }

  /**
   * The answer to a packet whose destination we refuse: a RST for TCP, ICMP "administratively
   * prohibited" for UDP and echo requests; nothing for other ICMP (never an error about an error).
   */
  private refuse(packet: Uint8Array, proto: number, isIcmp: boolean): void {
    const ip = this.ip;
    if (proto === IP_PROTO_TCP) {
      this.tcp.refuse(packet, ip);
      return;
    }
    if (isIcmp) {
      const type = ip.l4Length >= 8 ? packet[ip.l4Offset] : -1;
      if (type !== (ip.version === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST)) return;
    }
    const code = ip.version === 4 ? UnreachableCode.v4.adminProhibited : UnreachableCode.v6.adminProhibited;
    const src = copyBytes(packet, ip.dstOffset, ip.dstOffset + ip.addrLength);
    const dst = copyBytes(packet, ip.srcOffset, ip.srcOffset + ip.addrLength);
    this.ctx.writer.unreachable(ip.version, code, src, dst, packet, ip.offset, ip.totalLength);
  }

  private sweep(): void {
    const now = this.ctx.now();
    try {
      this.tcp.sweep(now);
      this.udp.sweep(now);
      this.icmp.sweep(now);
      this.ctx.peers.forgetIdle(now, PEER_FORGET_MS);
    } catch (err) {
      this.ctx.log.warn(`NAT: sweep failed: ${(err as Error).stack ?? String(err)}`);
    }
  }

  /** JSON-serialisable counters and table sizes (`status --json`). */
  status(): NatStatus {
    const c = this.counters;
    return {
      udpFiltering: this.udp.filtering,
      mtu: this.ctx.limits.mtu,
      peers: this.ctx.peers.size,
      packetsIn: c.packetsIn,
      bytesIn: c.bytesIn,
      packetsOut: c.packetsOut,
      bytesOut: c.bytesOut,
      unreachableSent: c.unreachableSent,
      tcp: { ...this.tcp.status(), ...c.tcp },
      udp: { mappings: this.udp.size, ...c.udp },
      icmp: { pending: this.icmp.size, socketV4: this.icmp.socketState(4), socketV6: this.icmp.socketState(6), ...c.icmp },
      drops: { ...c.drops },
      dropped: c.totalDrops(),
    };
  }

  /** Closes every host socket and forgets every flow; idempotent. Nothing is emitted after. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctx.writer.closed = true;
    clearInterval(this.sweeper);
    this.tcp.closeAll();
    this.udp.closeAll();
    this.icmp.closeAll();
  }
}
