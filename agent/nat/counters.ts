// Counters of the userspace NAT: traffic per protocol and drops per reason, as shown by
// `status --json`. Plain numeric fields on fixed-shape objects: the hot path only increments.

/** Why a packet from the overlay (or a reply toward it) was dropped. */
export const DROP_REASONS = [
  'malformed-ip', // version, header or total length wrong
  'bad-ip-checksum',
  'fragment', // IPv4 MF/offset or IPv6 Fragment header: flows are terminated, fragments cannot be
  'bad-extension-header',
  'unsupported-protocol', // not TCP, UDP or ICMP echo
  'forbidden-destination', // loopback, link-local, multicast, broadcast, unspecified
  'refused-destination', // the destination policy refused it (an exit node's "internet only" rule)
  'malformed-tcp',
  'bad-tcp-checksum',
  'malformed-udp',
  'bad-udp-checksum',
  'malformed-icmp',
  'bad-icmp-checksum',
  'icmp-not-echo', // ICMP other than an echo request (errors from the client, ...)
  'peer-table-full', // maxPeers sources already have state
  'tcp-table-full',
  'tcp-connecting-full',
  'syn-rate-limited',
  'tcp-no-flow', // a non-SYN segment for a flow we do not know (answered with RST)
  'tcp-out-of-window',
  'tcp-bad-ack',
  'tcp-not-ready', // data or ACK before the host connection is up
  'udp-table-full',
  'udp-filtered', // a datagram from a remote the mapping never contacted (APDF)
  'udp-send-failed',
  'icmp-table-full',
  'icmp-send-failed',
  'icmp-socket-unavailable',
  'icmp-reply-unmatched', // a reply for no pending request, or from another address
  'emit-failed', // emit() threw
  'internal-error', // a bug: handle() caught an exception (logged)
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export type DropCounters = Record<DropReason, number>;

export function newDropCounters(): DropCounters {
  const drops = {} as DropCounters;
  for (const r of DROP_REASONS) drops[r] = 0;
  return drops;
}

export interface TcpCounters {
  /** Flows whose host connect succeeded. */
  opened: number;
  /** Host refused (RST sent to the client). */
  refused: number;
  /** Host unreachable or connect timed out (ICMP unreachable sent). */
  unreachable: number;
  resetByPeer: number;
  resetByHost: number;
  /** Flows reset because the peer stopped acknowledging. */
  timedOut: number;
  /** Flows closed by idle timeout. */
  idleClosed: number;
  closed: number;
  segmentsIn: number;
  segmentsOut: number;
  retransmits: number;
  fastRetransmits: number;
  /** Payload bytes peer → host and host → peer (first transmissions only). */
  bytesToHost: number;
  bytesToPeer: number;
}

export interface UdpCounters {
  mappingsCreated: number;
  mappingsExpired: number;
  datagramsOut: number;
  datagramsIn: number;
  bytesOut: number;
  bytesIn: number;
}

export interface IcmpCounters {
  echoRequests: number;
  echoReplies: number;
  timeouts: number;
}

export class NatCounters {
  packetsIn = 0;
  bytesIn = 0;
  packetsOut = 0;
  bytesOut = 0;
  /** ICMP destination-unreachable messages sent to clients. */
  unreachableSent = 0;
  readonly tcp: TcpCounters = {
    opened: 0, refused: 0, unreachable: 0, resetByPeer: 0, resetByHost: 0, timedOut: 0, idleClosed: 0, closed: 0,
    segmentsIn: 0, segmentsOut: 0, retransmits: 0, fastRetransmits: 0, bytesToHost: 0, bytesToPeer: 0,
  };
  readonly udp: UdpCounters = { mappingsCreated: 0, mappingsExpired: 0, datagramsOut: 0, datagramsIn: 0, bytesOut: 0, bytesIn: 0 };
  readonly icmp: IcmpCounters = { echoRequests: 0, echoReplies: 0, timeouts: 0 };
  readonly drops: DropCounters = newDropCounters();

  drop(reason: DropReason): void {
    this.drops[reason]++;
  }

  /** Sum of all drops. */
  totalDrops(): number {
    let n = 0;
    for (const r of DROP_REASONS) n += this.drops[r];
    return n;
  }
}
