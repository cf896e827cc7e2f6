// Limits and timeouts of the userspace NAT, with their defaults. Every table is bounded per peer
// (overlay source address) and in total, so a misbehaving peer cannot exhaust memory or fds.

export interface NatLimits {
  /** Largest IP packet emitted toward the overlay (the tunnel MTU); TCP MSS = mtu - 40 (IPv4) / - 60 (IPv6). */
  mtu: number;
  /** Overlay source addresses with state at once; new flows from further sources are dropped. */
  maxPeers: number;
  /** TCP flows per peer (any state but TIME_WAIT). */
  tcpPerPeer: number;
  /** TCP flows per peer whose host connect() is still in progress (SYN flood bound). */
  tcpConnectingPerPeer: number;
  /** TCP flows in all (each holds a host socket). */
  tcpTotal: number;
  /** Flows lingering in TIME_WAIT (no socket, a few hundred bytes each); beyond, flows are freed at once. */
  tcpTimeWaitTotal: number;
  /** New TCP flows per second per peer (token bucket rate), and the bucket size. */
  synPerSecond: number;
  synBurst: number;
  /** Host connect() gives up after this; the client gets ICMP host unreachable. */
  tcpConnectTimeoutMs: number;
  /** Idle timeout of an established flow (RFC 5382 REQ-5: at least 2 h 4 min). */
  tcpEstablishedIdleMs: number;
  /** Idle timeout of a flow that is opening or closing (RFC 5382: 4 min). */
  tcpTransitoryIdleMs: number;
  /** How long a closed flow answers retransmitted FINs before it is forgotten. */
  tcpTimeWaitMs: number;
  /** Bytes from the peer accepted but not yet written by the host socket (the receive window). */
  tcpReceiveWindow: number;
  /** Bytes from the host not yet acknowledged by the peer before the host socket is paused. */
  tcpSendBuffer: number;
  /** Acknowledge at least every N in-order segments; others are acknowledged once per event-loop turn. */
  tcpAckEverySegments: number;
  /** Retransmissions of one segment before the flow is reset. */
  tcpMaxRetransmits: number;
  /** UDP mappings (one host socket each) per peer and in all. */
  udpPerPeer: number;
  udpTotal: number;
  /** A UDP mapping is closed after this long without traffic (RFC 4787 REQ-5: at least 2 min). */
  udpIdleMs: number;
  /** Remote endpoints remembered per UDP mapping for address-and-port-dependent filtering. */
  udpFilterEntries: number;
  /** Echo requests awaiting a reply, per peer and in all. */
  icmpPerPeer: number;
  icmpTotal: number;
  /** An echo request without a reply is forgotten after this. */
  icmpTimeoutMs: number;
}

export const DEFAULT_NAT_LIMITS: Readonly<NatLimits> = Object.freeze({
  mtu: 1420,
  maxPeers: 1024,
  tcpPerPeer: 1024,
  tcpConnectingPerPeer: 128,
  tcpTotal: 8192,
  tcpTimeWaitTotal: 8192,
  synPerSecond: 200,
  synBurst: 400,
  tcpConnectTimeoutMs: 10_000,
  tcpEstablishedIdleMs: 7_440_000,
  tcpTransitoryIdleMs: 240_000,
  tcpTimeWaitMs: 10_000,
  tcpReceiveWindow: 1 << 20,
  tcpSendBuffer: 1 << 20,
  tcpAckEverySegments: 8,
  tcpMaxRetransmits: 12,
  udpPerPeer: 256,
  udpTotal: 4096,
  udpIdleMs: 120_000,
  udpFilterEntries: 256,
  icmpPerPeer: 64,
  icmpTotal: 4096,
  icmpTimeoutMs: 10_000,
});

export class InvalidNatLimitError extends Error {
  override readonly name = 'InvalidNatLimitError';
  readonly code = 'ERR_INVALID_NAT_LIMIT';
}

/** Defaults overlaid with `given`; throws InvalidNatLimitError on a value that cannot work. */
export function resolveNatLimits(given: Partial<NatLimits> = {}): NatLimits {
  const limits: NatLimits = { ...DEFAULT_NAT_LIMITS };
  for (const [key, value] of Object.entries(given) as [keyof NatLimits, unknown][]) {
    if (value === undefined) continue;
    if (!(key in DEFAULT_NAT_LIMITS)) throw new InvalidNatLimitError(`unknown NAT limit "${key}"`);
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || !Number.isInteger(value)) {
      throw new InvalidNatLimitError(`NAT limit ${key} must be a non-negative integer, not ${String(value)}`);
    }
    limits[key] = value;
  }
  if (limits.mtu < 1280 || limits.mtu > 65535) throw new InvalidNatLimitError(`NAT mtu must be 1280..65535, not ${limits.mtu}`);
  if (limits.tcpReceiveWindow < 8192 || limits.tcpReceiveWindow > 1 << 30) {
    throw new InvalidNatLimitError(`tcpReceiveWindow must be 8192..2^30 bytes, not ${limits.tcpReceiveWindow}`);
  }
  if (limits.tcpSendBuffer < 8192) throw new InvalidNatLimitError(`tcpSendBuffer must be at least 8192 bytes`);
  if (limits.tcpAckEverySegments < 1) throw new InvalidNatLimitError('tcpAckEverySegments must be at least 1');
  return limits;
}
