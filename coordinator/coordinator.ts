// Assembles a coordinator: store → in-memory state (auth keys, registry, policy, netmaps) →
// HTTP + WebSocket server. main.ts is the command line around it; tests and benchmarks start it
// as a process through main.ts too.
import type { AddressInfo } from 'node:net';
import type { RelayInfo } from '../proto/control/schemas.js';
import { AccessPolicy } from './access-policy.js';
import { AddressRateLimiter } from './address-limits.js';
import { adminGuard, adminOperations, adminRoutes, hashAdminToken, newAdminRefusals, type AdminDeps } from './admin.js';
import { adminPathsRoutes } from './admin-paths.js';
import { createConsole } from './console/console-server.js';
import { startMetricsServer, type MetricsListen, type MetricsServer } from '../metrics/http-server.js';
import { createCoordinatorMetrics, type CoordinatorMetrics } from './metrics.js';
import { AuthKeys } from './authkeys.js';
import { ControlChannels, DEFAULT_CONTROL_LIMITS, type ControlLimits } from './control-channels.js';
import type { Logger } from './log.js';
import { NetmapHub } from './netmap.js';
import { MeshPaths } from './mesh-paths.js';
import { NodeRegistry } from './registry.js';
import { ReplicaFeed } from './replica-feed.js';
import { relayAuthorizationRoutes } from './relay-authorization.js';
import { ControlH2 } from './control-h2.js';
import { PUBLIC_TIMEOUTS, createChannelServer, createPublicServer, nodeRoutes, type TlsFiles } from './server.js';
import { ServerKeys } from './server-keys.js';
import { openStore, type StoreOptions } from './store/open.js';
import { StreamServer } from './stream.js';
import { newRegistrationOutcomes } from './registration.js';
import { DEFAULT_DNS_DOMAIN, type DnsConfig } from '../proto/dns/dns-config.js';

export interface CoordinatorOptions {
  host: string;
  port: number;
  /** The database: a SQLite file or PostgreSQL (store/open.ts). */
  store: StoreOptions;
  /** null: the admin API answers 403. */
  adminToken: string | null;
  /** The relay map nodes get (relay-map.ts builds it from the flags). */
  relays: RelayInfo[];
  /** DNS domain and split routes sent with the netmap (default: pinhole.internal, no routes). */
  dns?: DnsConfig;
  /** null: node keys never expire. */
  nodeKeyExpiryMs: number | null;
  ephemeralTimeoutMs: number;
  keepaliveMs: number;
  flushMs: number;
  /** How often endpoints and last-seen times are written (they are not acknowledged to anyone). */
  livenessFlushMs?: number;
  /** Limits on unauthenticated callers (defaults: DEFAULT_CONTROL_LIMITS). */
  limits?: Partial<ControlLimits>;
  /** Registrations per second per source address (burst: 10 s worth). */
  registerPerSecond?: number;
  /** Serve HTTPS with the operator's certificate instead of HTTP. */
  tls?: TlsFiles | null;
  /** Serve Prometheus metrics here (plain HTTP, GET /metrics). */
  metricsListen?: MetricsListen | null;
  /** Where the web console's built files are (default: next to the compiled console module). */
  consoleAssetsDir?: string;
  log: Logger;
}

export interface Coordinator {
  url: string;
  /** The fingerprint of the current coordinator key (what auth keys carry). */
  fingerprint: string;
  host: string;
  port: number;
  /** http://HOST:PORT/metrics, or null without metricsListen. */
  metricsUrl: string | null;
  /** The in-memory state, for in-process tests and benchmarks (feed the live mesh, add nodes). */
  state: { registry: NodeRegistry; meshPaths: MeshPaths };
  close(): Promise<void>;
}

