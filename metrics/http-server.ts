// `--metrics-listen HOST:PORT`: a plain-HTTP listener that answers GET /metrics with a prom-client
// registry in the Prometheus text format, 404 elsewhere. Meant for localhost or a management
// network: what it serves holds no keys or tokens (labels are names and overlay addresses), but it
// tells whoever can reach it the mesh's shape. Shared by agent, coordinator and relay; imports
// nothing of theirs.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export const METRICS_PATH = '/metrics';
/** Scrapers keep one connection each; a handful is plenty, and a crowd cannot pile up sockets. */
export const MAX_METRICS_CONNECTIONS = 16;

export class MetricsListenError extends Error {
  override readonly name = 'MetricsListenError';
}

export interface MetricsListen { host: string; port: number }

/** "IP:PORT", "[IPv6]:PORT" or "localhost:PORT"; port 0 = any free port. */
export function parseMetricsListen(text: string): MetricsListen {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+|localhost)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new MetricsListenError(`--metrics-listen: expected HOST:PORT (e.g. 127.0.0.1:9100), got ${JSON.stringify(text)}`);
  return { host: m[1] ?? m[2]!, port };
}

export interface MetricsServer {
  /** http://HOST:PORT/metrics */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface MetricsServerOptions extends MetricsListen {
  registry: Registry;
  /** Called when rendering fails (a collect() callback threw): the scrape gets a 500. */
  onError?: (err: Error) => void;
}

export async function startMetricsServer(opts: MetricsServerOptions): Promise<MetricsServer> {
  const server: Server = createServer({ headersTimeout: 5_000, requestTimeout: 10_000, keepAliveTimeout: 5_000, maxHeaderSize: 8192 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== METRICS_PATH) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET' }).end(`method ${req.method} not allowed: use GET\n`);
      return;
    }
    opts.registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': opts.registry.contentType, 'cache-control': 'no-store' });
      res.end(text);
    }, (err: Error) => {
      opts.onError?.(err);
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics could not be collected\n');
    });
  });
  server.maxConnections = MAX_METRICS_CONNECTIONS;
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: NodeJS.ErrnoException & { address?: string; port?: number }) => {
    const where = `${opts.host}:${opts.port}`;
    if (err.code === 'EADDRINUSE') throw new MetricsListenError(`--metrics-listen: cannot listen on ${where}: address in use`);
    if (err.code === 'EADDRNOTAVAIL') throw new MetricsListenError(`--metrics-listen: cannot listen on ${where}: no such local address`);
    if (err.code === 'EACCES') throw new MetricsListenError(`--metrics-listen: cannot listen on ${where}: permission denied`);
    throw err;
  });
  const addr = server.address() as AddressInfo;
  const hostText = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${hostText}:${addr.port}${METRICS_PATH}`,
    port: addr.port,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
