// Why packets were dropped, per device: shown by `pinhole status` so a user can tell a bad key
// from a routing mistake from an attack.
export interface DropCounters {
  /** TUN packet whose destination no peer's allowed IPs cover. */
  noRoute: number;
  /**
   * TUN packet to a multicast or broadcast address: the kernel's own IPv6 housekeeping on the
   * interface (MLD listener reports to ff02::16, router solicitations to ff02::2). Peers are
   * unicast only, so these are dropped; counted apart so idle nodes show no noRoute drops.
   */
  multicast: number;
  /** Peer has no endpoint to send to. */
  noEndpoint: number;
  /** Packets waiting for a handshake beyond the per-peer queue bound. */
  stagedOverflow: number;
  /** Not a WireGuard message, or a WireGuard message of the wrong size. */
  malformed: number;
  /** Transport message for an index we do not know (or that expired). */
  unknownIndex: number;
  /** Transport message whose authentication tag did not verify. */
  badTag: number;
  /** Transport message whose counter was seen before or is too old. */
  replay: number;
  /** Keypair older than REJECT_AFTER_TIME or past REJECT_AFTER_MESSAGES. */
  expiredKey: number;
  /** Decrypted packet that is not a valid IP packet. */
  badInnerPacket: number;
  /** Decrypted packet whose source address is not in the sending peer's allowed IPs. */
  allowedIpsMismatch: number;
  /**
   * Decrypted packet whose destination is neither one of this node's addresses nor inside a
   * route it serves: a peer trying to use this host as a router.
   */
  notForUs: number;
  /** Handshake message with a wrong mac1. */
  badMac1: number;
  /** Handshake message that failed to decrypt, was replayed, came from an unknown key, or was too frequent. */
  handshakeRejected: number;
  /** The UDP socket or TUN device refused a packet (buffers full). */
  ioDropped: number;
  /** Decrypted packet the access policy's packet filter refused (no rule and no known flow). */
  filtered: number;
}

export function newDropCounters(): DropCounters {
  return {
    noRoute: 0, multicast: 0, noEndpoint: 0, stagedOverflow: 0, malformed: 0, unknownIndex: 0, badTag: 0, replay: 0,
    expiredKey: 0, badInnerPacket: 0, allowedIpsMismatch: 0, notForUs: 0, badMac1: 0, handshakeRejected: 0, ioDropped: 0, filtered: 0,
  };
}

export interface HandshakeCounters {
  initiationsSent: number;
  initiationsReceived: number;
  responsesSent: number;
  responsesReceived: number;
  cookieRepliesSent: number;
  cookieRepliesReceived: number;
  completed: number;
}

export function newHandshakeCounters(): HandshakeCounters {
  return {
    initiationsSent: 0, initiationsReceived: 0, responsesSent: 0, responsesReceived: 0,
    cookieRepliesSent: 0, cookieRepliesReceived: 0, completed: 0,
  };
}

/** Relay trains (relay-train.ts): WireGuard messages that carried several packets through a relay. */
export interface TrainCounters {
  /** Trains (messages of more than one packet) sealed and sent, and the packets they carried. */
  sent: number;
  packetsSent: number;
  /** Relayed messages that carried more than one packet, and the packets in them. */
  received: number;
  packetsReceived: number;
}

export function newTrainCounters(): TrainCounters {
  return { sent: 0, packetsSent: 0, received: 0, packetsReceived: 0 };
}
