// The relay: an HTTP listener that upgrades /relay to a WebSocket per client and serves
// GET /healthz, a routing table from node key to client session, forwarding, peer-gone
// bookkeeping, the relay-wide queue budget and per-address connection cap, and the STUN
// responder beside it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { sendFrameToRecvInPlace, encodeRelayFrame, FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, RELAY_PATH, SEND_HEADER_LEN } from '../proto/relay/frames.js';
import { meshKeyFromCredential } from '../proto/relay/mesh-auth.js';
import { MESH_PATH } from '../proto/relay/mesh-frames.js';
import type { StunEndpoint } from '../proto/stun/attributes.js';
import { publicKeyFromPrivate } from '../proto/wireguard/keys.js';
import { dhGenerate } from '../proto/wireguard/noise-crypto.js';
import { allowAllNodes, type AuthorizationResult, type NodeAuthorizer } from './authorizer.js';
import { ClientSession, type QueueBudget, type SessionConfig, type SessionHost } from './client-session.js';
import { createRelayCounters, type RelayCounters } from './counters.js';
import { silentLogger, type Logger } from './log.js';
import { keyHex, sameKey } from './mesh-host.js';
import { RelayMesh } from './relay-mesh.js';
import { startStunResponder, type StunResponder } from './stun-responder.js';

export { RELAY_PATH };

export interface RelayServerOptions {
  /** HTTP/WebSocket listener; port 0 picks one. */
  listen: StunEndpoint;
  /** Serve HTTPS/WSS with an operator's certificate (PEM) instead of HTTP/WS. */
  tls?: { cert: Buffer; key: Buffer };
  /** Zero, one or two STUN addresses (two = RFC 5780). */
  stun?: readonly StunEndpoint[];
  authorizer?: NodeAuthorizer;
  /** The relay's static X25519 private key (clamped); default a fresh one. */
  privateKey?: Uint8Array;
  /** Per-client receive rate in bytes/s (0 = unlimited); default 128 MiB/s (~1 Gbit/s). */
  rateBytesPerSec?: number;
  /** Default 4 MiB. */
  rateBurstBytes?: number;
  /**
   * Per-client data lane: default 1024 frames / 4 MiB (the high-water mark at which senders are
   * paused; twice that is the hard cap); priority lane: 256 frames / 256 KiB.
   */
  queueFrames?: number;
  queueBytes?: number;
  priorityQueueFrames?: number;
  priorityQueueBytes?: number;
  /** The relay sends a keepalive this often; default 30 s. */
  keepaliveMs?: number;
  /** A client that sends nothing for this long is closed; default 75 s. */
  idleTimeoutMs?: number;
  /** Time to present a valid client-info; default 10 s. Also the HTTP header timeout. */
  handshakeTimeoutMs?: number;
  /** A client that takes none of the bytes waiting for it for this long is closed; default 30 s. */
  writeTimeoutMs?: number;
  /** A sender paused by a full destination this long is resumed and the destination drops instead; default 1 s. */
  maxPauseMs?: number;
  /** All clients' queues together (bytes queued + handed to sockets); default 256 MiB. */
  globalQueueBytes?: number;
  /** Open TCP connections per source address; default 64. */
  maxConnsPerIp?: number;
  logger?: Logger;
  /** Join a relay mesh (docs/relay-mesh.md): forward frames for keys connected at peer relays. */
  mesh?: RelayMeshConfig;
}

export interface RelayMeshConfig {
  /** URLs of the other relays of the deployment (this relay's own URL may be among them). */
  peers: readonly string[];
  /** The shared mesh credential (the bytes of --mesh-key-file). */
  credential: Uint8Array;
  /** Is this static key a relay of the deployment? Default: every relay holding the credential is. */
  authorizePeer?: (relayKey: Uint8Array) => Promise<AuthorizationResult>;
  /** Client keys remembered as connected at peers; default 100,000. */
  maxPresence?: number;
}

export interface RelayServer {
  readonly url: string;
  readonly http: { address: string; port: number };
  readonly stun: StunResponder | null;
  readonly publicKey: Uint8Array;
  readonly counters: RelayCounters;
  /** Bytes queued for clients now and the relay-wide cap. */
  queue(): { usedBytes: number; capBytes: number };
  health(): object;
  close(): Promise<void>;
}

const MiB = 1024 * 1024;

