// Opening the control channel to a coordinator (TCP, or TLS for an https:// URL), and one JSON
// request inside it. Everything secret (auth keys, the admin token, hostnames, netmaps) travels
// only inside a channel whose server key was pinned before the first byte was sent.
import { request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connectMarked, markedHttpRequest } from '../routing/marked-socket.js';
import { connect as tlsConnect } from 'node:tls';
import type * as z from 'zod/mini';
import { keyFingerprint } from '../../proto/control/coordinator-key.js';
import type { NoiseChannel } from '../../proto/control/noise-channel.js';
import {
  ControlProtocolError, ControlRefusedError, CoordinatorKeyMismatchError, upgradeToControlChannel, type ChannelWelcome,
} from '../../proto/control/noise-upgrade.js';
import { ErrorReply, ServerInfo, describeZodError } from '../../proto/control/schemas.js';
import { publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

/** How long connecting plus the handshake may take. */
export const CHANNEL_TIMEOUT_MS = 8_000;
/** GET /api/v1/server answers with public keys and a version: anything longer is not a coordinator. */
const SERVER_INFO_MAX_BYTES = 64 * 1024;
/** How long one request inside a channel may take. */
export const REQUEST_TIMEOUT_MS = 15_000;
/** Replies larger than this are not from a coordinator (a netmap comes on the stream, not here). */
const MAX_REPLY_BYTES = 16 << 20;

export class CoordinatorUnreachableError extends Error {
  override readonly name = 'CoordinatorUnreachableError';
}

/** The coordinator answered with a refusal (status and one-line reason): the protocol's own error. */
export { ControlRefusedError as CoordinatorRefusedError };

/** The coordinator answered 2xx with something that is not what the protocol says. */
export class CoordinatorProtocolError extends Error {
  override readonly name = 'CoordinatorProtocolError';
}

export { CoordinatorKeyMismatchError };

/** Opens a connected TCP socket: plain by default; the agent's marks its sockets (SO_MARK). */
export type Connector = (host: string, port: number, signal: AbortSignal) => Promise<Socket>;

/** The agent's own connections carry its socket mark, so an exit node's routes never take them. */
export function markedConnector(mark: number | undefined): Connector | undefined {
  return mark ? (host, port, signal) => connectMarked(host, port, mark, signal) : undefined;
}

function plainConnect(host: string, port: number, signal: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const conn = netConnect({ host, port });
    const onAbort = (): void => { conn.destroy(); reject(new Error('no answer in time')); };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    conn.once('connect', () => { signal.removeEventListener('abort', onAbort); resolve(conn); });
    conn.once('error', (err) => { signal.removeEventListener('abort', onAbort); reject(err); });
  });
}

export interface ChannelTarget {
  /** Normalised coordinator URL (http:// or https://). */
  url: string;
  /** The pinned coordinator key. */
  serverKey: Uint8Array;
  /** This side's static private key: the node key for an agent, a throwaway key for the admin CLI. */
  staticPrivate: Uint8Array;
  connect?: Connector;
  signal?: AbortSignal;
  /** Told what the coordinator's handshake said (a key rotation's next key). */
  onWelcome?: (welcome: ChannelWelcome) => void;
}

function describeCause(err: unknown): string {
  const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
  return e.code ?? e.cause?.code ?? e.cause?.message ?? e.message;
}

/**
 * Runs `fn` on each URL of a replica list in turn until one is reachable: only an unreachable
 * coordinator moves on to the next (a refusal or a key mismatch is an answer).
 */
export async function onFirstReachable<T>(list: string, fn: (url: string) => Promise<T>): Promise<T> {
  const urls = list.split(',');
  for (let i = 0; ; i++) {
    try {
      return await fn(urls[i]!);
    } catch (err) {
      if (!(err instanceof CoordinatorUnreachableError) || i === urls.length - 1) throw err;
    }
  }
}

/**
 * Opens a channel; the error says in one line whether the network, the key or the server failed.
 * t.url may be a list of replicas: the first reachable one is used.
 */
export function openControlChannel(t: ChannelTarget): Promise<{ channel: NoiseChannel; welcome: ChannelWelcome }> {
  return onFirstReachable(t.url, (url) => openOne({ ...t, url }));
}

async function openOne(t: ChannelTarget): Promise<{ channel: NoiseChannel; welcome: ChannelWelcome }> {
  const u = new URL(t.url);
  const tls = u.protocol === 'https:';
  const port = Number(u.port || (tls ? 443 : 80));
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const timeout = AbortSignal.timeout(CHANNEL_TIMEOUT_MS);
  const signal = t.signal ? AbortSignal.any([t.signal, timeout]) : timeout;
  let conn: Socket;
  try {
    const tcp = await (t.connect ?? plainConnect)(host, port, signal);
    if (!tls) {
      conn = tcp;
    } else {
      conn = tlsConnect({ socket: tcp, host, servername: /^[\d.:]+$/.test(host) ? undefined : host });
      await new Promise<void>((resolve, reject) => {
        const onAbort = (): void => { conn.destroy(); reject(new Error('no answer in time')); };
        signal.addEventListener('abort', onAbort, { once: true });
        conn.once('secureConnect', () => { signal.removeEventListener('abort', onAbort); resolve(); });
        conn.once('error', (err) => { signal.removeEventListener('abort', onAbort); reject(err); });
      });
    }
  } catch (err) {
    throw new CoordinatorUnreachableError(`cannot reach the coordinator at ${t.url}: ${signal.aborted ? 'no answer in time' : describeCause(err)}`);
  }
  conn.setNoDelay(true);
  try {
    const opened = await upgradeToControlChannel(conn, {
      host: u.host, serverKey: t.serverKey, staticPrivate: t.staticPrivate, staticPublic: publicKeyFromPrivate(t.staticPrivate), signal,
    });
    t.onWelcome?.(opened.welcome);
    return opened;
  } catch (err) {
    if (err instanceof CoordinatorKeyMismatchError) {
      throw new CoordinatorKeyMismatchError(`coordinator key mismatch: the server at ${t.url} does not hold the pinned key ${keyFingerprint(t.serverKey)} (${err.message})`);
    }
    if (err instanceof ControlRefusedError) throw err;
    if (err instanceof ControlProtocolError) {
      if (err.message === 'no answer in time') throw new CoordinatorUnreachableError(`cannot reach the coordinator at ${t.url}: no answer in time`);
      throw new CoordinatorProtocolError(`${t.url}: ${err.message}`);
    }
    throw new CoordinatorUnreachableError(`cannot reach the coordinator at ${t.url}: ${describeCause(err)}`);
  }
}

