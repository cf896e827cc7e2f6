// The agent's long-lived control connection: one WebSocket to /api/v1/stream inside a control
// channel opened with the node key to the pinned coordinator key (control-channel.ts). The client
// says hello; the server then sends a full netmap and deltas. Every inbound message is parsed with the zod schemas —
// anything else is dropped and counted. A lost connection is retried with jittered backoff, and
// the full map of the new connection replaces the old one (resume).
import WebSocket from 'ws';
import type { NoiseChannel } from '../../proto/control/noise-channel.js';
import {
  SERVER_CAPABILITIES, STREAM_CAPABILITIES, ServerStreamMessage, clientPingsCapability, type ClientStreamMessage, type NatKind, type Netmap, type NetmapDelta, type StreamPaths,
} from '../../proto/control/schemas.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { CoordinatorKeyMismatchError, markedConnector, openControlChannel } from './control-channel.js';

/** Client ping interval; the server answers each with a pong. */
export const KEEPALIVE_INTERVAL_MS = 15_000;
/** With nothing received for this long the connection is presumed dead and replaced. */
export const IDLE_TIMEOUT_MS = 45_000;
/** A netmap of 10,000 peers is a few MB; anything far larger is not one. */
const MAX_MESSAGE_BYTES = 64 << 20;

export interface StreamLog {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export interface ControlStreamOptions {
  /** One URL, or replicas "URL1,URL2,...": a lost or refused connection moves on to the next. */
  coordinatorUrl: string;
  /** The pinned coordinator key (base64), asked on every connect (a rotation changes it). */
  serverKey: () => string;
  nodePrivate: Uint8Array;
  nodeKey: string;
  /** A rotation's next key, learnt inside a channel the pinned key authenticated: pin it. */
  onNextKey?: (key: string) => void;
  /** SO_MARK on the connection, so it stays out of an exit node's default route (socket-mark.ts). */
  socketMark?: number;
  /** The endpoints to report now; asked on every (re)connect and by refreshEndpoints(). */
  endpoints: () => string[];
  /** The home relay to report with the endpoints (null: none). */
  homeRelay?: () => string | null;
  /** This node's NAT kind to report with the endpoints (null: unknown), to coordinators that take it. */
  natKind?: () => NatKind | null;
  /** A full netmap: it replaces whatever the agent held. */
  onNetmap: (netmap: Netmap) => void;
  /** A delta on top of the last netmap of the same connection. */
  onDelta: (delta: NetmapDelta) => void;
  /** True once a netmap arrived on a connection, false when that connection is lost (not on stop()). */
  onConnectedChange?: (connected: boolean) => void;
  /** Sequence number of the netmap the agent holds (sent in hello, informational). */
  lastSeq?: () => number | undefined;
  log?: StreamLog;
  backoff?: BackoffOptions;
  keepaliveMs?: number;
  idleTimeoutMs?: number;
}

export interface ControlStreamCounters {
  /** Connection attempts since start(). */
  attempts: number;
  netmaps: number;
  deltas: number;
  /** Inbound messages dropped: not JSON, not matching a schema, or out of order. */
  malformed: number;
}

export interface ControlStreamStatus extends ControlStreamCounters {
  connected: boolean;
  connectedSince: string | null;
  lastError: string | null;
  /** The last attempt met a server that does not hold the pinned key. */
  keyMismatch: boolean;
  /** The coordinator URL the stream uses now (one of several replicas, or the only one). */
  url: string;
}

const quiet: StreamLog = { debug() {}, info() {}, warn() {}, error() {} };

export class ControlStream {
  private readonly backoff: Backoff;
  private readonly log: StreamLog;
  private ws: WebSocket | undefined;
  private running = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private helloSent = false;
  private gotNetmap = false;
  private lastInboundAt = 0;
  private reportedEndpoints = '';
  /** What the coordinator of this connection accepts beyond the first round (its netmap's serverCapabilities). */
  private serverCaps: readonly string[] = [];
  private connectedSince: string | null = null;
  private lastError: string | null = null;
  private keyMismatch = false;
  private opening: AbortController | undefined;
  private readonly urls: string[];
  private urlIndex = 0;
  /** Replicas tried since the last connection that delivered a netmap. */
  private triedSinceNetmap = 0;
  readonly counters: ControlStreamCounters = { attempts: 0, netmaps: 0, deltas: 0, malformed: 0 };

  constructor(private readonly opts: ControlStreamOptions) {
    this.backoff = new Backoff(opts.backoff);
    this.log = opts.log ?? quiet;
    this.urls = opts.coordinatorUrl.split(',');
  }

