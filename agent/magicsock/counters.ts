// What the magic socket counts (shown under `magicsock` in status --json).
export function newMagicCounters() {
  return {
    pingsSent: 0,
    pingsReceived: 0,
    pongsReceived: 0,
    /** Pongs that match no ping we sent (late, forged, or from another address). */
    pongsUnmatched: 0,
    callMeMaybeSent: 0,
    callMeMaybeReceived: 0,
    /** Disco 'features' sent (with each call-me-maybe, and in answer to the peer's first) and received. */
    featuresSent: 0,
    featuresReceived: 0,
    /** Disco packets that failed to open or decode. */
    discoBadPacket: 0,
    /** Disco packets from a disco key (or relay sender) that is not a peer of ours. */
    discoUnknownSender: 0,
    /** Relay packets from a node that is not a peer of ours. */
    relayUnknownSender: 0,
    /** Packets for a relayed peer with no relay to send them through. */
    relayNoRoute: 0,
    /** Disco packets whose sent-at was seen before from that sender (a replay). */
    discoReplayed: 0,
    /** Disco packets whose sent-at is too far from our clock or too far behind the sender's newest. */
    discoStale: 0,
    /** Pongs not sent: a ping from an unconfirmed address over the per-address or global limit. */
    pongsRateLimited: 0,
    /** Peer-supplied endpoints (netmap, call-me-maybe) we refuse to probe: loopback, link-local, ours, overlay... */
    candidatesRefused: 0,
    /** Network changes acted on (link monitor or address poll): relays redialled, endpoints re-discovered. */
    networkChanges: 0,
    /** Datagrams that are neither WireGuard, disco nor STUN. */
    unknownDropped: 0,
  };
}
export type MagicCounters = ReturnType<typeof newMagicCounters>;
