// Control channels over HTTP/2 on the coordinator's plain-HTTP port, several to a connection. A
// client that holds many nodes' channels at once (a load generator such as bench-coordinator, a
// host running many nodes) opens them as streams of one connection instead of one TCP
// connection each. pinhole's agents use HTTP/1.1, one connection each (proto/control/noise-upgrade.ts).
//   the client preface (HTTP/2 with prior knowledge, RFC 9113 §3.3), then for each channel:
//   :method POST  :path /api/v1/control  pinhole-handshake: base64(msg1)
//   → :status 200, then frame(msg2) | frames …   the stream carries the channel both ways
//   → :status 4xx/429 + {"error": "one line"}     a refusal, as on HTTP/1.1
// Anything else asked over HTTP/2 gets 404 with a reason. A channel on a stream is the same Noise
// channel under the same per-address limits (control-channels.ts); a connection carries at most
// MAX_CHANNELS_PER_CONNECTION at once and is closed once it has carried none for idleMs. A TLS
// port does not offer HTTP/2.
import { createServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { CONTROL_PATH } from '../proto/control/noise-upgrade.js';
import type { ControlChannels } from './control-channels.js';
import type { Logger } from './log.js';

/** What an HTTP/2 client sends first (RFC 9113 §3.4); no HTTP/1.1 request starts this way. */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** Channels one HTTP/2 connection may hold open at once (its SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_CHANNELS_PER_CONNECTION = 1024;
/** Buffers one HTTP/2 connection may hold (node:http2's maxSessionMemory, MB). */
const MAX_SESSION_MEMORY_MB = 32;

export class ControlH2 {
  readonly stats = { connections: 0, notControl: 0, streamErrors: 0, sessionErrors: 0 };
  private readonly server: Http2Server;
  private readonly sessions = new Set<ServerHttp2Session>();
  /** Connections whose first bytes have not yet said which protocol they speak. */
  private readonly undecided = new Set<Socket>();

  constructor(channels: ControlChannels, private readonly idleMs: number, private readonly log: Logger) {
    this.server = createServer({
      settings: { maxConcurrentStreams: MAX_CHANNELS_PER_CONNECTION, maxHeaderListSize: 16 * 1024 },
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
    });
    this.server.on('session', (session) => this.track(session));
    this.server.on('sessionError', (err: Error) => {
      this.stats.sessionErrors++;
      this.log.debug({ err: err.message }, 'HTTP/2 control connection failed');
    });
    this.server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
      stream.on('error', () => { this.stats.streamErrors++; });
      const address = stream.session?.socket?.remoteAddress ?? 'unknown';
      const path = new URL(headers[':path'] ?? '/', 'http://coordinator').pathname;
      if (headers[':method'] !== 'POST' || path !== CONTROL_PATH) {
        this.stats.notControl++;
        stream.respond({ ':status': 404, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ error: `only control channels (POST ${CONTROL_PATH}) are served over HTTP/2` }));
        return;
      }
      channels.handleStream(stream, headers, address);
    });
  }

  /**
   * A new connection on the plain port: HTTP/2 when it opens with the client preface, else handed
   * to `http1` (node:http's own connection handler), with what was read put back.
   */
  route(socket: Socket, timeoutMs: number, http1: () => void): void {
    this.undecided.add(socket);
    routeByPreface(socket, timeoutMs, () => {
      this.undecided.delete(socket);
      http1();
    }, () => {
      this.undecided.delete(socket);
      this.stats.connections++;
      this.server.emit('connection', socket);
    });
    socket.once('close', () => this.undecided.delete(socket));
  }

  /** Closes every HTTP/2 connection, and those not yet routed (the coordinator is stopping). */
  close(): void {
    for (const s of this.sessions) s.destroy();
    this.sessions.clear();
    for (const s of this.undecided) s.destroy();
    this.undecided.clear();
  }

  private track(session: ServerHttp2Session): void {
    this.sessions.add(session);
    let active = 0;
    let idle: NodeJS.Timeout | null = null;
    const arm = (): void => {
      idle = setTimeout(() => session.close(), this.idleMs);
      idle.unref();
    };
    session.on('stream', (stream: ServerHttp2Stream) => {
      active++;
      if (idle) clearTimeout(idle);
      idle = null;
      stream.once('close', () => {
        if (--active === 0 && !session.closed) arm();
      });
    });
    session.once('close', () => {
      if (idle) clearTimeout(idle);
      this.sessions.delete(session);
    });
    arm();
  }
}

/** What the first bytes of a connection say: HTTP/2's client preface, not it, or too few bytes to tell. */
export function prefaceVerdict(start: Uint8Array): 'http2' | 'http1' | 'more' {
  const n = Math.min(start.length, H2_PREFACE.length);
  for (let i = 0; i < n; i++) if (start[i] !== H2_PREFACE[i]) return 'http1';
  return n === H2_PREFACE.length ? 'http2' : 'more';
}

/**
 * Reads the start of a new plain connection and hands it to HTTP/2 when it opens with the client
 * preface, else to HTTP/1.1, with what was read put back. A connection that sends nothing within
 * `timeoutMs` is closed.
 */
export function routeByPreface(socket: Socket, timeoutMs: number, http1: () => void, http2: () => void): void {
  let got: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const onData = (chunk: Buffer): void => {
    got = got.length === 0 ? chunk : Buffer.concat([got, chunk]);
    const verdict = prefaceVerdict(got);
    if (verdict === 'more') return; // the preface may come in pieces
    clearTimeout(timer);
    socket.off('data', onData);
    socket.pause();
    socket.unshift(got);
    (verdict === 'http2' ? http2 : http1)();
    process.nextTick(() => socket.resume());
  };
  socket.on('data', onData);
  socket.once('close', () => clearTimeout(timer));
}
