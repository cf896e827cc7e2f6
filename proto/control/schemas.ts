// Control-plane wire formats (coordinator ⇄ agent, admin ⇄ coordinator), defined once with zod.
// Every inbound message on either side is parsed with these schemas before anything else.
// All our schemas use zod/mini, zod's functional API (`z.optional(s)`, `s.check(z.maxLength(64))`):
// unlike its classic API it can be tree-shaken, and the agent's bundle carries only what it calls
// (docs/protocol.md, "At idle"). The messages are zod's English ones (../zod-locale.ts).
import * as z from 'zod/mini';
import '../zod-locale.js';
import { DnsConfig } from '../dns/dns-config.js';

/** A 32-byte key in standard base64 (44 chars), as wg prints it. */
export const Key32 = z.string().check(z.regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, 'a base64 32-byte key'));
/** "ip:port" or "[ipv6]:port". */
export const Endpoint = z.string().check(z.maxLength(64), z.regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/, 'an ip:port endpoint'));
export const CidrText = z.string().check(z.maxLength(64), z.regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'a CIDR like 198.18.5.0/24'));
export const Hostname = z.string().check(z.minLength(1), z.maxLength(63), z.regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i, 'a hostname of letters, digits and "-"'));
export const TAG_RULE = 'a tag is tag:NAME (NAME: letters, digits and -, up to 60), e.g. tag:web';
export const Tag = z.string().check(z.maxLength(64, TAG_RULE), z.regex(/^tag:[a-z0-9-]+$/i, TAG_RULE));
export const NodeId = z.number().check(z.int(), z.positive());
/**
 * The owner an admin names when creating an auth key (`authkey create --user alice`): every node
 * registered with the key belongs to that user, and `user:NAME` in a policy picks them.
 */
