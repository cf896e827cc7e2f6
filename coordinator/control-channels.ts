// The coordinator's side of the control channel (proto/control/noise-upgrade.ts): answers the
// upgrade on the public port (or a stream of an HTTP/2 connection, control-h2.ts) with Noise
// message 2 and hands the channel to the inner HTTP server, where registration, the netmap stream
// and the admin API run. Before any of that it applies the limits an unauthenticated caller
// meets: handshakes per address, a cap on channels that have not yet proven who they are
// (globally and per address), and a deadline to do so.
import type { IncomingMessage, Server } from 'node:http';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { NoiseChannel, type ChannelTransport } from '../proto/control/noise-channel.js';
import { responderMessage2, responderReadMessage1, MSG1_OVERHEAD } from '../proto/control/noise-ik.js';
import { CONTROL_UPGRADE, HANDSHAKE_HEADER, type ChannelWelcome } from '../proto/control/noise-upgrade.js';
import { frameBytes } from '../proto/control/noise-transport.js';
import { encodeKey } from '../proto/wireguard/keys.js';
import { AddressCounter, AddressRateLimiter } from './address-limits.js';
import type { Logger } from './log.js';
import type { ServerKeys } from './server-keys.js';

export interface ControlLimits {
  /** Handshakes per second per source address (burst: 10 s worth). */
  handshakesPerSecond: number;
  /** Channels not yet authenticated, in all and per source address. */
  maxUnauthenticated: number;
  maxUnauthenticatedPerAddress: number;
  /** A channel must authenticate (be a known node or relay, register, or show the admin token) within this. */
  authenticateWithinMs: number;
}

export const DEFAULT_CONTROL_LIMITS: ControlLimits = {
  handshakesPerSecond: 20,
  maxUnauthenticated: 4096,
  maxUnauthenticatedPerAddress: 64,
  authenticateWithinMs: 15_000,
};

/** Largest message 1 accepted (it carries no payload today). */
const MAX_MSG1 = MSG1_OVERHEAD + 256;

/** What the inner server knows of a channel's caller. */
export interface ChannelCaller {
  /** The caller's static key (base64): a node's node key, a relay's key, or an admin CLI's throwaway key. */
  key: string;
  /** The source address of the connection under the channel. */
  address: string;
  /** Which coordinator key the caller used ('next' only during a rotation). */
  via: 'current' | 'next';
  /** Marks the channel as authenticated: it leaves the unauthenticated cap and its deadline. */
  authenticated(): void;
}

const callers = new WeakMap<object, ChannelCaller>();

/** The caller behind an inner request's socket; null for anything that is not a control channel. */
export function callerOf(socket: object): ChannelCaller | null {
  return callers.get(socket) ?? null;
}

export interface ControlChannelsOptions {
  keys: ServerKeys;
  inner: Server;
  limits: ControlLimits;
  /** Known callers skip the unauthenticated state: registered nodes, configured relays. */
  isKnownKey(key: string): boolean;
  log: Logger;
}

export class ControlChannels {
  readonly stats = { opened: 0, badHandshake: 0, keyMismatch: 0, rateLimited: 0, unauthenticatedCap: 0, unauthenticatedTimeout: 0, pendingCap: 0 };
  private readonly handshakes: AddressRateLimiter;
  private readonly unauthenticated: AddressCounter;
  /** Open channels and the coordinator key (base64) each was opened with. */
  private readonly channels = new Map<NoiseChannel, string>();

  constructor(private readonly opts: ControlChannelsOptions) {
    this.handshakes = new AddressRateLimiter({ perSecond: opts.limits.handshakesPerSecond, burst: opts.limits.handshakesPerSecond * 10 });
    this.unauthenticated = new AddressCounter(opts.limits.maxUnauthenticated, opts.limits.maxUnauthenticatedPerAddress);
  }

  get unauthenticatedCount(): number { return this.unauthenticated.size; }

  /**
   * Closes every channel opened with `key` (base64): at a rotation's start, so every agent opens a
   * new one and learns the next key in its welcome; at its end, so the stragglers move over.
   */
  closeChannelsOn(key: string): number {
    let n = 0;
    for (const [channel, used] of this.channels) {
      if (used !== key) continue;
      channel.destroy();
      n++;
    }
    return n;
  }

