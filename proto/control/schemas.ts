// Control-plane wire formats (coordinator ⇄ agent, admin ⇄ coordinator), defined once with zod.
// Every inbound message on either side is parsed with these schemas before anything else.
import { z } from 'zod';
import { DnsConfig } from '../dns/dns-config.js';

/** A 32-byte key in standard base64 (44 chars), as wg prints it. */
export const Key32 = z.string().regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, 'a base64 32-byte key');
/** "ip:port" or "[ipv6]:port". */
export const Endpoint = z.string().max(64).regex(/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/, 'an ip:port endpoint');
export const CidrText = z.string().max(64).regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/, 'a CIDR like 198.18.5.0/24');
export const Hostname = z.string().min(1).max(63).regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i, 'a hostname of letters, digits and "-"');
export const TAG_RULE = 'a tag is tag:NAME (NAME: letters, digits and -, up to 60), e.g. tag:web';
export const Tag = z.string().max(64, TAG_RULE).regex(/^tag:[a-z0-9-]+$/i, TAG_RULE);
export const NodeId = z.number().int().positive();
/**
 * The owner an admin names when creating an auth key (`authkey create --user alice`): every node
 * registered with the key belongs to that user, and `user:NAME` in a policy picks them.
 */
export const UserName = z.string().min(1).max(64).regex(/^[a-z0-9]([a-z0-9._@-]*[a-z0-9])?$/i, 'a user name of letters, digits and ".", "_", "@", "-"');
/** Printable text without control or format characters (what an agent says about itself is shown to admins). */
const AGENT_TEXT_RULE = 'printable text without control characters or surrounding spaces';
const agentText = (max: number): z.ZodString => z.string().min(1).max(max).regex(/^(?!\s)[^\p{Cc}\p{Cf}\p{Zl}\p{Zp}]+(?<!\s)$/u, AGENT_TEXT_RULE);
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
  nextServerKey: Key32.optional(),
});
export type ServerInfo = z.infer<typeof ServerInfo>;

/** POST /api/v1/register */
export const RegisterRequest = z.object({
  /** Needed for a new node or an expired one; a known, unexpired node may re-register without. */
  authKey: z.string().max(200).optional(),
  nodeKey: Key32,
  discoKey: Key32,
  hostname: Hostname,
  advertiseRoutes: z.array(CidrText).max(64).default([]),
  advertiseExitNode: z.boolean().default(false),
  /** What the agent runs on and which pinhole it is (absent from agents older than the fields). */
  os: AgentOs.optional(),
  version: AgentVersion.optional(),
}).strict();
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const SelfNode = z.object({
  id: NodeId,
  name: z.string(),
  nodeKey: Key32,
  ipv4: z.string(),
  ipv6: z.string(),
  keyExpiresAt: z.string().nullable(),
  tags: z.array(z.string()),
  /**
   * Approved routes this node serves (a subnet router's prefixes; 0.0.0.0/0 and ::/0 for an
   * approved exit node): packets from peers for these destinations go to its userspace NAT.
   */
  routes: z.array(CidrText).optional(),
});
export type SelfNode = z.infer<typeof SelfNode>;

export const RegisterResponse = z.object({ node: SelfNode });
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/** POST /api/v1/deregister (logout): the node deletes itself, proving it holds its node key. */
export const DeregisterRequest = z.object({
  nodeKey: Key32,
}).strict();
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
  homeRelay: z.string().nullable(),
  /** The peer's NAT as it reported it (null: not reported; absent from coordinators older than the field). */
  natKind: NatKind.nullable().optional(),
  online: z.boolean(),
  lastSeen: z.string().nullable(),
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
  protocols: z.array(z.number().int().min(0).max(255)),
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
  stun: z.array(z.string().max(300)).max(16).default([]),
  /** The relay's static key (base64): the agent refuses a relay that does not prove it holds it ('' in netmaps saved before keys). */
  key: z.string().max(64).default(''),
  /**
   * Relays sharing a region are one relay mesh (docs/relay-mesh.md): a node reaches a peer homed on
   * any of them through its own home relay, and moves to another of them when its home dies.
   * Absent: the relay is a region of its own (its name).
   */
  region: z.string().regex(/^[a-z0-9-]{1,64}$/i).optional(),
});
export type RelayInfo = z.infer<typeof RelayInfo>;

