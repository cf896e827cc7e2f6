// The agent's side of a relay: one WebSocket to one relay, authenticated both ways (the node key
// to the relay, the relay's static key — the one the netmap published — to us), carrying WireGuard
// and disco packets addressed by node public key. Nothing is sent to a relay that presents another
// key, and no packet before the relay proved its key. Reconnects by itself with jittered
// exponential backoff; ping() measures the round trip for home-relay selection.
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { isDecodeError } from '../../proto/errors.js';
import { checkRelayProof, makeNodeProof, relayHandshakeKey, type RelayHandshake } from '../../proto/relay/auth.js';
import { RelayFrameReader } from '../../proto/relay/frame-reader.js';
import {
  CLIENT_NONCE_LEN, decodeRelayFrame, encodeRelayFrame, FRAME_HEADER_LEN, MAX_PACKET_LEN, noticeName, PING_LEN,
  RELAY_PROTOCOL_VERSION, SEND_HEADER_LEN, writeSendFrame, type NoticeName, type PeerGoneReason,
} from '../../proto/relay/frames.js';
import { encodeKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { markedWsOptions } from '../routing/marked-socket.js';
import { abortError } from '../no-answer.js';

export interface RelayClientOptions {
  /** ws://host:port/relay (wss:// works the same). */
  url: string;
  /** The node's X25519 private key: the relay learns the public half and a proof, never this. */
  nodePrivateKey: Uint8Array;
  /** The relay's static public key as the netmap published it: any other key is refused. */
  relayKey: Uint8Array;
  /** Aborting closes the client for good. */
  signal?: AbortSignal;
  /** Backoff between reconnects: doubles from minDelayMs up to maxDelayMs, each delay drawn from [d/2, d]. false = never reconnect. Default 250 ms → 30 s. */
  reconnect?: { minDelayMs?: number; maxDelayMs?: number } | false;
  /** Time for one connect + authenticate attempt; default 10 s. */
  connectTimeoutMs?: number;
  /** send() returns false above this many buffered bytes (default 1 MiB) and drops above 8x that. */
  highWaterMark?: number;
  /**
   * WebSocket masking of what we send. RFC 6455 masking defends proxies against attacker-chosen
   * bytes from browsers; our payload is ciphertext the agent produced, so 'none' (an all-zero
   * mask, which ws then skips) saves a pass over every byte and doubles throughput on a loaded core.
   * Default 'none'; 'random' for strict RFC 6455 behaviour through unknown proxies.
   */
  masking?: 'random' | 'none';
  /** SO_MARK on the connection from its first packet, so it stays out of an exit node's default route (socket-mark.ts). */
  socketMark?: number;
}

/** What the relay announced after accepting us. */
export interface RelayServerInfo {
  relayKey: Uint8Array;
  keepaliveMs: number;
  idleTimeoutMs: number;
  rateBytesPerSec: number;
  rateBurstBytes: number;
}

/** Why we refused a relay (and sent it nothing, or nothing past client-info). */
export type RelayRefusalReason = 'key-mismatch' | 'bad-relay-proof' | 'protocol-version' | 'not-a-relay';

export interface RelayRefusal {
  reason: RelayRefusalReason;
  /** One line for logs and status, e.g. "key mismatch: relay presented AAA…, the netmap has BBB…". */
  message: string;
  /** Date.now() of the refusal. */
  at: number;
}

export interface RelayDisconnect {
  /** The relay's notice before it closed us, if any (e.g. 'not-authorized', 'replaced'). */
  notice: NoticeName | 'unknown' | null;
  /** Set when we closed because the relay failed to prove the key the netmap published. */
  refused: RelayRefusal | null;
  message: string;
  /** WebSocket close code, or 0 when the connection failed before opening. */
  code: number;
  willReconnect: boolean;
}

export interface RelayClientEvents {
  connect: [info: RelayServerInfo];
  /** A connection ended or was refused with a notice, or the client stopped for good (willReconnect false). */
  disconnect: [info: RelayDisconnect];
  /** A packet from src; `data` is a view the listener may keep. */
  recv: [src: Uint8Array, data: Uint8Array];
  'peer-gone': [nodeKey: Uint8Array, reason: PeerGoneReason];
  /** Buffered bytes fell back below the high-water mark after send() returned false. */
  drain: [];
}

export interface RelayClientStats {
  connects: number;
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Packets dropped by send(): not connected, or far over the high-water mark. */
  sendDrops: number;
  /** Frames from the relay that did not decode. */
  badFrames: number;
}

export class RelayClosedError extends Error {
  override readonly name = 'RelayClosedError';
}
export class RelayNotConnectedError extends Error {
  override readonly name = 'RelayNotConnectedError';
}
export class RelayPingTimeoutError extends Error {
  override readonly name = 'RelayPingTimeoutError';
}
export class RelayRefusedError extends Error {
  override readonly name = 'RelayRefusedError';
  constructor(readonly refusal: RelayRefusal) {
    super(refusal.message);
  }
}

/** Delay before trying a refused relay again (it may be fixed; the netmap may change its key). */
const REFUSED_RETRY_MS = 30_000;

/**
 * Frames sent in one turn go out as one WebSocket message of at most this much (a larger frame
 * goes alone): room for several relay trains (agent/wireguard/relay-train.ts).
 */
const BATCH_BYTES = 256 * 1024;
/** Batch buffers kept for reuse once written: a fresh one per message made V8 collect more often. */
const SPARE_BATCHES = 4;

interface PendingPing {
  started: number;
  resolve: (rttMs: number) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class RelayClient extends EventEmitter<RelayClientEvents> {
  readonly nodeKey: Uint8Array;
  readonly stats: RelayClientStats = { connects: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, sendDrops: 0, badFrames: 0 };
  /** Round trip of the last successful ping, ms. */
  latencyMs: number | null = null;
  serverInfo: RelayServerInfo | null = null;
  /** The last refusal, until the relay next proves its key. */
  refusal: RelayRefusal | null = null;

  private ws: WebSocket | null = null;
  private authenticated = false;
  private closed = false;
  private attempt = 0;
  private failedSinceConnect = false;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private lastRecvAt = 0;
  private lastNotice: { name: NoticeName | 'unknown'; message: string } | null = null;
  /** The refusal that ended the current connection attempt (reported once, at its teardown). */
  private pendingRefusal: RelayRefusal | null = null;
  private batch: Buffer | null = null;
  private batchLen = 0;
  /** Written batch buffers of BATCH_BYTES, ready for reuse. */
  private readonly spare: Buffer[] = [];
  private flushScheduled = false;
  private wantDrain = false;
  private readonly pings = new Map<string, PendingPing>();
  private readonly hwm: number;
  private readonly onAbort = () => void this.close();

  constructor(private readonly opts: RelayClientOptions) {
    super();
    this.nodeKey = publicKeyFromPrivate(opts.nodePrivateKey);
    this.hwm = opts.highWaterMark ?? 1024 * 1024;
    if (opts.signal?.aborted) {
      this.closed = true;
      return;
    }
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    this.open();
  }

  /** True while authenticated to the relay. */
  get connected(): boolean {
    return this.authenticated;
  }

  /**
   * True when not connected and a dial has failed (or a connection was lost) since the last
   * connection: packets sent now would wait for a relay that may never come back.
   */
  get down(): boolean {
    return !this.authenticated && this.failedSinceConnect;
  }

  /**
   * The network changed: the connection may hang on an address this host no longer has. Drop it
   * and dial again at once (the backoff starts over).
   */
  reconnectNow(): void {
    if (this.closed) return;
    this.attempt = 0;
    const ws = this.ws;
    if (ws) { ws.terminate(); return; } // its 'close' tears down and schedules a reconnect at the minimum delay
    if (this.reconnectTimer) { clearTimeout(this.reconnectTimer); this.reconnectTimer = null; }
    this.open();
  }

  /** Resolves once connected (at once if already); rejects when closed, aborted or the relay is refused. */
  ready(signal?: AbortSignal): Promise<void> {
    if (this.authenticated) return Promise.resolve();
    if (this.closed) return Promise.reject(new RelayClosedError('relay client is closed'));
    if (this.refusal) return Promise.reject(new RelayRefusedError(this.refusal));
    return new Promise((resolve, reject) => {
      const cleanup = () => {
        this.off('connect', onConnect);
        this.off('disconnect', onDisconnect);
        signal?.removeEventListener('abort', onAbort);
      };
      const onConnect = () => { cleanup(); resolve(); };
      const onDisconnect = (d: RelayDisconnect) => {
        if (d.refused) { cleanup(); reject(new RelayRefusedError(d.refused)); return; }
        if (!d.willReconnect) { cleanup(); reject(new RelayClosedError(`relay connection ended: ${d.notice ?? d.code} ${d.message}`.trim())); }
      };
      const onAbort = () => { cleanup(); reject(abortError(signal!, () => new RelayClosedError('aborted'))); };
      if (signal?.aborted) return onAbort();
      this.on('connect', onConnect);
      this.on('disconnect', onDisconnect);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Sends a packet to the node with public key dst. priority: a disco packet, queued ahead of data
   * by the relay. Returns false when the packet was dropped (not connected, or far too much
   * buffered) or when the caller should wait for 'drain' before sending more.
   */
  send(dst: Uint8Array, data: Uint8Array, opts: { priority?: boolean } = {}): boolean {
    if (data.length > MAX_PACKET_LEN) throw new RangeError(`relay packet of ${data.length} bytes (max ${MAX_PACKET_LEN})`);
    const ws = this.ws;
    if (!this.authenticated || !ws) {
      this.stats.sendDrops++;
      return false;
    }
    const buffered = ws.bufferedAmount + this.batchLen;
    if (buffered > 8 * this.hwm) {
      this.stats.sendDrops++;
      this.wantDrain = true;
      return false;
    }
    const len = FRAME_HEADER_LEN + SEND_HEADER_LEN + data.length;
    if (this.batch && this.batchLen + len > this.batch.length) this.flush();
    if (!this.batch) this.batch = len <= BATCH_BYTES ? (this.spare.pop() ?? Buffer.allocUnsafeSlow(BATCH_BYTES)) : Buffer.allocUnsafe(len);
    this.batchLen += writeSendFrame(this.batch, this.batchLen, dst, data, !!opts.priority);
    this.stats.framesOut++;
    this.stats.bytesOut += data.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    if (buffered + len > this.hwm) {
      this.wantDrain = true;
      return false;
    }
    return true;
  }

  /** Subscribes to packets; returns the unsubscribe function. */
  onRecv(cb: (src: Uint8Array, data: Uint8Array) => void): () => void {
    this.on('recv', cb);
    return () => this.off('recv', cb);
  }

  onPeerGone(cb: (nodeKey: Uint8Array, reason: PeerGoneReason) => void): () => void {
    this.on('peer-gone', cb);
    return () => this.off('peer-gone', cb);
  }

  /** Round trip to the relay (ping → pong), in ms. */
  ping(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<number> {
    if (!this.authenticated || !this.ws) return Promise.reject(new RelayNotConnectedError('not connected to the relay'));
    const data = new Uint8Array(randomBytes(PING_LEN));
    const id = Buffer.from(data).toString('hex');
    const ws = this.ws;
    return new Promise<number>((resolve, reject) => {
      const onAbort = () => done(abortError(opts.signal!, () => new RelayClosedError('aborted')));
      const done = (err: Error | null, rtt = 0) => {
        const p = this.pings.get(id);
        if (!p) return;
        clearTimeout(p.timer);
        this.pings.delete(id);
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(rtt);
      };
      if (opts.signal?.aborted) return reject(abortError(opts.signal, () => new RelayClosedError('aborted')));
      const timeoutMs = opts.timeoutMs ?? 5000;
      this.pings.set(id, {
        started: performance.now(),
        resolve: (rtt) => done(null, rtt),
        reject: (err) => done(err),
        timer: setTimeout(() => done(new RelayPingTimeoutError(`no pong within ${timeoutMs} ms`)), timeoutMs),
      });
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      this.flush(); // keep the ping behind data already sent, not ahead of it
      ws.send(encodeRelayFrame({ type: 'ping', data }));
    });
  }

  /** Median of `samples` pings (default 3): the figure to compare relays by for home-relay selection. */
  async measureLatency(opts: { samples?: number; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<number> {
    const rtts: number[] = [];
    for (let i = 0; i < (opts.samples ?? 3); i++) {
      rtts.push(await this.ping({ ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}), ...(opts.signal ? { signal: opts.signal } : {}) }));
    }
    rtts.sort((x, y) => x - y);
    return rtts[Math.floor(rtts.length / 2)]!;
  }

  /** Closes for good; no reconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.opts.signal?.removeEventListener('abort', this.onAbort);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      this.flush();
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { ws.terminate(); }, 1000);
        ws.once('close', () => { clearTimeout(t); resolve(); });
        ws.close(1000, 'bye');
      });
    } else {
      this.teardown(0, 'closed');
    }
  }

  private open(): void {
    this.lastNotice = null;
    this.pendingRefusal = null;
    const ws = new WebSocket(this.opts.url, {
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      handshakeTimeout: this.opts.connectTimeoutMs ?? 10_000,
      ...((this.opts.masking ?? 'none') === 'none' ? { generateMask: (mask: Buffer) => { mask.fill(0); } } : {}),
      ...(this.opts.socketMark ? markedWsOptions(this.opts.url, this.opts.socketMark) : {}),
    });
    ws.binaryType = 'nodebuffer';
    this.ws = ws;
    const reader = new RelayFrameReader();
    let handshake: { hs: RelayHandshake; key: Uint8Array } | null = null;
    this.connectTimer = setTimeout(() => ws.terminate(), this.opts.connectTimeoutMs ?? 10_000);
    const refuse = (reason: RelayRefusalReason, message: string): void => {
      this.refusal = { reason, message, at: Date.now() };
      this.pendingRefusal = this.refusal;
      ws.terminate();
    };

    const onFrame = (type: number, payload: Uint8Array): void => {
      this.stats.framesIn++;
      let f;
      try {
        f = decodeRelayFrame(type, payload);
      } catch (err) {
        if (!isDecodeError(err)) throw err;
        this.stats.badFrames++;
        return;
      }
      // Until the relay proved its key, only the handshake and its notice mean anything.
      if (!this.authenticated && f.type !== 'server-key' && f.type !== 'server-info' && f.type !== 'notice') return;
      switch (f.type) {
        case 'recv':
          this.stats.bytesIn += f.data.length;
          this.emit('recv', f.src, f.data);
          return;
        case 'server-key': {
          if (handshake) return;
          if (f.version !== RELAY_PROTOCOL_VERSION) return refuse('protocol-version', `relay speaks protocol version ${f.version}, this agent ${RELAY_PROTOCOL_VERSION}`);
          if (!sameKey(f.serverKey, this.opts.relayKey)) {
            return refuse('key-mismatch', `key mismatch: relay presented ${encodeKey(f.serverKey)}, the netmap has ${encodeKey(this.opts.relayKey)}`);
          }
          const hs: RelayHandshake = {
            nodeKey: this.nodeKey, relayKey: this.opts.relayKey, challenge: Uint8Array.from(f.challenge), clientNonce: new Uint8Array(randomBytes(CLIENT_NONCE_LEN)),
          };
          const key = relayHandshakeKey(this.opts.nodePrivateKey, this.opts.relayKey, hs);
          if (!key) return refuse('bad-relay-proof', 'the relay key is a low-order point'); // no relay can prove it
          handshake = { hs, key };
          ws.send(encodeRelayFrame({ type: 'client-info', version: RELAY_PROTOCOL_VERSION, nodeKey: this.nodeKey, clientNonce: hs.clientNonce, proof: makeNodeProof(key, hs) }));
          return;
        }
        case 'server-info': {
          if (!handshake || this.authenticated) return;
          if (!checkRelayProof(handshake.key, handshake.hs, f.relayProof)) {
            return refuse('bad-relay-proof', `the relay did not prove it holds ${encodeKey(this.opts.relayKey)}`);
          }
          if (this.connectTimer) clearTimeout(this.connectTimer);
          this.connectTimer = null;
          this.authenticated = true;
          this.refusal = null;
          this.attempt = 0;
          this.failedSinceConnect = false;
          this.stats.connects++;
          this.serverInfo = {
            relayKey: Uint8Array.from(this.opts.relayKey), keepaliveMs: f.keepaliveMs, idleTimeoutMs: f.idleTimeoutMs,
            rateBytesPerSec: f.rateBytesPerSec, rateBurstBytes: f.rateBurstBytes,
          };
          this.startKeepalive(f.keepaliveMs, f.idleTimeoutMs);
          this.emit('connect', this.serverInfo);
          return;
        }
        case 'peer-gone':
          this.emit('peer-gone', Uint8Array.from(f.nodeKey), f.reason);
          return;
        case 'ping':
          ws.send(encodeRelayFrame({ type: 'pong', data: Uint8Array.from(f.data) }));
          return;
        case 'pong': {
          const p = this.pings.get(Buffer.from(f.data).toString('hex'));
          if (p) {
            const rtt = performance.now() - p.started;
            this.latencyMs = rtt;
            p.resolve(rtt);
          }
          return;
        }
        case 'notice':
          this.lastNotice = { name: noticeName(f.code), message: f.message };
          return;
        case 'keepalive':
        case 'send':
        case 'client-info':
          return;
      }
    };

    ws.on('message', (data: Buffer, isBinary) => {
      this.lastRecvAt = performance.now();
      if (!isBinary) return;
      try {
        reader.push(data, onFrame);
      } catch (err) {
        if (!isDecodeError(err)) throw err;
        this.stats.badFrames++;
        ws.terminate();
      }
    });
    ws.on('error', () => { /* 'close' follows and schedules the reconnect */ });
    // Anything but 101 (a 404 from a coordinator, a web server): say so instead of timing out.
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      refuse('not-a-relay', `answered HTTP ${res.statusCode ?? '?'} at ${this.opts.url}: not a pinhole relay`);
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.teardown(code, this.lastNotice?.message || reason.toString());
    });
  }

  private startKeepalive(keepaliveMs: number, idleTimeoutMs: number): void {
    const every = Math.max(10, Math.min(keepaliveMs, idleTimeoutMs / 3));
    this.lastRecvAt = performance.now();
    let lastSent = performance.now();
    this.keepaliveTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws || !this.authenticated) return;
      const now = performance.now();
      // The relay sends a keepalive every keepaliveMs: silence for idleTimeoutMs means it is gone.
      if (now - this.lastRecvAt > idleTimeoutMs) {
        ws.terminate();
        return;
      }
      if (now - lastSent >= keepaliveMs - every / 2) {
        lastSent = now;
        ws.send(encodeRelayFrame({ type: 'keepalive' }));
      }
    }, every);
    this.keepaliveTimer.unref();
  }

  private flush(): void {
    this.flushScheduled = false;
    const ws = this.ws;
    const batch = this.batch;
    if (!batch || this.batchLen === 0) return;
    const out = batch.subarray(0, this.batchLen);
    this.batch = null;
    this.batchLen = 0;
    if (!ws || ws.readyState !== WebSocket.OPEN) { this.recycle(batch); return; }
    ws.send(out, { binary: true }, () => {
      this.recycle(batch); // written (or failed): the socket holds it no longer
      if (this.wantDrain && ws.bufferedAmount + this.batchLen < this.hwm / 2) {
        this.wantDrain = false;
        this.emit('drain');
      }
    });
  }

  private recycle(batch: Buffer): void {
    if (batch.length === BATCH_BYTES && this.spare.length < SPARE_BATCHES) this.spare.push(batch);
  }

  private teardown(code: number, message: string): void {
    const wasUp = this.authenticated;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.connectTimer = null;
    this.keepaliveTimer = null;
    this.ws = null;
    this.authenticated = false;
    this.batch = null;
    this.batchLen = 0;
    for (const p of [...this.pings.values()]) p.reject(new RelayNotConnectedError('relay connection lost'));
    const willReconnect = !this.closed && this.opts.reconnect !== false;
    this.failedSinceConnect = true;
    const refused = this.pendingRefusal;
    this.pendingRefusal = null;
    // Failed attempts while reconnecting are silent; losing a connection, a refusal either side
    // explained (e.g. not-authorized, key-mismatch), or closing for good is not.
    if (wasUp || !willReconnect || this.lastNotice || refused) {
      this.emit('disconnect', { notice: this.lastNotice?.name ?? null, refused, message: refused?.message ?? message, code, willReconnect });
    }
    if (this.wantDrain) {
      this.wantDrain = false;
      this.emit('drain');
    }
    if (willReconnect) this.scheduleReconnect(refused ? REFUSED_RETRY_MS : undefined);
  }

  private scheduleReconnect(floorMs = 0): void {
    const r = this.opts.reconnect || {};
    const min = r.minDelayMs ?? 250;
    const max = r.maxDelayMs ?? 30_000;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    const delay = Math.max(floorMs, ceiling / 2 + Math.random() * (ceiling / 2));
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.closed) this.open();
    }, delay);
  }
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

/** Starts a client (connecting in the background); await client.ready() for the first connection. */
export function createRelayClient(opts: RelayClientOptions): RelayClient {
  return new RelayClient(opts);
}
