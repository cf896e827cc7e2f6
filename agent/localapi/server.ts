// The agent's local API: HTTP/JSON over a unix socket (mode 0600) that the CLI talks to.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

export type LocalApiRoute = (req: IncomingMessage) => Promise<unknown> | unknown;

export class LocalApiError extends Error {
  override readonly name = 'LocalApiError';
  constructor(readonly status: number, message: string) { super(message); }
}

export interface LocalApiServer {
  readonly path: string;
  close(): Promise<void>;
}

/** True if something already answers on the socket path. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function startLocalApi(path: string, routes: Record<string, LocalApiRoute>): Promise<LocalApiServer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  if (await socketInUse(path)) throw new Error(`another pinhole agent is already listening on ${path}`);
  await unlink(path).catch(() => undefined);
  const server = createServer((req, res) => { void handle(routes, req, res); });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => { server.off('error', reject); resolve(); });
  });
  await chmod(path, 0o600);
  return {
    path,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }).then(() => unlink(path).catch(() => undefined)),
  };
}

async function handle(routes: Record<string, LocalApiRoute>, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const key = `${req.method} ${(req.url ?? '/').split('?')[0]}`;
  const route = routes[key];
  const reply = (status: number, body: unknown): void => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (!route) { reply(404, { error: `no such local API call: ${key}` }); return; }
  try {
    reply(200, await route(req));
  } catch (err) {
    if (err instanceof LocalApiError) reply(err.status, { error: err.message });
    else reply(500, { error: err instanceof Error ? err.message : String(err) });
  }
}