  /** The coordinator (replica) this client is connected to or dialling. */
  get currentUrl(): string {
    return this.urls[this.urlIndex]!;
  }

  get connected(): boolean {
    return this.connectedSince !== null;
  }

  status(): ControlStreamStatus {
    return { ...this.counters, connected: this.connected, connectedSince: this.connectedSince, lastError: this.lastError, keyMismatch: this.keyMismatch, url: this.currentUrl };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.backoff.reset();
    this.connect();
  }

  /** Closes the connection for good; onConnectedChange is not called for a stop asked for. */
  stop(): void {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.opening?.abort();
    this.opening = undefined;
    const ws = this.ws;
    this.ws = undefined;
    this.endConnection(false);
    ws?.removeAllListeners();
    ws?.on('error', () => undefined); // a socket still connecting reports its abort as an error
    ws?.terminate();
  }

  /**
   * The network changed: the connection may hang on an address this host no longer has and would
   * only notice after the silence timeout. Drop it and dial again now.
   */
  reconnectNow(): void {
    if (!this.running) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.opening?.abort();
    this.opening = undefined;
    const ws = this.ws;
    this.ws = undefined;
    this.endConnection();
    ws?.removeAllListeners();
    ws?.on('error', () => undefined);
    ws?.terminate();
    this.backoff.reset();
    this.log.info('network changed: reconnecting the control stream');
    this.connect();
  }

  /** The connected coordinator takes {type:'paths'} reports (its netmap lists 'path-reports'). */
  get takesPathReports(): boolean {
    return this.gotNetmap && this.serverCaps.includes(SERVER_CAPABILITIES.pathReports);
  }

  /** Sends this node's path table (path-reporter.ts); false when not connected or the coordinator does not take it. */
  sendPaths(msg: StreamPaths): boolean {
    return this.takesPathReports && this.send(msg);
  }

  /** Reports the endpoints (home relay, NAT kind) again if they changed since the last report. */
  refreshEndpoints(): void {
    if (!this.gotNetmap) return;
    const eps = this.opts.endpoints();
    const homeRelay = this.opts.homeRelay?.() ?? null;
    // StreamEndpoints is strict: a coordinator older than 'nat-kind' would refuse the extra key.
    const natKind = this.serverCaps.includes(SERVER_CAPABILITIES.natKind) ? this.opts.natKind?.() : undefined;
    const text = `${eps.join(',')} ${homeRelay ?? ''} ${natKind ?? ''}`;
    if (text === this.reportedEndpoints) return;
    const msg: ClientStreamMessage = { type: 'endpoints', endpoints: eps, homeRelay, ...(natKind !== undefined ? { natKind } : {}) };
    if (this.send(msg)) this.reportedEndpoints = text;
  }

  private connect(): void {
    this.retryTimer = undefined;
    if (!this.running) return;
    this.counters.attempts++;
    this.helloSent = false;
    this.gotNetmap = false;
    this.reportedEndpoints = '';
    this.lastInboundAt = Date.now();
    const opening = new AbortController();
    this.opening = opening;
    openControlChannel({
      url: this.currentUrl, serverKey: decodeKey(this.opts.serverKey()), staticPrivate: this.opts.nodePrivate,
      signal: opening.signal, ...(this.opts.socketMark ? { connect: markedConnector(this.opts.socketMark)! } : {}),
      onWelcome: (w) => { if (w.nextKey) this.notify(() => this.opts.onNextKey?.(w.nextKey!)); },
    }).then(({ channel }) => {
      if (this.opening !== opening) {
        channel.destroy();
        return;
      }
      this.opening = undefined;
      this.keyMismatch = false;
      this.openStream(channel);
    }, (err: Error) => {
      if (this.opening !== opening) return;
      this.opening = undefined;
      const mismatch = err instanceof CoordinatorKeyMismatchError;
      if (mismatch && !this.keyMismatch) this.log.error(`${err.message}; keeping the tunnels on the last netmap`);
      this.keyMismatch = mismatch;
      this.lastError = err.message.split('\n')[0]!;
      this.closed(`control channel failed: ${this.lastError}`);
    });
  }