const EXPIRY_SWEEP_MS = 1000;
/** Endpoints reach peers on other replicas through the database: flushed often enough for the 1 s fan-out bar. */
const LIVENESS_FLUSH_REPLICA_MS = 250;

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const { log } = opts;
  const store = await openStore({ onIdleError: (err) => log.warn({ err: err.message }, 'an idle database connection failed'), ...opts.store });
  const snap = await store.load();
  const { keys, generated } = await ServerKeys.open(store, snap.serverPrivateKey, snap.nextServerPrivateKey);
  if (generated) log.info('generated the coordinator key');

  const authKeys = new AuthKeys(store, snap.authKeys, snap.lastAuthKeyId, () => keys.authKeyFingerprint());
  const registry = new NodeRegistry(store, snap.nodes, snap.lastNodeId, {
    nodeKeyExpiryMs: opts.nodeKeyExpiryMs, ephemeralTimeoutMs: opts.ephemeralTimeoutMs, log,
    ...(snap.onlineElsewhere ? { onlineElsewhere: snap.onlineElsewhere } : {}),
  });
  let streams: StreamServer;
  let channels: ControlChannels;
  const adminRefusals = newAdminRefusals();
  const metrics: CoordinatorMetrics | null = opts.metricsListen ? createCoordinatorMetrics({
    registry: () => registry, streams: () => streams, netmap: (): NetmapHub => netmap, channels: () => channels, controlH2: () => h2,
    registration: () => registration, adminRefusals: () => adminRefusals, meshPaths: () => meshPaths,
  }) : null;
  const netmap: NetmapHub = new NetmapHub(registry, {
    flushMs: opts.flushMs, relays: opts.relays, dns: opts.dns ?? { domain: DEFAULT_DNS_DOMAIN, routes: [] }, log,
    ...(metrics ? { onFanOut: (ms: number, n: number) => metrics.observeFanOut(ms, n) } : {}),
  });
  const policy = new AccessPolicy(store, registry, netmap, snap.policy, Date.now, (message) => log.warn(message));
  const relayKeys = new Set(opts.relays.flatMap((r) => (r.key ? [r.key] : [])));
  const isRelayKey = (key: string): boolean => relayKeys.has(key);
  const meshPaths = new MeshPaths(registry);
  // PostgreSQL: other coordinators may share the database; follow what they commit.
  const feed = store.feed ? new ReplicaFeed(store.feed, {
    registry, authKeys, policy,
    // A rotation started or finished on another replica: answer with the same keys, and reopen
    // the channels it concerns, as that replica did with its own.
    onServerKeys: (current, next) => {
      const reopen = keys.adopt(current, next);
      if (reopen === null) return;
      log.info({ next: keys.next?.fingerprint ?? null, current: keys.current.fingerprint }, 'coordinator keys changed on another replica');
      setTimeout(() => channels.closeChannelsOn(reopen), 200).unref();
    },
  }, snap.lastChangeId ?? 0, log) : null;
  streams = new StreamServer({ registry, netmap, meshPaths, keepaliveMs: opts.keepaliveMs, log });
  const tokenHash = opts.adminToken === null ? null : hashAdminToken(opts.adminToken);
  const registerPerSecond = opts.registerPerSecond ?? 5;
  const registration = {
    registry, authKeys,
    registerRate: new AddressRateLimiter({ perSecond: registerPerSecond, burst: registerPerSecond * 10 }),
    refusals: { registerRate: 0, wrongNodeKey: 0 },
    outcomes: newRegistrationOutcomes(),
  };
  const adminDeps: AdminDeps = {
    tokenHash, authKeys, registry, policy, isRelayKey, keys, refusals: adminRefusals,
    closeChannelsOn: (key) => channels.closeChannelsOn(key),
    stats: () => ({
      nodes: registry.size,
      onlineNodes: [...registry.all()].filter((n) => n.online).length,
      streams: streams.streamCount,
      netmap: { ...netmap.stats },
      stream: { ...streams.stats },
      control: {
        ...channels.stats, ...registration.refusals, unauthenticated: channels.unauthenticatedCount,
        ...(h2 ? { h2Connections: h2.stats.connections, h2NotControl: h2.stats.notControl, h2StreamErrors: h2.stats.streamErrors, h2SessionErrors: h2.stats.sessionErrors } : {}),
      },
      ...(feed ? { replica: { ...feed.stats } } : {}),
    }),
  };
  const inner = createChannelServer([
    ...nodeRoutes(registration),
    ...relayAuthorizationRoutes({ isRelayKey, relayNameOf: (key) => opts.relays.find((r) => r.key === key)?.name, registry }),
    ...adminRoutes(adminDeps),
    ...adminPathsRoutes({ guard: adminGuard({ tokenHash, isRelayKey, refusals: adminRefusals }), meshPaths, registry }),
  ], streams, log);
  channels = new ControlChannels({
    keys, inner, log,
    limits: { ...DEFAULT_CONTROL_LIMITS, ...opts.limits },
    isKnownKey: (key) => isRelayKey(key) || registry.getByKey(key) !== undefined,
  });
  const webConsole = createConsole({
    tokenHash, secure: Boolean(opts.tls), operations: adminOperations(adminDeps), registry, meshPaths, relays: opts.relays, log,
    ...(opts.consoleAssetsDir ? { assetsDir: opts.consoleAssetsDir } : {}),
  });
  const h2 = opts.tls ? null : new ControlH2(channels, PUBLIC_TIMEOUTS.keepAliveMs, log);
  const server = createPublicServer(keys, channels, log, opts.tls ?? null, webConsole, h2);

  const sweep = setInterval(() => registry.sweepExpiry(), EXPIRY_SWEEP_MS);
  const liveness = setInterval(() => {
    registry.flushLiveness().catch((err: Error) => log.error({ err: err.message }, 'saving endpoints failed'));
  }, opts.livenessFlushMs ?? (feed ? LIVENESS_FLUSH_REPLICA_MS : 2000));
  sweep.unref();
  liveness.unref();

  try {
    await feed?.start();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await stopEverything();
    throw err;
  }
  let metricsServer: MetricsServer | null = null;
  if (metrics && opts.metricsListen) {
    try {
      metricsServer = await startMetricsServer({ ...opts.metricsListen, registry: metrics.registry, onError: (err) => log.error({ err: err.message }, 'metrics collection failed') });
    } catch (err) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await stopEverything();
      throw err;
    }
  }
  async function stopEverything(): Promise<void> {
    clearInterval(sweep);
    clearInterval(liveness);
    await feed?.close();
    webConsole.close();
    streams.close();
    netmap.close();
    registry.close();
    await store.close();
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const database = opts.store.target.kind === 'sqlite' ? opts.store.target.path : opts.store.target.postgres.display; // never a password
  log.info({ database, nodes: registry.size, authKeys: snap.authKeys.length, policy: snap.policy.json !== null }, 'coordinator started');

  let closing: Promise<void> | null = null;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${host}:${addr.port}`,
    fingerprint: keys.current.fingerprint,
    host: addr.address,
    port: addr.port,
    metricsUrl: metricsServer?.url ?? null,
    state: { registry, meshPaths },
    close: () => {
      closing ??= (async () => {
        clearInterval(sweep);
        clearInterval(liveness);
        webConsole.close();
        streams.close();
        netmap.close();
        await metricsServer?.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
          h2?.close();
        });
        await feed?.close();
        await registry.flushLiveness().catch(() => undefined);
        await store.feed?.leave().catch(() => undefined);
        registry.close();
        await store.close();
      })();
      return closing;
    },
  };
}