export const Netmap = z.object({
  type: z.literal('netmap'),
  seq: z.number().int().nonnegative(),
  self: SelfNode,
  peers: z.array(Peer),
  /** null: no policy set, everything allowed. */
  packetFilter: z.array(FilterRule).nullable(),
  relays: z.array(RelayInfo),
  /** Names in DNS (absent from coordinators and saved netmaps older than the field). */
  dns: DnsConfig.optional(),
  /** Stream messages this coordinator accepts beyond the first round's (SERVER_CAPABILITIES). */
  serverCapabilities: z.array(z.string().max(32)).max(16).optional(),
});
export type Netmap = z.infer<typeof Netmap>;

/**
 * The live fields of a peer that changed, sent instead of its whole record to streams whose hello
 * listed the 'peer-patches' capability. Fields present replace the peer's; absent ones stay.
 */
export const PeerPatch = z.object({
  id: NodeId,
  endpoints: z.array(Endpoint).optional(),
  homeRelay: z.string().nullable().optional(),
  natKind: NatKind.nullable().optional(),
  online: z.boolean().optional(),
  lastSeen: z.string().nullable().optional(),
});
export type PeerPatch = z.infer<typeof PeerPatch>;

/**
 * A change to the netmap: peers added or changed (whole records), peers patched (only with the
 * 'peer-patches' capability), peers removed, filter replaced. Apply upserts, then patches, then
 * removals. seq counts up by one per message on a stream (the netmap is 0).
 */
export const NetmapDelta = z.object({
  type: z.literal('delta'),
  seq: z.number().int().nonnegative(),
  upserts: z.array(Peer),
  patches: z.array(PeerPatch).optional(),
  removals: z.array(NodeId),
  packetFilter: z.array(FilterRule).nullable().optional(),
  self: SelfNode.optional(),
});
export type NetmapDelta = z.infer<typeof NetmapDelta>;

// Stream (WebSocket /api/v1/stream, inside the control channel, whose static key is the node key).
// The client speaks first with hello.
export const StreamHello = z.object({
  type: z.literal('hello'), nodeKey: Key32,
  /** Last seq the agent holds; informational (the server always starts with a full map). */
  lastSeq: z.number().int().nonnegative().optional(),
  /** Optional protocol features the agent understands (STREAM_CAPABILITIES); unknown ones are ignored. */
  capabilities: z.array(z.string().max(32)).max(16).optional(),
}).strict();

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
export const StreamEndpoints = z.object({
  type: z.literal('endpoints'), endpoints: z.array(Endpoint).max(32), homeRelay: z.string().max(64).nullable().optional(),
  /** This node's NAT from its last netcheck (null: unknown); only to coordinators listing 'nat-kind' (the schema is strict). */
  natKind: NatKind.nullable().optional(),
}).strict();
export const StreamPing = z.object({ type: z.literal('ping'), t: z.number() }).strict();

/** What a coordinator lists in its netmap's serverCapabilities. */
export const SERVER_CAPABILITIES = {
  /** The agent may send {type:'paths'} reports (its path table, for the console's live mesh). */
  pathReports: 'path-reports',
  /** The agent may send natKind with its endpoints; peers get it in their netmaps. */
  natKind: 'nat-kind',
} as const;

export const PATH_KINDS = ['direct', 'relay', 'none'] as const;
/** One peer as the reporting agent sees it. */
export const PeerPathReport = z.object({
  /** The peer's node key. */
  peer: Key32,
  path: z.enum(PATH_KINDS),
  /** Relay region name when path is 'relay'. */
  relay: z.string().max(64).nullable(),
  /** The confirmed direct endpoint when path is 'direct'. */
  endpoint: Endpoint.nullable(),
  /** Round-trip time of the path in use (disco pong), when known. */
  latencyMs: z.number().nonnegative().max(600_000).nullable(),
  /** Why the path is not direct, one line (null when direct). */
  whyNotDirect: z.string().max(200).nullable(),
  /** What was tried toward the peer: candidates, disco pings sent, pongs received. */
  tried: z.object({
    candidates: z.number().int().nonnegative().max(1_000_000),
    pingsSent: z.number().int().nonnegative().max(1e12),
    pongsReceived: z.number().int().nonnegative().max(1e12),
  }).strict(),
  /** Seconds since traffic or disco last went to or came from the peer. */
  idleSeconds: z.number().nonnegative().max(1e9),
}).strict();
export type PeerPathReport = z.infer<typeof PeerPathReport>;
export const MAX_PATH_REPORT_PEERS = 4096;
/** The agent's whole path table, sent on change (coalesced, at most PATH_REPORT_MIN_INTERVAL_MS apart). */
export const StreamPaths = z.object({
  type: z.literal('paths'),
  /** This node's NAT type from its netcheck (e.g. "endpoint-independent mapping"), when known. */
  natType: z.string().max(100).nullable(),
  peers: z.array(PeerPathReport).max(MAX_PATH_REPORT_PEERS),
}).strict();
export type StreamPaths = z.infer<typeof StreamPaths>;
export const PATH_REPORT_MIN_INTERVAL_MS = 500;
export const StreamPong = z.object({ type: z.literal('pong'), t: z.number() });
export const StreamError = z.object({ type: z.literal('error'), reason: z.string() });