  private openStream(channel: NoiseChannel): void {
    const ws = new WebSocket('ws://coordinator/api/v1/stream', {
      handshakeTimeout: 10_000, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false,
      createConnection: () => channel as never,
    });
    this.ws = ws;
    ws.on('open', () => {
      this.log.debug('control stream open');
      const lastSeq = this.opts.lastSeq?.();
      // It pings every `every` ms (below), and says so: a coordinator then need not ping it too.
      const every = this.opts.keepaliveMs ?? KEEPALIVE_INTERVAL_MS;
      this.helloSent = this.send({
        type: 'hello', nodeKey: this.opts.nodeKey, capabilities: [STREAM_CAPABILITIES.peerPatches, clientPingsCapability(every)],
        ...(lastSeq !== undefined ? { lastSeq } : {}),
      });
      this.keepaliveTimer = setInterval(() => this.keepalive(ws), every);
    });
    ws.on('message', (data, isBinary) => {
      if (ws === this.ws) this.receive(data, isBinary);
    });
    ws.on('error', (err) => {
      if (ws === this.ws) this.lastError = err.message.split('\n')[0]!;
    });
    ws.on('close', (code, reason) => {
      if (ws !== this.ws) return;
      const why = reason.length > 0 ? `${code} ${reason.toString('utf8').slice(0, 200)}` : String(code);
      this.closed(`control stream closed (${why})`);
    });
  }

  private keepalive(ws: WebSocket): void {
    const silentMs = Date.now() - this.lastInboundAt;
    if (silentMs > (this.opts.idleTimeoutMs ?? IDLE_TIMEOUT_MS)) {
      this.lastError = `control stream silent for ${(silentMs / 1000).toFixed(1)} s, reconnecting`;
      this.log.warn(this.lastError);
      ws.terminate();
      return;
    }
    this.send({ type: 'ping', t: Date.now() });
  }

  private closed(why: string): void {
    const wasConnected = this.connected;
    this.endConnection();
    this.ws = undefined;
    if (wasConnected) this.log.warn(why);
    else this.log.debug(why);
    if (!this.running) return;
    // Replicas: the next one right away, until each was tried once; then the usual backoff.
    if (this.urls.length > 1) {
      this.urlIndex = (this.urlIndex + 1) % this.urls.length;
      if (++this.triedSinceNetmap < this.urls.length) {
        this.log.info(`control stream: trying the next coordinator, ${this.currentUrl}`);
        this.retryTimer = setTimeout(() => this.connect(), 50 + Math.random() * 200);
        return;
      }
      this.triedSinceNetmap = 0;
    }
    const delay = this.backoff.next();
    this.log.debug(`control stream: retrying in ${delay} ms`);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private endConnection(notify = true): void {
    clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
    const wasConnected = this.connected;
    this.connectedSince = null;
    this.gotNetmap = false;
    this.serverCaps = [];
    if (wasConnected && notify) this.notify(() => this.opts.onConnectedChange?.(false));
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.lastInboundAt = Date.now();
    if (isBinary) { this.drop('binary message'); return; }
    let json: unknown;
    try {
      json = JSON.parse(rawText(data));
    } catch {
      this.drop('not JSON');
      return;
    }
    const r = ServerStreamMessage.safeParse(json);
    if (!r.success) { this.drop(`schema: ${r.error.issues[0]?.path.join('.') ?? ''} ${r.error.issues[0]?.message ?? ''}`); return; }
    const msg = r.data;
    switch (msg.type) {
      case 'netmap': {
        if (!this.helloSent) { this.drop('netmap before hello'); return; }
        if (msg.self.nodeKey !== this.opts.nodeKey) { this.drop('netmap for another node key'); return; }
        this.counters.netmaps++;
        const first = !this.gotNetmap;
        this.gotNetmap = true;
        this.serverCaps = msg.serverCapabilities ?? [];
        if (first) {
          this.connectedSince = new Date().toISOString();
          this.lastError = null;
          this.backoff.reset();
          this.triedSinceNetmap = 0;
          this.log.info(`control stream connected (netmap seq ${msg.seq}, ${msg.peers.length} peers)`);
        }
        this.notify(() => this.opts.onNetmap(msg));
        if (first) this.notify(() => this.opts.onConnectedChange?.(true));
        this.refreshEndpoints();
        return;
      }
      case 'delta':
        if (!this.gotNetmap) { this.drop('delta before the netmap'); return; }
        this.counters.deltas++;
        this.notify(() => this.opts.onDelta(msg));
        return;
      case 'pong':
        return;
      case 'error':
        this.lastError = `coordinator: ${msg.reason.split('\n')[0]!.slice(0, 300)}`;
        this.log.warn(this.lastError);
        return;
    }
  }

  private send(msg: ClientStreamMessage): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(msg));
    return true;
  }

  private drop(why: string): void {
    this.counters.malformed++;
    this.log.debug(`control stream: dropped a message (${why})`);
  }

  /** A bug in a handler must not take the connection (or the daemon) down with it. */
  private notify(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error(`control stream handler failed: ${(err as Error).stack ?? String(err)}`);
    }
  }
}

function rawText(data: WebSocket.RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
