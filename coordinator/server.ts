// HTTP routing: the node-facing API (server info, registration), the admin API, and the upgrade
// to the netmap stream.
//   GET  /api/v1/server     → ServerInfo {serverKey, challenge, challengeExpiresAt}
//   POST /api/v1/register   RegisterRequest → RegisterResponse
//   POST /api/v1/deregister DeregisterRequest → DeregisterResponse (logout)
//   GET  /api/v1/stream     WebSocket (stream.ts)
//   /api/v1/admin/...       admin.ts
import { createServer, type Server } from 'node:http';
import type { ServerInfo } from '../proto/control/schemas.js';
import type { Challenges } from './challenges.js';
import { dispatch, type Route } from './http.js';
import type { Logger } from './log.js';
import { deregister, register, type RegistrationDeps } from './registration.js';
import { STREAM_PATH, type StreamServer } from './stream.js';

/** Large enough for a policy with a thousand rules; everything else is far smaller. */
const BODY_LIMIT = 1024 * 1024;

export interface HttpServerDeps {
  serverKey: string;
  challenges: Challenges;
  registration: RegistrationDeps;
  adminRoutes: Route[];
  streams: StreamServer;
  log: Logger;
}

export function nodeRoutes(deps: HttpServerDeps): Route[] {
  return [
    {
      method: 'GET',
      path: /^\/api\/v1\/server$/,
      handle: async () => {
        const { challenge, expiresAt } = deps.challenges.issue();
        const body: ServerInfo = { serverKey: deps.serverKey, challenge, challengeExpiresAt: new Date(expiresAt).toISOString() };
        return { body };
      },
    },
    {
      method: 'POST',
      path: /^\/api\/v1\/register$/,
      handle: async (req) => ({ body: await register(await req.body(), deps.registration) }),
    },
    {
      method: 'POST',
      path: /^\/api\/v1\/deregister$/,
      handle: async (req) => ({ body: await deregister(await req.body(), deps.registration) }),
    },
  ];
}

export function createHttpServer(deps: HttpServerDeps): Server {
  const routes = [...nodeRoutes(deps), ...deps.adminRoutes];
  const server = createServer((req, res) => {
    void dispatch(routes, req, res, BODY_LIMIT, deps.log);
  });
  server.on('upgrade', (req, socket, head) => {
    const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
    if (path !== STREAM_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    deps.streams.handleUpgrade(req, socket, head);
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
  });
  return server;
}