export async function startRelayServer(opts: RelayServerOptions): Promise<RelayServer> {
  const logger = opts.logger ?? silentLogger();
  const counters = createRelayCounters();
  const keys = opts.privateKey ? { privateKey: opts.privateKey, publicKey: publicKeyFromPrivate(opts.privateKey) } : dhGenerate();
  const config: SessionConfig = {
    keepaliveMs: opts.keepaliveMs ?? 30_000,
    idleTimeoutMs: opts.idleTimeoutMs ?? 75_000,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 10_000,
    writeTimeoutMs: opts.writeTimeoutMs ?? 30_000,
    rateBytesPerSec: opts.rateBytesPerSec ?? 128 * MiB,
    rateBurstBytes: opts.rateBurstBytes ?? 4 * MiB,
    queue: {
      maxFrames: opts.queueFrames ?? 1024,
      maxBytes: opts.queueBytes ?? 4 * MiB,
      maxPriorityFrames: opts.priorityQueueFrames ?? 256,
      maxPriorityBytes: opts.priorityQueueBytes ?? 256 * 1024,
    },
    maxPauseMs: opts.maxPauseMs ?? 1000,
  };
  const budget: QueueBudget = { capBytes: opts.globalQueueBytes ?? 256 * MiB, usedBytes: 0, peakBytes: 0 };
  const maxConnsPerIp = opts.maxConnsPerIp ?? 64;
  const connsPerIp = new Map<string, number>();
  const sessions = new Set<ClientSession>();
  const routes = new Map<string, ClientSession>();
  const startedAt = Date.now();
  let mesh: RelayMesh | null = null;
  /** Bumped whenever a route may have changed (a client came or went here, presence at a peer): mesh route caches compare it. */
  let routesVersion = 0;

  const host: SessionHost = {
    counters,
    budget,
    logger,
    relayPrivateKey: keys.privateKey,
    relayPublicKey: keys.publicKey,
    config,
    authorizer: opts.authorizer ?? allowAllNodes,

    register(s) {
      routesVersion++;
      const old = routes.get(s.id);
      routes.set(s.id, s);
      counters.clients = routes.size;
      counters.clientsAccepted++;
      logger.info({ node: Buffer.from(s.nodeKey).toString('base64'), remote: s.remote }, 'relay client connected');
      mesh?.announce(s.nodeKey, true);
      if (old && old !== s) {
        // The newest connection of a node key wins; whoever was talking to the old one keeps its route.
        for (const sender of old.senders) {
          sender.sentTo.delete(old);
          sender.sentTo.add(s);
          s.senders.add(sender);
        }
        old.senders.clear();
        counters.replaced++;
        old.close('replaced', 'the same node key connected again');
      }
    },

    unregister(s) {
      sessions.delete(s);
      if (!s.id) return;
      routesVersion++;
      const current = routes.get(s.id);
      if (current === s) routes.delete(s.id);
      counters.clients = routes.size;
      if (!routes.has(s.id)) {
        mesh?.announce(s.nodeKey, false);
        const notice = encodeRelayFrame({ type: 'peer-gone', nodeKey: s.nodeKey, reason: 'disconnected' });
        for (const sender of s.senders) {
          if (sender.enqueue(notice, true)) counters.peerGoneSent++;
        }
      }
      for (const sender of s.senders) {
        sender.sentTo.delete(s);
        if (sender.lastDst === s) sender.lastDst = null;
      }
      for (const dst of s.sentTo) dst.senders.delete(s);
      s.senders.clear();
      s.sentTo.clear();
      s.lastDst = null;
      if (current === s) logger.info({ node: Buffer.from(s.nodeKey).toString('base64') }, 'relay client disconnected');
    },

    forward(from, frame, dst, priority) {
      let to = from.lastDst;
      if (to === null || to.state !== 'open' || !sameKey(from.lastDstKey, dst)) {
        let link = from.meshRoute;
        if (link === null || link.state !== 'open' || from.meshRouteVersion !== routesVersion || !sameKey(from.lastDstKey, dst)) {
          to = routes.get(keyHex(dst)) ?? null;
          // Not here: a peer relay of the mesh may hold it (one hop; what comes from the mesh never goes back).
          link = to === null && mesh !== null ? mesh.route(dst) : null;
          from.lastDst = to;
          from.meshRoute = link;
          from.meshRouteVersion = routesVersion;
          from.lastDstKey.set(dst);
          if (to !== null) {
            from.sentTo.add(to);
            to.senders.add(from);
          }
        } else {
          to = null;
        }
        if (link !== null) {
          if (budget.usedBytes + frame.length > budget.capBytes) {
            counters.drops.globalBudget++;
            return;
          }
          link.forward(from, from.nodeKey, dst, frame.subarray(FRAME_HEADER_LEN + SEND_HEADER_LEN), priority);
          return;
        }
        if (to === null) {
          counters.drops.unknownDestination++;
          from.notifyNotHere(dst);
          return;
        }
      }
      // One budget for everyone: a crowd of receivers that never read cannot grow the relay
      // past it (and each of them is closed at its write timeout, giving its share back).
      if (budget.usedBytes + frame.length > budget.capBytes) {
        counters.drops.globalBudget++;
        return;
      }
      counters.packetsForwarded++;
      const out = sendFrameToRecvInPlace(frame, from.nodeKey);
      if (priority) to.enqueue(out, true, true);
      else to.enqueueData(out, from);
    },
  };

  // Frames are at most 64 KiB + header; a client may pack several into one message.
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * (MAX_FRAME_PAYLOAD + 64), perMessageDeflate: false, clientTracking: false });

  const health = () => ({
    status: 'ok',
    uptimeSec: Math.round((Date.now() - startedAt) / 1000),
    relayKey: Buffer.from(keys.publicKey).toString('base64'),
    stun: stun ? { addresses: stun.addresses, otherAddress: stun.otherAddress } : null,
    counters,
    queue: { usedBytes: budget.usedBytes, peakBytes: budget.peakBytes, capBytes: budget.capBytes },
    connections: { addresses: connsPerIp.size, maxPerAddress: maxConnsPerIp },
    ...(mesh ? { mesh: mesh.status() } : {}),
  });

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/healthz') {
      const body = JSON.stringify(health());
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
    } else if (path === RELAY_PATH) {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' }).end('use a WebSocket\n');
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
  const http: Server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : createServer(handler);
  http.on('upgrade', (req: IncomingMessage, socket, head) => {
    const path = (req.url ?? '/').split('?')[0];
    socket.on('error', () => socket.destroy());
    if (path === MESH_PATH && mesh !== null) {
      const m = mesh;
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => m.accept(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`));
      return;
    }
    if (path !== RELAY_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
      sessions.add(new ClientSession(ws, host, remote));
    });
  });
  http.on('clientError', (_err, socket) => socket.destroy());
  // Counted at the TCP level, so half-open upgrades and slow headers count too.
  http.on('connection', (socket) => {
    const ip = socket.remoteAddress ?? '?';
    const n = connsPerIp.get(ip) ?? 0;
    if (n >= maxConnsPerIp) {
      counters.refused.perAddress++;
      if (counters.refused.perAddress % 1000 === 1) logger.info({ remote: ip, max: maxConnsPerIp }, 'relay connection refused: too many from this address');
      socket.destroy();
      return;
    }
    connsPerIp.set(ip, n + 1);
    socket.once('close', () => {
      const left = (connsPerIp.get(ip) ?? 1) - 1;
      if (left <= 0) connsPerIp.delete(ip);
      else connsPerIp.set(ip, left);
    });
  });
  http.headersTimeout = config.handshakeTimeoutMs;
  http.requestTimeout = config.handshakeTimeoutMs;

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(opts.listen.port, opts.listen.address, () => {
      http.off('error', reject);
      resolve();
    });
  });
  http.on('error', (err) => logger.error({ err: err.message }, 'relay http server error'));

  let stun: StunResponder | null = null;
  try {
    if (opts.stun && opts.stun.length > 0) stun = await startStunResponder({ addresses: opts.stun, counters: counters.stun, logger });
  } catch (err) {
    http.close();
    throw err;
  }

  const tickMs = Math.max(20, Math.min(1000, config.keepaliveMs / 4, config.idleTimeoutMs / 4, config.handshakeTimeoutMs / 4));
  const ticker = setInterval(() => {
    const now = performance.now();
    for (const s of sessions) s.tick(now);
    mesh?.tick(now);
  }, tickMs);

  if (opts.mesh) {
    const m = opts.mesh;
    mesh = new RelayMesh({
      counters, logger, config, budget, relayPrivateKey: keys.privateKey, relayPublicKey: keys.publicKey,
      meshKey: meshKeyFromCredential(m.credential),
      authorizePeer: m.authorizePeer ?? (async () => 'allowed'),
      localKeys: () => [...routes.values()].map((s) => s.nodeKey),
      localSession: (id) => routes.get(id),
      routesChanged: () => { routesVersion++; },
    }, { peers: m.peers, ...(m.maxPresence ? { maxPresence: m.maxPresence } : {}) });
  }

  const addr = http.address() as AddressInfo;
  const httpAddr = { address: addr.address, port: addr.port };
  const hostText = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;

  return {
    url: `${opts.tls ? 'wss' : 'ws'}://${hostText}:${addr.port}${RELAY_PATH}`,
    http: httpAddr,
    stun,
    publicKey: keys.publicKey,
    counters,
    queue: () => ({ usedBytes: budget.usedBytes, capBytes: budget.capBytes }),
    health,
    async close() {
      clearInterval(ticker);
      mesh?.close();
      for (const s of [...sessions]) s.close('shutting-down', 'relay is stopping');
      await new Promise<void>((r) => {
        http.close(() => r());
        http.closeAllConnections();
      });
      await stun?.close();
    },
  };
}
