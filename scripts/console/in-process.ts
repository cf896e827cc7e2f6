// A coordinator in this process for the console's tests and benchmark: a fresh SQLite database,
// an admin token, one relay in its map, silent logs; plus helpers that add nodes to its registry
// and feed its live mesh the {type:'paths'} reports agents send on their stream.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startCoordinator, type Coordinator } from '../../coordinator/coordinator.js';
import type { NodeRecord } from '../../coordinator/registry.js';
import { StreamPaths, type PeerPathReport } from '../../proto/control/schemas.js';

export const CONSOLE_RELAY = 'lab-relay';

export interface ConsoleCoordinator {
  coordinator: Coordinator;
  /** The console's address: URL + /admin/. */
  consoleUrl: string;
  token: string;
  addNode(hostname: string, opts?: { routes?: string[] }): Promise<NodeRecord>;
  /** Sends a node's path report as its stream would (validated by the stream's schema first). */
  report(from: NodeRecord, peers: Array<Omit<Partial<PeerPathReport>, 'peer'> & { peer: NodeRecord }>, natType?: string | null): boolean;
  close(): Promise<void>;
}

export function newKey(): string {
  return randomBytes(32).toString('base64');
}

export async function startConsoleCoordinator(opts: { host?: string; port?: number } = {}): Promise<ConsoleCoordinator> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-console-'));
  const token = randomBytes(24).toString('base64url');
  const coordinator = await startCoordinator({
    host: opts.host ?? '127.0.0.1', port: opts.port ?? 0,
    store: { target: { kind: 'sqlite', path: join(dir, 'coordinator.db') } },
    adminToken: token,
    relays: [{ name: CONSOLE_RELAY, url: 'ws://198.18.0.9:3340/relay', stun: ['198.18.0.9:3478'], key: newKey() }],
    nodeKeyExpiryMs: null, ephemeralTimeoutMs: 60_000, keepaliveMs: 15_000, flushMs: 50,
    log: pino({ level: 'silent' }),
  });
  const { registry, meshPaths } = coordinator.state;
  return {
    coordinator, token,
    consoleUrl: `${coordinator.url}/admin/`,
    addNode: async (hostname, o = {}) => (await registry.register({
      nodeKey: newKey(), discoKey: newKey(), hostname, advertisedRoutes: o.routes ?? [], advertisedExitNode: false, os: null, version: null, authKey: null,
    })).node,
    report: (from, peers, natType = null) => {
      const msg = StreamPaths.parse({
        type: 'paths', natType,
        peers: peers.map(({ peer, ...p }) => ({
          peer: peer.nodeKey, path: 'direct', relay: null, endpoint: null, latencyMs: null, whyNotDirect: null,
          tried: { candidates: 0, pingsSent: 0, pongsReceived: 0 }, idleSeconds: 1, ...p,
        })),
      });
      return meshPaths.report(from.id, msg);
    },
    close: async () => {
      await coordinator.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
