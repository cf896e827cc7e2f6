// What the relay counts; GET /healthz returns a snapshot of it as JSON.

export function createRelayCounters() {
  return {
    clients: 0,
    clientsAccepted: 0,
    /** Connections refused before they could relay anything. */
    refused: {
      /** No valid client-info: timeout, wrong first frame, malformed, text messages. */
      unauthenticated: 0,
      /** A client-info whose proof did not verify. */
      badProof: 0,
      /** The authorizer (coordinator) does not know the node. */
      notAuthorized: 0,
      /** The authorizer could not be asked. */
      authorizerUnavailable: 0,
      /** TCP connections closed at once: their address already had --max-conns-per-ip open. */
      perAddress: 0,
    },
    /** Frames read from clients / written to clients (all types). */
    framesIn: 0,
    framesOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    /** send frames forwarded to a connected destination's queue. */
    packetsForwarded: 0,
    drops: {
      /** send to a node key that is not connected. */
      unknownDestination: 0,
      /** Oldest data frames dropped from a per-client queue at its hard cap, or at its limits while overrun. */
      queueOverflow: 0,
      /** Oldest priority frames dropped from a full priority lane. */
      priorityOverflow: 0,
      /** Frames that did not decode or made no sense from a client (ignored, connection kept). */
      badFrame: 0,
      /** Frames still queued for a client when it went away. */
      clientGone: 0,
      /** Frames refused because every client's queues together held --global-queue-bytes. */
      globalBudget: 0,
    },
    /** Priority frames over MAX_PRIORITY_PACKET bytes, moved to the data lane. */
    priorityDemoted: 0,
    /** Clients closed for reading nothing of what waited for them within --write-timeout. */
    writeTimeouts: 0,
    /** Clients disconnected for announcing a frame over the size limit. */
    oversized: 0,
    /** Connections closed because the same node key connected again. */
    replaced: 0,
    idleTimeouts: 0,
    peerGoneSent: 0,
    /** Times a sender's socket was paused by a destination's full data lane, for how long in all (ms),
     *  and how many of those pauses hit --max-pause (the destination then dropped instead). */
    backpressurePauses: 0,
    backpressurePausedMs: 0,
    backpressureTimeouts: 0,
    /** Times a client's socket was paused by its rate limit, and for how long in all. */
    rateLimitPauses: 0,
    rateLimitPausedMs: 0,
    /** The relay mesh (--mesh-with); all zero without it. */
    mesh: {
      /** Links this relay dialled that are open now, and peer relays' links into this one. */
      linksOut: 0,
      linksIn: 0,
      /** Client keys the peers announced (presence table size). */
      presence: 0,
      /** Frames sent to a peer relay for a key connected there / delivered here from a peer. */
      forwardedOut: 0,
      forwardedIn: 0,
      /** Mesh connections refused (either side), by reason. */
      refused: { badProof: 0, badCredential: 0, notAuthorized: 0, malformed: 0 },
      drops: {
        /** A forward frame for a key not connected here: dropped, never forwarded again (one hop). */
        notHere: 0,
        /** Mesh frames that did not decode (dropped, connection kept). */
        badFrame: 0,
        /** Oldest frames dropped from a link's queue at its hard cap. */
        queueOverflow: 0,
        /** Presence announcements refused: the table was full. */
        presenceFull: 0,
        /** Frames queued for a link when it went down. */
        linkDown: 0,
        /** A client's packet too large for a forward frame (32 bytes more header than a send frame). */
        tooLarge: 0,
      },
    },
    stun: {
      requests: 0,
      successSent: 0,
      errorsSent: 0,
      changeRequests: 0,
      /** Datagrams that were not STUN at all. */
      notStun: 0,
      /** STUN-looking datagrams that failed to decode. */
      malformed: 0,
      /** STUN responses/indications or other methods: not for a server. */
      ignored: 0,
      /** Requests with RESPONSE-PORT, answered 420 (we answer only to the source). */
      responsePortRefused: 0,
      /** Requests smaller than their answer would be: not answered (no amplification). */
      tooSmall: 0,
      sendErrors: 0,
    },
  };
}

export type RelayCounters = ReturnType<typeof createRelayCounters>;
export type StunCounters = RelayCounters['stun'];
