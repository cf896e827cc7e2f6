// TCP connections that carry the agent's socket mark from their first packet (socket-mark.ts):
// the socket is created and marked in the addon (sockmark.c) and only then handed to Node to
// connect, because net.Socket cannot set SO_MARK and the SYN leaves inside connect().
//   openMarkedSocket: an IP literal, synchronously (a connecting net.Socket);
//   connectMarked:    a host name or IP, resolved, resolved again once connected;
//   markedWsOptions:  `ws` options whose connections are marked (relay client, control stream).
import { closeSync } from 'node:fs';
import { lookup } from 'node:dns/promises';
import { isIP, Socket, type createConnection } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { loadNative } from '../tun/native.js';

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
    const onAbort = (): void => done(signal!.reason instanceof Error ? signal!.reason : new MarkedConnectError('aborted'));
    socket.once('connect', onConnect).once('error', done);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type OnCreate = (err: Error | null, socket?: Socket) => void;

/**
 * Options for `new WebSocket(url, {...})` whose connection is marked; wss:// is wrapped in TLS as
 * ws would. Node's http client accepts createConnection(options, oncreate) answering later, which
 * leaves time to resolve the host name before the marked socket is made.
 */
export function markedWsOptions(url: string, mark: number): { createConnection: typeof createConnection } {
  const secure = /^(wss|https):/i.test(url);
  const create = (options: ConnectionOptions & { host?: string; port?: number | string }, oncreate: OnCreate): undefined => {
    const host = options.host ?? 'localhost';
    resolveHost(host).then((address) => {
      const raw = openMarkedSocket(address, Number(options.port), mark);
      return secure ? tlsConnect({ ...options, socket: raw, servername: isIP(host) ? undefined : host }) : raw;
    }).then((s) => oncreate(null, s), (err: Error) => oncreate(err));
    return undefined;
  };
  // ws types createConnection as net.createConnection; the http client also takes the callback form.
  return { createConnection: create as unknown as typeof createConnection };
}
