// TCP connections that carry the agent's socket mark from their first packet (socket-mark.ts):
// the socket is created and marked in the addon (sockmark.c) and only then handed to Node to
// connect, because net.Socket cannot set SO_MARK and the SYN leaves inside connect().
//   openMarkedSocket: an IP literal, synchronously (a connecting net.Socket);
//   connectMarked:    a host name or IP, resolved, resolved again once connected;
//   markedWsOptions:  `ws` options whose connections are marked (relay client, control stream);
//   markedHttpRequest: one HTTP(S) request over a marked connection (registration, logout), or
//                      over a plain one without a mark (node:http, not fetch: fetch loads undici,
//                      ~18 MB more RSS for the agent's whole life).
import { closeSync } from 'node:fs';
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { lookup } from 'node:dns/promises';
import { isIP, Socket, type createConnection } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { loadNative } from '../tun/native.js';
import { abortError } from '../no-answer.js';

export class MarkedConnectError extends Error {
  override readonly name = 'MarkedConnectError';
}

/** A TCP connection to address:port (an IP literal) whose packets carry `mark`; still connecting. */
export function openMarkedSocket(address: string, port: number, mark: number): Socket {
  const family = isIP(address);
  if (family === 0) throw new MarkedConnectError(`openMarkedSocket needs an IP address, not "${address}"`);
  const fd = loadNative().markedTcpSocket(family === 4 ? 4 : 6, mark);
  let socket: Socket;
  try {
    socket = new Socket({ fd });
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  // An IP literal connects within this tick: nothing is read from the unconnected fd first.
  return socket.connect({ host: address, port });
}

async function resolveHost(host: string): Promise<string> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare)) return bare;
  return (await lookup(bare)).address;
}

/** Connects to host:port (a name is resolved first) with the mark; resolves once connected. */
export async function connectMarked(host: string, port: number, mark: number, signal?: AbortSignal): Promise<Socket> {
  signal?.throwIfAborted();
  const socket = openMarkedSocket(await resolveHost(host), port, mark);
  return new Promise<Socket>((resolve, reject) => {
    const done = (err?: Error): void => {
      socket.off('connect', onConnect).off('error', done);
      signal?.removeEventListener('abort', onAbort);
      if (!err) return resolve(socket);
      socket.destroy();
      reject(err);
    };
    const onConnect = (): void => done();
    const onAbort = (): void => done(abortError(signal!, () => new MarkedConnectError('aborted')));
    socket.once('connect', onConnect).once('error', done);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type OnCreate = (err: Error | null, socket?: Socket) => void;

/**
 * Options for `new WebSocket(url, {...})` (or node:http's request) whose connection is marked;
 * wss:// and https:// are wrapped in TLS as ws would. Node's http client accepts
 * createConnection(options, oncreate) answering later, which leaves time to resolve the host name
 * before the marked socket is made.
 */
export function markedWsOptions(url: string, mark: number): { createConnection: typeof createConnection } {
  // ws types createConnection as net.createConnection; the http client also takes the callback form.
  return { createConnection: markedCreateConnection(url, mark) as unknown as typeof createConnection };
}

function markedCreateConnection(url: string, mark: number) {
  const secure = /^(wss|https):/i.test(url);
  return (options: ConnectionOptions & { host?: string | null; port?: number | string | null }, oncreate: OnCreate): undefined => {
    const host = options.host ?? 'localhost';
    resolveHost(host).then((address) => {
      const raw = openMarkedSocket(address, Number(options.port), mark);
      return secure ? tlsConnect({ ...options, host, socket: raw, servername: isIP(host) ? undefined : host }) : raw;
    }).then((s) => oncreate(null, s), (err: Error) => oncreate(err));
    return undefined;
  };
}

export interface MarkedHttpReply {
  ok: boolean;
  status: number;
  statusText: string;
  text: string;
}

/**
 * One request (the reply body read as UTF-8 text, at most maxBytes) over a marked connection, or
 * an unmarked one when `mark` is undefined or 0.
 */
export function markedHttpRequest(
  url: string, init: { method: string; headers: Record<string, string>; body?: string; signal?: AbortSignal },
  mark: number | undefined, maxBytes = 8 << 20,
): Promise<MarkedHttpReply> {
  const request = /^https:/i.test(url) ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const options: RequestOptions = { method: init.method, headers: init.headers, signal: init.signal };
    if (mark) options.createConnection = markedCreateConnection(url, mark) as unknown as RequestOptions['createConnection'];
    const req = request(url, options, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > maxBytes) req.destroy(new MarkedConnectError(`reply larger than ${maxBytes} bytes`));
        else chunks.push(c);
      });
      res.on('end', () => {
        const status = res.statusCode ?? 0;
        resolve({ ok: status >= 200 && status < 300, status, statusText: res.statusMessage ?? '', text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(init.body);
  });
}