export const UserName = z.string().check(z.minLength(1), z.maxLength(64), z.regex(/^[a-z0-9]([a-z0-9._@-]*[a-z0-9])?$/i, 'a user name of letters, digits and ".", "_", "@", "-"'));
/** Printable text without control or format characters (what an agent says about itself is shown to admins). */
const AGENT_TEXT_RULE = 'printable text without control characters or surrounding spaces';
const agentText = (max: number): z.ZodMiniString => z.string().check(z.minLength(1), z.maxLength(max), z.regex(/^(?!\s)[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+(?<!\s)$/u, AGENT_TEXT_RULE));
export const MAX_AGENT_OS = 64;
export const MAX_AGENT_VERSION = 32;
/** The agent's OS as it reports it: "linux", or "linux debian 12" when /etc/os-release says so. */
export const AgentOs = agentText(MAX_AGENT_OS);
/** The pinhole version the agent runs (what `pinhole --version` prints after "pinhole "). */
export const AgentVersion = agentText(MAX_AGENT_VERSION);

/**
 * GET /api/v1/server (in the clear: public) → the coordinator's static key(s). A caller uses it
 * only to find the key matching a fingerprint it already holds (docs/security.md).
 */
export const ServerInfo = z.object({
  /** The coordinator's X25519 static key: the control channel's Noise responder key. */
  serverKey: Key32,
  /** During a key rotation: the key replacing it. */
  nextServerKey: z.optional(Key32),
});
export type ServerInfo = z.infer<typeof ServerInfo>;

/** POST /api/v1/register */
export const RegisterRequest = z.strictObject({
  /** Needed for a new node or an expired one; a known, unexpired node may re-register without. */
  authKey: z.optional(z.string().check(z.maxLength(200))),
  nodeKey: Key32,
  discoKey: Key32,
  hostname: Hostname,
  advertiseRoutes: z._default(z.array(CidrText).check(z.maxLength(64)), []),
  advertiseExitNode: z._default(z.boolean(), false),
  /** What the agent runs on and which pinhole it is (absent from agents older than the fields). */
  os: z.optional(AgentOs),
  version: z.optional(AgentVersion),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const SelfNode = z.object({
  id: NodeId,
  name: z.string(),
  nodeKey: Key32,
  ipv4: z.string(),
  ipv6: z.string(),
  keyExpiresAt: z.nullable(z.string()),
  tags: z.array(z.string()),
  /**
   * Approved routes this node serves (a subnet router's prefixes; 0.0.0.0/0 and ::/0 for an
   * approved exit node): packets from peers for these destinations go to its userspace NAT.
   */
  routes: z.optional(z.array(CidrText)),
});
export type SelfNode = z.infer<typeof SelfNode>;

export const RegisterResponse = z.object({ node: SelfNode });
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/** POST /api/v1/deregister (logout): the node deletes itself, proving it holds its node key. */
export const DeregisterRequest = z.strictObject({
  nodeKey: Key32,
});
export type DeregisterRequest = z.infer<typeof DeregisterRequest>;

export const DeregisterResponse = z.object({ deregistered: NodeId });
export type DeregisterResponse = z.infer<typeof DeregisterResponse>;

/**
 * A node's NAT in the classic names (RFC 3489's cone/symmetric table), as its netcheck showed it:
 * 'cone' is endpoint-independent mapping with filtering unknown. The agent reports it with its
 * endpoints; peers use it for "why not direct" and birthday probing.
 */
export const NAT_KINDS = ['udp-blocked', 'none', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'cone', 'symmetric'] as const;
export const NatKind = z.enum(NAT_KINDS);
export type NatKind = z.infer<typeof NatKind>;

/** A peer as a node sees it in its netmap. */
export const Peer = z.object({
  id: NodeId,
  name: z.string(),
  nodeKey: Key32,
  discoKey: Key32,
  ipv4: z.string(),
  ipv6: z.string(),
  endpoints: z.array(Endpoint),
  homeRelay: z.nullable(z.string()),
  /** The peer's NAT as it reported it (null: not reported; absent from coordinators older than the field). */
  natKind: z.optional(z.nullable(NatKind)),
  online: z.boolean(),
  lastSeen: z.nullable(z.string()),
  /** Approved subnet routes (and 0.0.0.0/0 + ::/0 for an approved exit node). */
  routes: z.array(CidrText),
  exitNode: z.boolean(),
  tags: z.array(z.string()),
});
export type Peer = z.infer<typeof Peer>;

/** One packet-filter rule a node enforces on inbound traffic (compiled by the coordinator). */
export const FilterRule = z.object({
  srcIps: z.array(z.string()),
  dst: z.array(z.object({ cidr: CidrText, ports: z.string() })),
  /** IP protocol numbers; empty = TCP, UDP and ICMP. */
  protocols: z.array(z.number().check(z.int(), z.gte(0), z.lte(255))),
});
export type FilterRule = z.infer<typeof FilterRule>;

/**
 * A relay, its STUN servers ("host:port" / "[ipv6]:port") and its static key (base64 X25519
 * public key, which the agent requires the relay to prove before it sends anything). Both are
 * empty in netmaps saved before the fields existed, hence the defaults; an agent does not use a
 * relay without a key.
 */
export const RelayInfo = z.object({
  name: z.string(),
  url: z.string(),
  stun: z._default(z.array(z.string().check(z.maxLength(300))).check(z.maxLength(16)), []),
  /** The relay's static key (base64): the agent refuses a relay that does not prove it holds it ('' in netmaps saved before keys). */
  key: z._default(z.string().check(z.maxLength(64)), ''),
  /**
   * Relays sharing a region are one relay mesh (docs/relay-mesh.md): a node reaches a peer homed on
   * any of them through its own home relay, and moves to another of them when its home dies.
   * Absent: the relay is a region of its own (its name).
   */
  region: z.optional(z.string().check(z.regex(/^[a-z0-9-]{1,64}$/i))),
});
export type RelayInfo = z.infer<typeof RelayInfo>;

export const Netmap = z.object({
  type: z.literal('netmap'),
  seq: z.number().check(z.int(), z.nonnegative()),
  self: SelfNode,
  peers: z.array(Peer),
  /** null: no policy set, everything allowed. */
  packetFilter: z.nullable(z.array(FilterRule)),
  relays: z.array(RelayInfo),
  /** Names in DNS (absent from coordinators and saved netmaps older than the field). */
  dns: z.optional(DnsConfig),
  /** Stream messages this coordinator accepts beyond the first round's (SERVER_CAPABILITIES). */
  serverCapabilities: z.optional(z.array(z.string().check(z.maxLength(32))).check(z.maxLength(16))),
});
export type Netmap = z.infer<typeof Netmap>;

/**
 * The live fields of a peer that changed, sent instead of its whole record to streams whose hello
 * listed the 'peer-patches' capability. Fields present replace the peer's; absent ones stay.
 */
export const PeerPatch = z.object({
  id: NodeId,
  endpoints: z.optional(z.array(Endpoint)),
  homeRelay: z.optional(z.nullable(z.string())),
  natKind: z.optional(z.nullable(NatKind)),
  online: z.optional(z.boolean()),
  lastSeen: z.optional(z.nullable(z.string())),
});
export type PeerPatch = z.infer<typeof PeerPatch>;

/**
 * A change to the netmap: peers added or changed (whole records), peers patched (only with the
 * 'peer-patches' capability), peers removed, filter replaced. Apply upserts, then patches, then
 * removals. seq counts up by one per message on a stream (the netmap is 0).
 */
export const NetmapDelta = z.object({
  type: z.literal('delta'),
  seq: z.number().check(z.int(), z.nonnegative()),
  upserts: z.array(Peer),
  patches: z.optional(z.array(PeerPatch)),
  removals: z.array(NodeId),
  packetFilter: z.optional(z.nullable(z.array(FilterRule))),
  self: z.optional(SelfNode),
});
export type NetmapDelta = z.infer<typeof NetmapDelta>;

// Stream (WebSocket /api/v1/stream, inside the control channel, whose static key is the node key).
// The client speaks first with hello.
export const StreamHello = z.strictObject({
  type: z.literal('hello'), nodeKey: Key32,
  /** Last seq the agent holds; informational (the server always starts with a full map). */
  lastSeq: z.optional(z.number().check(z.int(), z.nonnegative())),
  /** Optional protocol features the agent understands (STREAM_CAPABILITIES); unknown ones are ignored. */
  capabilities: z.optional(z.array(z.string().check(z.maxLength(32))).check(z.maxLength(16))),
});

export const STREAM_CAPABILITIES = {
  /** Deltas may carry `patches` (changed live fields) instead of whole peer records. */
  peerPatches: 'peer-patches',
  /** `client-pings:N`: the client sends a `ping` at least every N ms (clientPingsCapability). */
  clientPings: 'client-pings',
} as const;

/** The capability a client sends when it pings its stream at least every `everyMs` ms. */
export function clientPingsCapability(everyMs: number): string {
  return `${STREAM_CAPABILITIES.clientPings}:${Math.max(1, Math.ceil(everyMs))}`;
}

/**
 * The interval a client promised with `client-pings:N`, in ms; null when it promised none (or
 * only malformed ones: N must be an integer, 1 ms to 1 hour).
 */
export function clientPingsPromise(capabilities: readonly string[] | undefined): number | null {
  const prefix = `${STREAM_CAPABILITIES.clientPings}:`;
  for (const c of capabilities ?? []) {
    if (!c.startsWith(prefix)) continue;
    const n = c.slice(prefix.length);
    if (/^[1-9]\d{0,6}$/.test(n) && Number(n) <= 3_600_000) return Number(n);
  }
  return null;
}
export const StreamEndpoints = z.strictObject({
  type: z.literal('endpoints'), endpoints: z.array(Endpoint).check(z.maxLength(32)), homeRelay: z.optional(z.nullable(z.string().check(z.maxLength(64)))),
  /** This node's NAT from its last netcheck (null: unknown); only to coordinators listing 'nat-kind' (the schema is strict). */
  natKind: z.optional(z.nullable(NatKind)),
});
export const StreamPing = z.strictObject({ type: z.literal('ping'), t: z.number() });

/** What a coordinator lists in its netmap's serverCapabilities. */
export const SERVER_CAPABILITIES = {
  /** The agent may send {type:'paths'} reports (its path table, for the console's live mesh). */
  pathReports: 'path-reports',
  /** The agent may send natKind with its endpoints; peers get it in their netmaps. */
  natKind: 'nat-kind',
} as const;

export const PATH_KINDS = ['direct', 'relay', 'none'] as const;
/** One peer as the reporting agent sees it. */
export const PeerPathReport = z.strictObject({
  /** The peer's node key. */
  peer: Key32,
  path: z.enum(PATH_KINDS),
  /** Relay region name when path is 'relay'. */
  relay: z.nullable(z.string().check(z.maxLength(64))),
  /** The confirmed direct endpoint when path is 'direct'. */
  endpoint: z.nullable(Endpoint),
  /** Round-trip time of the path in use (disco pong), when known. */
  latencyMs: z.nullable(z.number().check(z.nonnegative(), z.lte(600_000))),
  /** Why the path is not direct, one line (null when direct). */
  whyNotDirect: z.nullable(z.string().check(z.maxLength(200))),
  /** What was tried toward the peer: candidates, disco pings sent, pongs received. */
  tried: z.strictObject({
    candidates: z.number().check(z.int(), z.nonnegative(), z.lte(1_000_000)),
    pingsSent: z.number().check(z.int(), z.nonnegative(), z.lte(1e12)),
    pongsReceived: z.number().check(z.int(), z.nonnegative(), z.lte(1e12)),
  }),
  /** Seconds since traffic or disco last went to or came from the peer. */
  idleSeconds: z.number().check(z.nonnegative(), z.lte(1e9)),
});
export type PeerPathReport = z.infer<typeof PeerPathReport>;
export const MAX_PATH_REPORT_PEERS = 4096;
/** The agent's whole path table, sent on change (coalesced, at most PATH_REPORT_MIN_INTERVAL_MS apart). */
export const StreamPaths = z.strictObject({
  type: z.literal('paths'),
  /** This node's NAT type from its netcheck (e.g. "endpoint-independent mapping"), when known. */
  natType: z.nullable(z.string().check(z.maxLength(100))),
  peers: z.array(PeerPathReport).check(z.maxLength(MAX_PATH_REPORT_PEERS)),
});
export type StreamPaths = z.infer<typeof StreamPaths>;
export const PATH_REPORT_MIN_INTERVAL_MS = 500;
export const StreamPong = z.object({ type: z.literal('pong'), t: z.number() });
export const StreamError = z.object({ type: z.literal('error'), reason: z.string() });

export const ClientStreamMessage = z.discriminatedUnion('type', [StreamHello, StreamEndpoints, StreamPing, StreamPaths]);
export type ClientStreamMessage = z.infer<typeof ClientStreamMessage>;
export const ServerStreamMessage = z.discriminatedUnion('type', [Netmap, NetmapDelta, StreamPong, StreamError]);
export type ServerStreamMessage = z.infer<typeof ServerStreamMessage>;

// Admin API (Authorization: Bearer TOKEN).
export const AuthKeyCreate = z.strictObject({
  reusable: z._default(z.boolean(), false),
  ephemeral: z._default(z.boolean(), false),
  /** Seconds until the key expires; absent = never. */
  expirySeconds: z.optional(z.number().check(z.int(), z.positive(), z.lte(10 * 365 * 86400))),
  tags: z._default(z.array(Tag).check(z.maxLength(16)), []),
  /** The owner of the nodes it registers; absent = none. */
  user: z.optional(UserName),
});
export type AuthKeyCreate = z.infer<typeof AuthKeyCreate>;

export const AuthKeyInfo = z.object({
  id: z.number().check(z.int()),
  prefix: z.string(),
  reusable: z.boolean(),
  ephemeral: z.boolean(),
  tags: z.array(z.string()),
  /** Owner of the nodes it registers (null: none; absent from coordinators older than the field). */
  user: z._default(z.nullable(z.string()), null),
  createdAt: z.string(),
  expiresAt: z.nullable(z.string()),
  usedCount: z.number().check(z.int()),
  revoked: z.boolean(),
});
export type AuthKeyInfo = z.infer<typeof AuthKeyInfo>;

/** Only in the creation reply: the secret is never shown again. */
export const AuthKeyCreated = z.extend(AuthKeyInfo, { key: z.string() });

export const NodeInfo = z.extend(Peer, {
  /** Owner, from the auth key it registered with (null: none). */
  user: z._default(z.nullable(z.string()), null),
  createdAt: z.string(),
  keyExpiresAt: z.nullable(z.string()),
  ephemeral: z.boolean(),
  advertisedRoutes: z.array(CidrText),
  advertisedExitNode: z.boolean(),
  /** The agent's OS and pinhole version from its last registration (null: not reported, an older agent). */
  os: z._default(z.nullable(z.string()), null),
  version: z._default(z.nullable(z.string()), null),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const RoutesApprove = z.strictObject({ routes: z.array(CidrText).check(z.minLength(1), z.maxLength(64)) });

/** POST /api/v1/admin/nodes/:id/rename: the same rules as a hostname at registration. */
export const NodeRename = z.strictObject({ name: Hostname });
export type NodeRename = z.infer<typeof NodeRename>;

/** One-line reason for a refused request, with the HTTP status. */
export const ErrorReply = z.object({ error: z.string() });

/** First line of a zod error, for one-line refusals ("hostname: a hostname of letters, ..."). */
export function describeZodError(err: z.core.$ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid message';
  const path = issue.path.join('.');
  return path ? `${path}: ${issue.message}` : issue.message;
}

/** GET /api/v1/admin/authkeys */
export const AuthKeyList = z.object({ authKeys: z.array(AuthKeyInfo) });
export type AuthKeyList = z.infer<typeof AuthKeyList>;

/** GET /api/v1/admin/nodes */
export const NodeList = z.object({ nodes: z.array(NodeInfo) });
export type NodeList = z.infer<typeof NodeList>;

/** One advertised route of one node (an exit node advertises 0.0.0.0/0 and ::/0). */
export const RouteInfo = z.object({
  nodeId: NodeId,
  node: z.string(),
  route: CidrText,
  approved: z.boolean(),
  exitNode: z.boolean(),
});
export type RouteInfo = z.infer<typeof RouteInfo>;

/** GET /api/v1/admin/routes */
export const RouteList = z.object({ routes: z.array(RouteInfo) });
export type RouteList = z.infer<typeof RouteList>;

/** GET /api/v1/admin/stats: the coordinator's counters since it started. */
export const CoordinatorStats = z.object({
  nodes: z.number().check(z.int()),
  onlineNodes: z.number().check(z.int()),
  streams: z.number().check(z.int()),
  /** Netmap fan-out: flushes, deltas and netmaps sent, their bytes, recipients skipped as behind. */
  netmap: z.record(z.string(), z.number()),
  /** Streams accepted, refused at hello, messages dropped as malformed, hellos that never came. */
  stream: z.record(z.string(), z.number()),
  /** Control channels: opened, refused (bad handshake, key mismatch, rate, caps), registrations throttled; h2*: over HTTP/2. */
  control: z.optional(z.record(z.string(), z.number())),
  /** Coordinators sharing a PostgreSQL database: this replica's change feed (replica-feed.ts). */
  replica: z.optional(z.object({
    replica: z.string(), connected: z.boolean(), lastApplied: z.number().check(z.int()), applied: z.number().check(z.int()), ownSkipped: z.number().check(z.int()),
    resyncs: z.number().check(z.int()), gaps: z.number().check(z.int()), reconnects: z.number().check(z.int()), replicasReaped: z.number().check(z.int()),
  })),
});
export type CoordinatorStats = z.infer<typeof CoordinatorStats>;

/** GET/POST /api/v1/admin/coordinator-key[/rotate|/finish]: the coordinator's keys during a rotation. */
const KeyWithFingerprint = z.object({ key: Key32, fingerprint: z.string() });
export const CoordinatorKeyState = z.object({
  current: KeyWithFingerprint,
  next: z.nullable(KeyWithFingerprint),
  /** The fingerprint auth keys created now carry. */
  authKeyFingerprint: z.string(),
});
export type CoordinatorKeyState = z.infer<typeof CoordinatorKeyState>;