export interface CallOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** One JSON request on an open channel (the channel is closed after the reply). */
export function channelRequest<T>(
  channel: NoiseChannel, method: string, path: string, schema: z.ZodMiniType<T>, body?: unknown, opts: CallOptions = {},
): Promise<T> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise<T>((resolve, reject) => {
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const req = httpRequest({
      method, path, host: 'coordinator', createConnection: () => channel as unknown as Socket, signal,
      headers: {
        ...(opts.headers ?? {}),
        ...(text === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }),
      },
    }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_REPLY_BYTES) {
          req.destroy(new CoordinatorProtocolError(`reply to ${method} ${path} larger than ${MAX_REPLY_BYTES} bytes`));
          return;
        }
        chunks.push(c);
      });
      res.on('error', (err) => reject(err));
      res.on('end', () => {
        channel.end();
        const raw = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = raw ? JSON.parse(raw) : undefined;
        } catch {
          json = undefined;
        }
        const status = res.statusCode ?? 0;
        if (status < 200 || status >= 300) {
          const e = ErrorReply.safeParse(json);
          return reject(new ControlRefusedError(status, e.success ? e.data.error.split('\n')[0]! : `HTTP ${status}`));
        }
        const r = schema.safeParse(json);
        if (!r.success) return reject(new CoordinatorProtocolError(`unexpected reply from ${method} ${path}: ${describeZodError(r.error)}`));
        resolve(r.data);
      });
    });
    req.on('error', (err) => {
      channel.destroy();
      if (err instanceof CoordinatorProtocolError) return reject(err);
      reject(new CoordinatorUnreachableError(signal.aborted ? 'the coordinator: no answer in time' : `the control channel broke: ${describeCause(err)}`));
    });
    req.end(text);
  });
}

/** Opens a channel, makes one request, closes it. */
export async function controlCall<T>(
  t: ChannelTarget, method: string, path: string, schema: z.ZodMiniType<T>, body?: unknown, opts: CallOptions = {},
): Promise<T> {
  const { channel } = await openControlChannel(t);
  return channelRequest(channel, method, path, schema, body, { ...opts, signal: opts.signal ?? t.signal });
}

/**
 * The coordinator's public keys, asked in the clear (they are public): only ever used to find
 * the key whose fingerprint the caller already holds, never trusted by itself.
 */
export function fetchServerKeys(url: string, signal?: AbortSignal, socketMark?: number): Promise<ServerInfo> {
  return onFirstReachable(url, (one) => fetchOne(one, signal, socketMark));
}

async function fetchOne(url: string, signal?: AbortSignal, socketMark?: number): Promise<ServerInfo> {
  const timeout = AbortSignal.timeout(CHANNEL_TIMEOUT_MS);
  const init = { method: 'GET', headers: {}, signal: signal ? AbortSignal.any([signal, timeout]) : timeout };
  let res: { ok: boolean; status: number };
  let text: string;
  try {
    ({ text, ...res } = await markedHttpRequest(`${url}/api/v1/server`, init, socketMark, SERVER_INFO_MAX_BYTES));
  } catch (err) {
    throw new CoordinatorUnreachableError(`cannot reach the coordinator at ${url}: ${timeout.aborted || signal?.aborted ? 'no answer in time' : describeCause(err)}`);
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch { json = undefined; }
  const r = ServerInfo.safeParse(json);
  if (!res.ok || !r.success) throw new CoordinatorProtocolError(`${url} is not a pinhole coordinator (HTTP ${res.status} to GET /api/v1/server)`);
  return r.data;
}

/**
 * The key to pin for a coordinator known only by a fingerprint (from an auth key or
 * --coordinator-key): the one of its published keys with that fingerprint, or a mismatch.
 */
export async function resolvePinnedKey(url: string, fingerprint: string, signal?: AbortSignal, socketMark?: number): Promise<Uint8Array> {
  const info = await fetchServerKeys(url, signal, socketMark);
  const offered = [info.serverKey, ...(info.nextServerKey ? [info.nextServerKey] : [])].map((k) => Buffer.from(k, 'base64'));
  const match = offered.find((k) => keyFingerprint(k) === fingerprint);
  if (!match) {
    throw new CoordinatorKeyMismatchError(
      `coordinator key mismatch: ${url} presents key ${offered.map(keyFingerprint).join(' / ')}, but the key given names ${fingerprint}; nothing was sent`,
    );
  }
  return match;
}