  /** A control channel asked for on an HTTP/1.1 connection (Upgrade: pinhole-control-v1). */
  handleUpgrade(req: IncomingMessage, socket: Duplex & { remoteAddress?: string }, head: Buffer): void {
    if ((req.headers.upgrade ?? '').toLowerCase() !== CONTROL_UPGRADE) {
      return refuse(socket, 400, `expected Upgrade: ${CONTROL_UPGRADE}`);
    }
    this.open(socket.remoteAddress ?? 'unknown', req.headers[HANDSHAKE_HEADER], {
      refuse: (status, reason, extra) => refuse(socket, status, reason, extra),
      accept: (msg2) => {
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${CONTROL_UPGRADE}\r\nConnection: Upgrade\r\n\r\n`);
        socket.write(msg2);
        return { transport: socket, head };
      },
    });
  }

  /**
   * A control channel asked for as one stream of an HTTP/2 connection (control-h2.ts): the same
   * handshake in the same header, answered with status 200 and message 2 as the stream's first
   * frame; a refusal is the same status and one-line JSON reason as on HTTP/1.1.
   */
  handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, address: string): void {
    this.open(address, headers[HANDSHAKE_HEADER], {
      refuse: (status, reason, extra = {}) => {
        if (stream.destroyed) return;
        stream.respond({ ':status': status, 'content-type': 'application/json', ...extra });
        stream.end(JSON.stringify({ error: reason }));
      },
      accept: (msg2) => {
        stream.respond({ ':status': 200 });
        stream.write(msg2);
        const transport = stream as ServerHttp2Stream & ChannelTransport;
        transport.remoteAddress = address;
        return { transport };
      },
    });
  }

  private open(address: string, header: string | string[] | undefined, reply: ChannelReply): void {
    const wait = this.handshakes.take(address);
    if (wait > 0) {
      this.stats.rateLimited++;
      return reply.refuse(429, `too many handshakes from ${address}: retry in ${Math.ceil(wait / 1000)} s`, { 'retry-after': String(Math.ceil(wait / 1000)) });
    }
    const msg1 = typeof header === 'string' && header.length <= Math.ceil(MAX_MSG1 / 3) * 4 ? Buffer.from(header, 'base64') : null;
    if (!msg1 || msg1.length < MSG1_OVERHEAD || msg1.length > MAX_MSG1) {
      this.stats.badHandshake++;
      return reply.refuse(400, `missing or malformed ${HANDSHAKE_HEADER} header`);
    }
    const statics = this.opts.keys.statics();
    let pending;
    try {
      pending = responderReadMessage1(msg1, statics);
    } catch {
      this.stats.keyMismatch++;
      const held = statics.map((s) => s.fingerprint).join(' and ');
      return reply.refuse(403, `handshake failed: not addressed to this coordinator's key (fingerprint ${held})`, { 'pinhole-control': 'key-mismatch' });
    }
    const key = encodeKey(pending.initiatorStatic);
    const known = this.opts.isKnownKey(key);
    if (!known) {
      const slot = this.unauthenticated.acquire(address);
      if (slot !== 'ok') {
        this.stats.unauthenticatedCap++;
        return reply.refuse(429, slot === 'total' ? 'too many unauthenticated connections: retry later' : `too many unauthenticated connections from ${address}`, { 'retry-after': '5' });
      }
    }
    const via = pending.keyIndex === 0 ? 'current' : 'next';
    const next = this.opts.keys.next;
    const welcome: ChannelWelcome = { v: 1, ...(via === 'current' && next ? { nextKey: next.text } : {}) };
    const { msg2, keys } = responderMessage2(pending, new TextEncoder().encode(JSON.stringify(welcome)));
    const { transport, head } = reply.accept(frameBytes(msg2));
    const channel = new NoiseChannel(transport, { keys, peerStatic: pending.initiatorStatic, ...(head ? { head } : {}) });
    this.stats.opened++;

    let pendingAuth = !known;
    let deadline: NodeJS.Timeout | null = null;
    const leave = (): void => {
      if (!pendingAuth) return;
      pendingAuth = false;
      if (deadline) clearTimeout(deadline);
      this.unauthenticated.release(address);
    };
    if (pendingAuth) {
      deadline = setTimeout(() => {
        if (!pendingAuth) return;
        this.stats.unauthenticatedTimeout++;
        this.opts.log.debug({ address }, 'control channel did not authenticate in time');
        channel.destroy();
      }, this.opts.limits.authenticateWithinMs);
      deadline.unref();
    }
    const usedKey = statics[pending.keyIndex]!.text;
    this.channels.set(channel, usedKey);
    channel.on('close', () => {
      this.channels.delete(channel);
      leave();
    });
    callers.set(channel, { key, address, via, authenticated: leave });
    this.opts.inner.emit('connection', channel);
  }
}

/** How a handshake is answered on the connection it came on (HTTP/1.1 upgrade or HTTP/2 stream). */
interface ChannelReply {
  refuse(status: number, reason: string, extra?: Record<string, string>): void;
  /** Sends message 2 (framed); returns what the channel runs on and bytes already read past the request. */
  accept(msg2: Uint8Array): { transport: ChannelTransport; head?: Buffer };
}

function refuse(socket: Duplex, status: number, reason: string, extra: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: reason });
  const statusText = { 400: 'Bad Request', 403: 'Forbidden', 429: 'Too Many Requests' }[status] ?? 'Error';
  const headers = Object.entries({ 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), connection: 'close', ...extra })
    .map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.end(`HTTP/1.1 ${status} ${statusText}\r\n${headers}\r\n${body}`);
}
