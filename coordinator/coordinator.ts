// Assembles a coordinator: store → in-memory state (auth keys, registry, policy, netmaps) →
// HTTP + WebSocket server. main.ts is the command line around it; tests and benchmarks start it
// as a process through main.ts too.
import type { AddressInfo } from 'node:net';
import type { RelayInfo } from '../proto/control/schemas.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../proto/wireguard/keys.js';
import { AccessPolicy } from './access-policy.js';
import { adminRoutes, hashAdminToken } from './admin.js';
import { AuthKeys } from './authkeys.js';
import { Challenges } from './challenges.js';
import type { Logger } from './log.js';
import { NetmapHub } from './netmap.js';
import { NodeRegistry } from './registry.js';
import { relayAuthorizationRoutes } from './relay-authorization.js';
import { createHttpServer } from './server.js';
import { SqliteStore } from './store/sqlite.js';
import { StreamServer } from './stream.js';

export interface CoordinatorOptions {
  host: string;
  port: number;
  dbPath: string;
  /** null: the admin API answers 403. */
  adminToken: string | null;
  /** The relay map nodes get (relay-map.ts builds it from the flags). */
  relays: RelayInfo[];
  /** null: node keys never expire. */
  nodeKeyExpiryMs: number | null;
  ephemeralTimeoutMs: number;
  keepaliveMs: number;
  flushMs: number;
  challengeTtlMs: number;
  /** How often endpoints and last-seen times are written (they are not acknowledged to anyone). */
  livenessFlushMs?: number;
  log: Logger;
}

export interface Coordinator {
  url: string;
  host: string;
  port: number;
  close(): Promise<void>;
}

const EXPIRY_SWEEP_MS = 1000;

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  const { log } = opts;
  const store = await SqliteStore.open(opts.dbPath);
  const snap = await store.load();
  let serverPrivateKey: Uint8Array;
  if (snap.serverPrivateKey) {
    serverPrivateKey = decodeKey(snap.serverPrivateKey);
  } else {
    serverPrivateKey = generatePrivateKey();
    await store.saveServerKey(encodeKey(serverPrivateKey));
    log.info('generated the coordinator key');
  }
  const serverKey = encodeKey(publicKeyFromPrivate(serverPrivateKey));

  const authKeys = new AuthKeys(store, snap.authKeys, snap.lastAuthKeyId);
  const registry = new NodeRegistry(store, snap.nodes, snap.lastNodeId, {
    nodeKeyExpiryMs: opts.nodeKeyExpiryMs, ephemeralTimeoutMs: opts.ephemeralTimeoutMs, log,
  });
  const netmap = new NetmapHub(registry, { flushMs: opts.flushMs, relays: opts.relays, log });
  const policy = new AccessPolicy(store, registry, netmap, snap.policy, Date.now, (message) => log.warn(message));
  const challenges = new Challenges(opts.challengeTtlMs);
  const streams = new StreamServer({ registry, netmap, serverPrivateKey, serverKey, keepaliveMs: opts.keepaliveMs, log });
  const tokenHash = opts.adminToken === null ? null : hashAdminToken(opts.adminToken);
  const server = createHttpServer({
    serverKey, challenges, streams, log,
    registration: { registry, authKeys, challenges, serverPrivateKey },
    adminRoutes: [...relayAuthorizationRoutes({ tokenHash, registry }), ...adminRoutes({
      tokenHash, authKeys, registry, policy,
      stats: () => ({
        nodes: registry.size,
        onlineNodes: [...registry.all()].filter((n) => n.online).length,
        streams: streams.streamCount,
        netmap: { ...netmap.stats },
        stream: { ...streams.stats },
      }),
    })],
  });

  const sweep = setInterval(() => registry.sweepExpiry(), EXPIRY_SWEEP_MS);
  const liveness = setInterval(() => {
    registry.flushLiveness().catch((err: Error) => log.error({ err: err.message }, 'saving endpoints failed'));
  }, opts.livenessFlushMs ?? 2000);
  sweep.unref();
  liveness.unref();

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    clearInterval(sweep);
    clearInterval(liveness);
    streams.close();
    netmap.close();
    registry.close();
    await store.close();
    throw err;
  }
  const addr = server.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  log.info({ nodes: registry.size, authKeys: snap.authKeys.length, policy: snap.policy.json !== null }, 'coordinator started');

  let closing: Promise<void> | null = null;
  return {
    url: `http://${host}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    close: () => {
      closing ??= (async () => {
        clearInterval(sweep);
        clearInterval(liveness);
        streams.close();
        netmap.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await registry.flushLiveness().catch(() => undefined);
        registry.close();
        await store.close();
      })();
      return closing;
    },
  };
}