export const ClientStreamMessage = z.discriminatedUnion('type', [StreamHello, StreamEndpoints, StreamPing, StreamPaths]);
export type ClientStreamMessage = z.infer<typeof ClientStreamMessage>;
export const ServerStreamMessage = z.discriminatedUnion('type', [Netmap, NetmapDelta, StreamPong, StreamError]);
export type ServerStreamMessage = z.infer<typeof ServerStreamMessage>;

// Admin API (Authorization: Bearer TOKEN).
export const AuthKeyCreate = z.object({
  reusable: z.boolean().default(false),
  ephemeral: z.boolean().default(false),
  /** Seconds until the key expires; absent = never. */
  expirySeconds: z.number().int().positive().max(10 * 365 * 86400).optional(),
  tags: z.array(Tag).max(16).default([]),
  /** The owner of the nodes it registers; absent = none. */
  user: UserName.optional(),
}).strict();
export type AuthKeyCreate = z.infer<typeof AuthKeyCreate>;

export const AuthKeyInfo = z.object({
  id: z.number().int(),
  prefix: z.string(),
  reusable: z.boolean(),
  ephemeral: z.boolean(),
  tags: z.array(z.string()),
  /** Owner of the nodes it registers (null: none; absent from coordinators older than the field). */
  user: z.string().nullable().default(null),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  usedCount: z.number().int(),
  revoked: z.boolean(),
});
export type AuthKeyInfo = z.infer<typeof AuthKeyInfo>;

/** Only in the creation reply: the secret is never shown again. */
export const AuthKeyCreated = AuthKeyInfo.extend({ key: z.string() });

export const NodeInfo = Peer.extend({
  /** Owner, from the auth key it registered with (null: none). */
  user: z.string().nullable().default(null),
  createdAt: z.string(),
  keyExpiresAt: z.string().nullable(),
  ephemeral: z.boolean(),
  advertisedRoutes: z.array(CidrText),
  advertisedExitNode: z.boolean(),
  /** The agent's OS and pinhole version from its last registration (null: not reported, an older agent). */
  os: z.string().nullable().default(null),
  version: z.string().nullable().default(null),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const RoutesApprove = z.object({ routes: z.array(CidrText).min(1).max(64) }).strict();

/** POST /api/v1/admin/nodes/:id/rename: the same rules as a hostname at registration. */
export const NodeRename = z.object({ name: Hostname }).strict();
export type NodeRename = z.infer<typeof NodeRename>;

/** One-line reason for a refused request, with the HTTP status. */
export const ErrorReply = z.object({ error: z.string() });

/** First line of a zod error, for one-line refusals ("hostname: a hostname of letters, ..."). */
export function describeZodError(err: z.ZodError): string {
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
  nodes: z.number().int(),
  onlineNodes: z.number().int(),
  streams: z.number().int(),
  /** Netmap fan-out: flushes, deltas and netmaps sent, their bytes, recipients skipped as behind. */
  netmap: z.record(z.string(), z.number()),
  /** Streams accepted, refused at hello, messages dropped as malformed, hellos that never came. */
  stream: z.record(z.string(), z.number()),
  /** Control channels: opened, refused (bad handshake, key mismatch, rate, caps), registrations throttled; h2*: over HTTP/2. */
  control: z.record(z.string(), z.number()).optional(),
  /** Coordinators sharing a PostgreSQL database: this replica's change feed (replica-feed.ts). */
  replica: z.object({
    replica: z.string(), connected: z.boolean(), lastApplied: z.number().int(), applied: z.number().int(), ownSkipped: z.number().int(),
    resyncs: z.number().int(), gaps: z.number().int(), reconnects: z.number().int(), replicasReaped: z.number().int(),
  }).optional(),
});
export type CoordinatorStats = z.infer<typeof CoordinatorStats>;

/** GET/POST /api/v1/admin/coordinator-key[/rotate|/finish]: the coordinator's keys during a rotation. */
const KeyWithFingerprint = z.object({ key: Key32, fingerprint: z.string() });
export const CoordinatorKeyState = z.object({
  current: KeyWithFingerprint,
  next: KeyWithFingerprint.nullable(),
  /** The fingerprint auth keys created now carry. */
  authKeyFingerprint: z.string(),
});
export type CoordinatorKeyState = z.infer<typeof CoordinatorKeyState>;
