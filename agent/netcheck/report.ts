// What `pinhole netcheck` reports: plain JSON (the local API sends it as is, `--json` prints it).
// NAT behaviours use RFC 4787's terms, spelled as coturn's `turnutils_natdiscovery -m -f` prints
// them ("NAT with Address Dependent Filtering!" → 'address-dependent'), so the two compare 1:1.

/** RFC 4787 mapping or filtering behaviour. */
export type NatBehaviourName = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

import type { PortmapProbeJson } from '../portmap/portmapper.js';

export interface NetcheckReport {
  /** When the run started (ISO 8601) and how long it took. */
  startedAt: string;
  durationMs: number;
  /** At least one STUN server answered over UDP from the agent's socket. */
  udp: boolean;
  /** Our public (server-reflexive) ip:port as the first answering IPv4 STUN server saw it. */
  ipv4: string | null;
  /** Same for IPv6; null when no IPv6 server answered. */
  ipv6: string | null;
  /** false when the public IPv4 address is one of this host's own interface addresses; null: unknown. */
  behindNat: boolean | null;
  /** RFC 4787 §4.1 mapping behaviour (RFC 5780 §4.3 tests, or several servers); null: unknown. */
  mapping: NatBehaviourName | null;
  /** Different destination IPs saw different public ip:ports (Tailscale's MappingVariesByDestIP); null: under two answering IPv4 servers of distinct IPs. */
  mappingVariesByDestIp: boolean | null;
  /** RFC 4787 §5 filtering behaviour (RFC 5780 §4.4 CHANGE-REQUEST tests); null: no RFC 5780 server, or no result (see tests.filtering). */
  filtering: NatBehaviourName | null;
  /** A packet sent to our own public ip:port came back to the socket; null: not tested (no public IPv4). */
  hairpinning: boolean | null;
  /** Name of the relay with the lowest measured latency; null when none answered. */
  preferredRelay: string | null;
  relays: NetcheckRelayResult[];
  /** One entry per distinct STUN server (deduplicated across relays). */
  stun: NetcheckStunResult[];
  /** The RFC 5780 behaviour tests behind `mapping` and `filtering`; null: no RFC 5780 server answered. */
  tests: NetcheckBehaviourTests | null;
  /** Which port-mapping protocols the default gateway answers (the agent adds it; absent: not asked, null: turned off). */
  portmap?: PortmapProbeJson | null;
}

export interface NetcheckRelayResult {
  name: string;
  url: string;
  /** Round trip over the relay connection (TCP/WebSocket), ms; null with `error` when it failed. */
  latencyMs: number | null;
  error?: string;
}

export interface NetcheckStunResult {
  /** "ip:port" or "[ipv6]:port". */
  server: string;
  /** Relays that list this server. */
  relays: string[];
  /** Binding round trip (test I), ms; null without an answer. */
  rttMs: number | null;
  /** Our public address as this server saw it. */
  mapped: string | null;
  /** RFC 5780 OTHER-ADDRESS: set when the server supports behaviour discovery. */
  otherAddress: string | null;
  error?: string;
}

export interface NetcheckBehaviourTests {
  /** The RFC 5780 server the tests ran against (its primary address) and its OTHER-ADDRESS. */
  server: string;
  otherAddress: string;
  /**
   * RFC 5780 §4.3: our public ip:port as seen at the primary address (test I), at the other IP on
   * the primary port (test II), at the other IP and port (test III); null: not run or no answer.
   * Decision as coturn's: II = I → endpoint-independent; else III = II → address-dependent;
   * else address-and-port-dependent.
   */
  mapping: { I: string; II: string | null; III: string | null };
  /**
   * RFC 5780 §4.4: did the answer to a request carrying CHANGE-REQUEST (change IP and port: test
   * II; change port: test III) get through to us? II → endpoint-independent; else III →
   * address-dependent; else address-and-port-dependent. The tests are only meaningful on a socket
   * that has not sent to the server's other addresses lately, and the agent has one socket: a run
   * within FILTER_STATE_MS of an earlier one reuses the earlier clean result (`fromCache`), or
   * reports filtering as null (`skipped` says why).
   */
  filtering: {
    II: boolean | null;
    III: boolean | null;
    /** When the result was measured (ISO 8601). */
    measuredAt: string | null;
    fromCache: boolean;
    skipped?: string;
  };
}
