// Test side of the control channel: raw API calls inside a Noise channel (any status comes back,
// nothing throws on a refusal), with whatever static key a test wants to present.
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { NoiseChannel } from '../../proto/control/noise-channel.js';
import { upgradeToControlChannel, type ChannelWelcome } from '../../proto/control/noise-upgrade.js';
import { ServerInfo } from '../../proto/control/schemas.js';
import { decodeKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

export interface ApiResult<T = any> {
  status: number;
  body: T;
}

/** The coordinator's current key, asked in the clear (tests know which coordinator they started). */
export async function serverKeyOf(url: string): Promise<Uint8Array> {
  const info = ServerInfo.parse(await (await fetch(`${url}/api/v1/server`)).json());
  return decodeKey(info.serverKey);
}

export async function openChannel(url: string, staticPrivate: Uint8Array, serverKey?: Uint8Array, localAddress?: string): Promise<{ channel: NoiseChannel; welcome: ChannelWelcome }> {
  const key = serverKey ?? await serverKeyOf(url);
  const u = new URL(url);
  // https: the channel runs inside TLS (the certificate checked as Node.js checks it: NODE_EXTRA_CA_CERTS).
  const tls = u.protocol === 'https:';
  const port = Number(u.port) || (tls ? 443 : 80);
  const sock: Socket = await new Promise((resolve, reject) => {
    const s = tls
      ? connectTls({ host: u.hostname, port, ...(localAddress ? { localAddress } : {}) })
      : connect({ host: u.hostname, port, ...(localAddress ? { localAddress } : {}) });
    s.once(tls ? 'secureConnect' : 'connect', () => resolve(s));
    s.once('error', reject);
  });
  return upgradeToControlChannel(sock, { host: u.host, serverKey: key, staticPrivate, staticPublic: publicKeyFromPrivate(staticPrivate), signal: AbortSignal.timeout(10_000) });
}

/** One request on an open channel; the channel is closed after the reply. */
export function requestOn(channel: NoiseChannel, method: string, path: string, opts: { body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}): Promise<ApiResult> {
  const text = opts.rawBody ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  return new Promise((resolve, reject) => {
    const req = request({
      method, path, host: 'coordinator', createConnection: () => channel as never,
      headers: { ...(opts.headers ?? {}), ...(text === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        channel.end();
        const raw = Buffer.concat(chunks).toString('utf8');
        let body: unknown = null;
        try { body = raw ? JSON.parse(raw) : null; } catch { body = raw; }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** Opens a channel with `staticPrivate`, makes one request. */
export async function channelCall(
  url: string, staticPrivate: Uint8Array, method: string, path: string,
  opts: { body?: unknown; rawBody?: string; headers?: Record<string, string>; localAddress?: string } = {},
): Promise<ApiResult> {
  const { channel } = await openChannel(url, staticPrivate, undefined, opts.localAddress);
  return requestOn(channel, method, path, opts);
}
