// The coordinator's one port (HTTP, or HTTPS with an operator's certificate) and what runs inside
// each control channel.
//   public:  GET  /api/v1/server     → ServerInfo {serverKey, nextServerKey?} (public keys only)
//            POST /api/v1/control    Upgrade: pinhole-control-v1 → a control channel (control-channels.ts)
//            HTTP/2 (prior knowledge, plain port only): control channels as streams (control-h2.ts)
//            /admin/...              the web console (console/console-server.ts)
//   inside a control channel (HTTP/1.1 over Noise):
//            POST /api/v1/register   RegisterRequest → RegisterResponse
//            POST /api/v1/deregister DeregisterRequest → DeregisterResponse (logout)
//            GET  /api/v1/stream     WebSocket (stream.ts)
//            /api/v1/admin/...       admin.ts;  /api/v1/relay/...  relay-authorization.ts
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ServerInfo } from '../proto/control/schemas.js';
import { CONTROL_PATH } from '../proto/control/noise-upgrade.js';
import { AddressCounter } from './address-limits.js';
import type { ControlChannels } from './control-channels.js';
import type { ControlH2 } from './control-h2.js';
import { isConsolePath, type ConsoleServer } from './console/console-server.js';
import { dispatch, requireCaller, type Route } from './http.js';
import type { Logger } from './log.js';
import { deregister, register, type RegistrationDeps } from './registration.js';
import type { ServerKeys } from './server-keys.js';
import { STREAM_PATH, type StreamServer } from './stream.js';

export interface TlsFiles { cert: Buffer; key: Buffer }

/** Timeouts of the public port: a slow client cannot hold a connection open for long. */
export const PUBLIC_TIMEOUTS = { headersMs: 10_000, requestMs: 20_000, keepAliveMs: 5_000 };

export function nodeRoutes(deps: RegistrationDeps): Route[] {
  return [
    {
      method: 'POST',
      path: /^\/api\/v1\/register$/,
      handle: async (req) => ({ body: await register(await req.body(), requireCaller(req), deps) }),
    },
    {
      method: 'POST',
      path: /^\/api\/v1\/deregister$/,
      handle: async (req) => ({ body: await deregister(await req.body(), requireCaller(req), deps) }),
    },
  ];
}

function publicRoutes(keys: ServerKeys): Route[] {
  return [{
    method: 'GET',
    path: /^\/api\/v1\/server$/,
    handle: async () => {
      const body: ServerInfo = { serverKey: keys.current.text, ...(keys.next ? { nextServerKey: keys.next.text } : {}) };
      return { body };
    },
  }];
}

function notFound(socket: Duplex): void {
  socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
}

function badRequest(socket: Duplex): void {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
}

/** The server every control channel is handed to: it never listens on a port itself. */
export function createChannelServer(routes: Route[], streams: StreamServer, log: Logger): Server {
  const inner = createServer((req, res) => { void dispatch(routes, req, res, log); });
  inner.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (path !== STREAM_PATH) return notFound(socket);
    streams.handleUpgrade(req, socket, head);
  });
  inner.on('clientError', (_err, socket) => badRequest(socket));
  return inner;
}

/** Connections that have not yet upgraded to a channel, per source address (slow clients). */
export const MAX_PENDING_PER_ADDRESS = 256;

/** The public port. On a plain port, `h2` takes the connections that open with the HTTP/2 preface (control-h2.ts). */
export function createPublicServer(keys: ServerKeys, channels: ControlChannels, log: Logger, tls: TlsFiles | null, webConsole: ConsoleServer | null = null, h2: ControlH2 | null = null): Server {
  const pending = new AddressCounter(Number.MAX_SAFE_INTEGER, MAX_PENDING_PER_ADDRESS);
  const counted = new WeakMap<object, string>();
  const release = (socket: object): void => {
    const address = counted.get(socket);
    if (address === undefined) return;
    counted.delete(socket);
    pending.release(address);
  };
  const routes = publicRoutes(keys);
  const handler = (req: IncomingMessage, res: import('node:http').ServerResponse): void => {
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (webConsole && isConsolePath(path)) return webConsole.handle(req, res);
    if (path.startsWith('/api/v1/') && path !== '/api/v1/server') {
      res.writeHead(426, { 'content-type': 'application/json', upgrade: 'pinhole-control-v1', connection: 'close' });
      res.end(JSON.stringify({ error: `${path} is served only inside the encrypted control channel (POST ${CONTROL_PATH} with Upgrade); use the pinhole CLI` }));
      return;
    }
    void dispatch(routes, req, res, log);
  };
  const opts = { headersTimeout: PUBLIC_TIMEOUTS.headersMs, requestTimeout: PUBLIC_TIMEOUTS.requestMs, keepAliveTimeout: PUBLIC_TIMEOUTS.keepAliveMs, maxHeaderSize: 8192 };
  const server = tls ? createHttpsServer({ ...opts, cert: tls.cert, key: tls.key }, handler) : createServer(opts, handler);
  // node:http's own connection handler; on the plain port it runs only for connections that are not HTTP/2.
  const http1 = server.listeners('connection') as ((socket: Socket) => void)[];
  if (h2 && !tls) server.removeAllListeners('connection');
  server.on(tls ? 'secureConnection' : 'connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    if (pending.acquire(address) !== 'ok') {
      channels.stats.pendingCap++;
      socket.destroy();
      return;
    }
    counted.set(socket, address);
    socket.once('close', () => release(socket));
    // An HTTP/2 connection stays counted while it lives: at most MAX_PENDING_PER_ADDRESS per address.
    if (h2 && !tls) h2.route(socket, PUBLIC_TIMEOUTS.headersMs, () => { for (const l of http1) l.call(server, socket); });
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex & { remoteAddress?: string }, head: Buffer) => {
    release(socket);
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (path !== CONTROL_PATH) return notFound(socket);
    channels.handleUpgrade(req, socket, head);
  });
  server.on('clientError', (_err, socket) => badRequest(socket));
  return server;
}
