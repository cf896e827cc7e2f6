// One client connection on the relay: the handshake (server-key + challenge → client-info with
// node proof → authorizer → server-info with relay proof), then frames in (rate-limited) and frames
// out (two-lane queue, batched into WebSocket messages, bounded by what the socket has not yet
// taken, and charged to the relay-wide queue budget).
//
// Backpressure: a data frame that fills its destination's data lane pauses the sender's socket
// (TCP flow control carries it back to the sending agent) until the destination drains to its
// low-water mark. Disco and control frames have their own lane and are never held behind data. A
// pause is bounded: a sender held longer than maxPauseMs by one destination is resumed and that
// destination is marked overrun, so it drops its oldest data frames (as every queue did before)
// instead of pausing anyone, until it drains to its low-water mark. One slow receiver thus costs
// the peers of a sender that also talks to it at most maxPauseMs per overrun episode.
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { isDecodeError } from '../proto/errors.js';
import { checkNodeProof, makeRelayProof, relayHandshakeKey, type RelayHandshake } from '../proto/relay/auth.js';
import { RelayFrameReader } from '../proto/relay/frame-reader.js';
import {
  CHALLENGE_LEN, encodeRelayFrame, FRAME, MAX_PRIORITY_PACKET, NODE_KEY_LEN, NOTICE, PING_LEN, RELAY_PROTOCOL_VERSION,
  SEND_FLAG_PRIORITY, SEND_HEADER_LEN, decodeRelayFrame, type NoticeName,
} from '../proto/relay/frames.js';
import type { AuthorizationResult, NodeAuthorizer } from './authorizer.js';
import type { RelayCounters } from './counters.js';
import type { Logger } from './log.js';
import { TokenBucket } from './rate-limit.js';
import { FrameArena, MAX_ARENA_FRAME } from './frame-arena.js';
import { SendQueue, type SendQueueLimits } from './send-queue.js';

export interface SessionConfig {
  keepaliveMs: number;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** A client with bytes waiting that takes none of them for this long is closed. */
  writeTimeoutMs: number;
  rateBytesPerSec: number;
  rateBurstBytes: number;
  queue: SendQueueLimits;
  /** A sender paused by a full destination longer than this is resumed and the destination drops instead. */
  maxPauseMs: number;
}

/** Bytes queued for (or handed to the sockets of) all clients together, against one cap. */
export interface QueueBudget {
  readonly capBytes: number;
  usedBytes: number;
  peakBytes: number;
}

/** What a session needs from the server around it. */
export interface SessionHost {
  readonly counters: RelayCounters;
  readonly budget: QueueBudget;
  readonly logger: Logger;
  readonly relayPrivateKey: Uint8Array;
  readonly relayPublicKey: Uint8Array;
  readonly config: SessionConfig;
  readonly authorizer: NodeAuthorizer;
  /** The session authenticated and was authorized: route its key to it. */
  register(s: ClientSession): void;
  /** The session is gone (called once). */
  unregister(s: ClientSession): void;
  /** A send frame from s: `frame` is the whole frame (owned, may be rewritten), `dst` a view into it. */
  forward(from: ClientSession, frame: Uint8Array, dst: Uint8Array, priority: boolean): void;
}

/** A queue that pauses the senders filling it (a client's data lane, or a mesh link's). */
export interface PauseTarget {
  /** Senders paused by this queue. */
  readonly blocked: Set<PausableSender>;
  /** A pause on this queue hit maxPauseMs: it drops instead of pausing until drained. */
  overrun: boolean;
}

/** Whoever's socket a full queue can pause: a client, or the mesh session delivering for a peer relay. */
export interface PausableSender {
  readonly state: string;
  /** Pauses this sender's socket until `dst` drains or maxPauseMs passes. */
  blockOn(dst: PauseTarget): void;
  /** Ends the pause. */
  unblock(): void;
}

/** Where a frame for a client of another relay of the mesh goes (relay/mesh-link.ts). */
export interface MeshRoute {
  readonly state: string;
  forward(from: PausableSender, src: Uint8Array, dst: Uint8Array, data: Uint8Array, priority: boolean): void;
}

/** Bytes handed to the socket but not yet written: above this, frames wait in the queue. */
const INFLIGHT_LIMIT = 512 * 1024;
/** Frames are packed into WebSocket messages of up to this size. */
const BATCH_BYTES = 64 * 1024;
/** Frames a client may send between client-info and server-info (clients wait for the relay's proof: none). */
const MAX_EARLY_FRAMES = 16;
/** After the close handshake is started, the socket is destroyed this much later regardless. */
const CLOSE_GRACE_MS = 2000;
/** peer-gone(not-here) for one key at most this often per client. */
const NOT_HERE_INTERVAL_MS = 1000;

type State = 'handshake' | 'authorizing' | 'open' | 'closed';

export class ClientSession implements PauseTarget, PausableSender {
  state: State = 'handshake';
  /** Set once the proof verified. */
  nodeKey: Uint8Array = new Uint8Array(0);
  /** Hex of nodeKey: the routing table key. */
  id = '';
  /** Sessions this one sent to, and sessions that sent to this one (for peer-gone notices). */
  readonly sentTo = new Set<ClientSession>();
  readonly senders = new Set<ClientSession>();
  /** One-entry route cache: consecutive frames to one peer skip the table lookup. */
  lastDst: ClientSession | null = null;
  readonly lastDstKey = new Uint8Array(NODE_KEY_LEN);
  /** The same for a peer at another relay of the mesh (lastDst null): its link, valid while the routes' version is meshRouteVersion. */
  meshRoute: MeshRoute | null = null;
  meshRouteVersion = -1;

  /** Bytes this session holds in its queue and in its socket, charged to the host's budget. */
  private held = 0;
  private lastWriteProgressAt = performance.now();
  private relayProof: Uint8Array | null = null;
  private readonly createdAt = performance.now();
  private lastReadAt = performance.now();
  private lastKeepaliveAt = performance.now();
  private readonly reader = new RelayFrameReader();
  private readonly queue: SendQueue;
  private readonly arena = new FrameArena();
  private readonly bucket: TokenBucket;
  private readonly challenge = new Uint8Array(randomBytes(CHALLENGE_LEN));
  private inflight = 0;
  private flushScheduled = false;
  /** The socket is paused (rate limit, backpressure, or both). */
  private paused = false;
  private rateLimited = false;
  /** The destination whose full queue holds this sender's socket paused, since when, and the bound's timer. */
  private blockedOn: PauseTarget | null = null;
  private blockedAt = 0;
  private blockTimer: NodeJS.Timeout | null = null;
  /** Senders paused by this session's full data lane. */
  readonly blocked = new Set<PausableSender>();
  /** A sender's pause on this session hit maxPauseMs: drop instead of pausing until drained. */
  overrun = false;
  private early: Array<[number, Uint8Array, Uint8Array]> = [];
  private notHere = new Map<string, number>();

  constructor(private readonly ws: WebSocket, private readonly host: SessionHost, readonly remote: string) {
    const cfg = host.config;
    this.queue = new SendQueue(cfg.queue);
    this.bucket = new TokenBucket({ bytesPerSec: cfg.rateBytesPerSec, burstBytes: cfg.rateBurstBytes });
    ws.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.onSocketClosed());
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') host.counters.oversized++;
      host.logger.debug({ remote, err: err.message }, 'relay client socket error');
    });
    ws.send(encodeRelayFrame({ type: 'server-key', version: RELAY_PROTOCOL_VERSION, serverKey: host.relayPublicKey, challenge: this.challenge }));
  }

  /** Periodic duties, driven by the server's ticker. */
  tick(now: number): void {
    const cfg = this.host.config;
    if ((this.state === 'handshake' || this.state === 'authorizing') && now - this.createdAt > cfg.handshakeTimeoutMs + (this.state === 'authorizing' ? 5000 : 0)) {
      this.refuse('unauthenticated', 'no client-info in time');
    } else if (this.state === 'open') {
      if (this.held === 0) this.arena.release();
      if (this.held > 0 && now - this.lastWriteProgressAt > cfg.writeTimeoutMs) {
        this.host.counters.writeTimeouts++;
        this.host.logger.info({ remote: this.remote, node: Buffer.from(this.nodeKey).toString('base64'), queuedBytes: this.held }, 'relay client not reading: closed');
        this.close('write-timeout', `nothing read for ${cfg.writeTimeoutMs} ms`);
      } else if (!this.paused && now - this.lastReadAt > cfg.idleTimeoutMs) {
        this.host.counters.idleTimeouts++;
        this.close('idle-timeout', `nothing received for ${cfg.idleTimeoutMs} ms`);
      } else if (now - this.lastKeepaliveAt >= cfg.keepaliveMs) {
        this.lastKeepaliveAt = now;
        this.enqueue(encodeRelayFrame({ type: 'keepalive' }), true);
      }
    }
  }

  /**
   * Queues a data frame from `from` for this client, pausing `from` when it fills the data lane
   * (see the top of this file).
   */
  enqueueData(frame: Uint8Array, from: PausableSender, frames = 1): void {
    if (!this.enqueue(frame, false, true, frames)) return;
    if (this.queue.dataFull && !this.overrun && from !== this && from.state === 'open') from.blockOn(this);
  }

  /**
   * Queues a frame for this client; false if the session is not open. `forwarded`: the frame is a
   * view into someone else's receive buffer (the relay's own frames are not). `frames`: how many
   * frames lie back to back in `frame` (a forward-run's recv frames from the mesh).
   */
  enqueue(frame: Uint8Array, priority: boolean, forwarded = false, frames = 1): boolean {
    if (this.state !== 'open') return false;
    // A forwarded frame is a view into the sender's receive buffer: copied into the arena, where
    // it sits next to the frames queued before it (one ws message per flush, no concat). A large
    // one (a run from the mesh) keeps its view unless it waits behind others and is a small part
    // of its buffer (a queued view must not keep a 1 MiB buffer alive).
    if (forwarded && frame.length <= MAX_ARENA_FRAME) frame = this.arena.copy(frame);
    else if (this.queue.length > 0 && frame.byteLength * 2 < frame.buffer.byteLength) frame = Buffer.from(frame);
    if (this.held === 0) this.lastWriteProgressAt = performance.now();
    const before = this.queue.bytes;
    const dropped = this.queue.push(frame, priority, this.overrun, frames);
    this.charge(this.queue.bytes - before);
    if (dropped > 0) {
      if (priority) this.host.counters.drops.priorityOverflow += dropped;
      else this.host.counters.drops.queueOverflow += dropped;
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** Bytes waiting for this client (queue and socket). */
  get queuedBytes(): number {
    return this.held;
  }

  private charge(delta: number): void {
    this.held += delta;
    const b = this.host.budget;
    b.usedBytes += delta;
    if (b.usedBytes > b.peakBytes) b.peakBytes = b.usedBytes;
  }

  /** Pauses this sender's socket until `dst` drains or maxPauseMs passes. */
  blockOn(dst: PauseTarget): void {
    if (this.blockedOn !== null) return;
    this.blockedOn = dst;
    this.blockedAt = performance.now();
    dst.blocked.add(this);
    this.host.counters.backpressurePauses++;
    this.blockTimer = setTimeout(() => {
      this.host.counters.backpressureTimeouts++;
      dst.overrun = true;
      this.unblock();
    }, this.host.config.maxPauseMs);
    this.updatePause();
  }

  /** Ends this sender's backpressure pause. */
  unblock(): void {
    const dst = this.blockedOn;
    if (dst === null) return;
    if (this.blockTimer) clearTimeout(this.blockTimer);
    this.blockTimer = null;
    dst.blocked.delete(this);
    this.blockedOn = null;
    this.host.counters.backpressurePausedMs += Math.round(performance.now() - this.blockedAt);
    this.updatePause();
  }

  /** This session's data lane drained (or it is gone): its paused senders go on. */
  private releaseSenders(): void {
    this.overrun = false;
    for (const s of [...this.blocked]) s.unblock();
  }

  /** Pauses or resumes the socket for the rate limit and backpressure together. */
  private updatePause(): void {
    const want = this.rateLimited || this.blockedOn !== null;
    if (want === this.paused || this.state === 'closed') return;
    this.paused = want;
    if (want) {
      this.ws.pause();
    } else {
      this.lastReadAt = performance.now();
      if (this.state === 'open') this.ws.resume();
    }
  }

  /** Gives back everything this session held (it is gone; its socket's buffer goes with it). */
  private releaseAll(): void {
    this.unblock();
    this.releaseSenders();
    this.host.counters.drops.clientGone += this.queue.frames;
    this.queue.clear();
    this.host.budget.usedBytes -= this.held;
    this.held = 0;
  }

  /** Tells this client that `dst` is not connected here (at most once a second per key). */
  notifyNotHere(dst: Uint8Array): void {
    const id = Buffer.from(dst.buffer, dst.byteOffset, NODE_KEY_LEN).toString('hex');
    const now = performance.now();
    const last = this.notHere.get(id);
    if (last !== undefined && now - last < NOT_HERE_INTERVAL_MS) return;
    if (this.notHere.size > 1024) this.notHere.clear();
    this.notHere.set(id, now);
    this.host.counters.peerGoneSent++;
    this.enqueue(encodeRelayFrame({ type: 'peer-gone', nodeKey: Uint8Array.from(dst), reason: 'not-here' }), true);
  }

  /** Ends the session, telling the client why first. */
  close(notice: NoticeName | null, message = ''): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.releaseAll();
    this.early = [];
    try {
      // A paused socket (authorization, rate limit) would never read the client's close frame.
      this.ws.resume();
      if (notice) this.ws.send(encodeRelayFrame({ type: 'notice', code: NOTICE[notice], message }));
      this.ws.close(notice ? 4000 + NOTICE[notice] : 1000, notice ?? 'bye');
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
    this.host.unregister(this);
  }

  private refuse(notice: 'unauthenticated', message: string): void {
    this.host.counters.refused.unauthenticated++;
    this.host.logger.info({ remote: this.remote, reason: message }, 'relay client refused');
    this.close(notice, message);
  }

  private onSocketClosed(): void {
    if (this.state === 'closed') return;
    if (this.state === 'handshake') this.host.counters.refused.unauthenticated++;
    this.state = 'closed';
    this.releaseAll();
    this.host.unregister(this);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    const c = this.host.counters;
    c.bytesIn += data.length;
    this.lastReadAt = performance.now();
    if (!isBinary) {
      if (this.state === 'handshake') this.refuse('unauthenticated', 'text message');
      else this.close('protocol-error', 'text messages are not part of the protocol');
      return;
    }
    try {
      this.reader.push(data, this.onFrame);
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      c.oversized++;
      this.host.logger.info({ remote: this.remote, node: this.id || undefined }, 'relay client sent an oversized frame');
      if (this.state === 'handshake') c.refused.unauthenticated++;
      this.close('oversized', err.message);
      return;
    }
    if (this.state === 'open') {
      const waitMs = this.bucket.take(data.length);
      if (waitMs > 0) this.pauseFor(waitMs);
    }
  }

  private pauseFor(ms: number): void {
    if (this.rateLimited) return;
    this.rateLimited = true;
    this.host.counters.rateLimitPauses++;
    this.host.counters.rateLimitPausedMs += Math.round(ms);
    this.updatePause();
    setTimeout(() => {
      this.rateLimited = false;
      this.updatePause();
    }, Math.ceil(ms));
  }

  private readonly onFrame = (type: number, payload: Uint8Array, frame: Uint8Array): void => {
    this.host.counters.framesIn++;
    switch (this.state) {
      case 'open': return this.onOpenFrame(type, payload, frame);
      case 'handshake': return this.onHandshakeFrame(type, payload);
      case 'authorizing':
        if (this.early.length >= MAX_EARLY_FRAMES) this.close('protocol-error', 'too many frames before server-info');
        else this.early.push([type, payload, frame]);
        return;
      case 'closed': return;
    }
  };

  private onHandshakeFrame(type: number, payload: Uint8Array): void {
    if (type !== FRAME.CLIENT_INFO) return this.refuse('unauthenticated', `expected client-info, got frame type ${type}`);
    // The version first: an older client's client-info has another length.
    if (payload.length > 0 && payload[0] !== RELAY_PROTOCOL_VERSION) return this.refuse('unauthenticated', `protocol version ${payload[0]} is not ${RELAY_PROTOCOL_VERSION}`);
    let info;
    try {
      info = decodeRelayFrame(type, payload);
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      return this.refuse('unauthenticated', `malformed client-info: ${err.message}`);
    }
    if (info.type !== 'client-info') return;
    const h = this.host;
    const hs: RelayHandshake = { nodeKey: info.nodeKey, relayKey: h.relayPublicKey, challenge: this.challenge, clientNonce: info.clientNonce };
    const k = relayHandshakeKey(h.relayPrivateKey, info.nodeKey, hs);
    if (!k || !checkNodeProof(k, hs, info.proof)) {
      h.counters.refused.badProof++;
      h.logger.info({ remote: this.remote }, 'relay client refused: bad proof');
      return this.close('unauthenticated', 'proof of the node key did not verify');
    }
    this.relayProof = makeRelayProof(k, hs);
    this.nodeKey = Uint8Array.from(info.nodeKey);
    this.id = Buffer.from(this.nodeKey).toString('hex');
    this.state = 'authorizing';
    this.ws.pause();
    h.authorizer.authorize(this.nodeKey).then((r) => this.onAuthorized(r), () => this.onAuthorized('unavailable'));
  }

  private onAuthorized(result: AuthorizationResult): void {
    if (this.state !== 'authorizing') return;
    const h = this.host;
    if (result !== 'allowed') {
      if (result === 'denied') h.counters.refused.notAuthorized++;
      else h.counters.refused.authorizerUnavailable++;
      h.logger.info({ remote: this.remote, node: Buffer.from(this.nodeKey).toString('base64'), result }, 'relay client refused by the authorizer');
      return this.close(result === 'denied' ? 'not-authorized' : 'authorizer-unavailable', result === 'denied' ? 'node is not known to the coordinator' : 'could not ask the coordinator');
    }
    this.state = 'open';
    this.lastReadAt = performance.now();
    h.register(this);
    const cfg = h.config;
    this.enqueue(encodeRelayFrame({
      type: 'server-info', keepaliveMs: cfg.keepaliveMs, idleTimeoutMs: cfg.idleTimeoutMs,
      rateBytesPerSec: cfg.rateBytesPerSec, rateBurstBytes: cfg.rateBurstBytes, relayProof: this.relayProof!,
    }), true);
    const early = this.early;
    this.early = [];
    for (const [type, payload, frame] of early) {
      if (this.state !== 'open') return;
      this.onOpenFrame(type, payload, frame);
    }
    this.ws.resume();
  }

  private onOpenFrame(type: number, payload: Uint8Array, frame: Uint8Array): void {
    const c = this.host.counters;
    switch (type) {
      case FRAME.SEND: {
        const flags = payload[0]!;
        if (payload.length < SEND_HEADER_LEN || (flags & ~SEND_FLAG_PRIORITY) !== 0) {
          c.drops.badFrame++;
          return;
        }
        let priority = flags !== 0;
        // The priority lane is for disco-sized control messages, not for jumping the data queue.
        if (priority && payload.length - SEND_HEADER_LEN > MAX_PRIORITY_PACKET) {
          c.priorityDemoted++;
          priority = false;
        }
        this.host.forward(this, frame, payload.subarray(1, SEND_HEADER_LEN), priority);
        return;
      }
      case FRAME.KEEPALIVE:
        if (payload.length !== 0) c.drops.badFrame++;
        return;
      case FRAME.PING:
        if (payload.length !== PING_LEN) {
          c.drops.badFrame++;
          return;
        }
        this.enqueue(encodeRelayFrame({ type: 'pong', data: Uint8Array.from(payload) }), true);
        return;
      case FRAME.PONG:
        return;
      default:
        // Unknown or relay-to-client types: ignored, so newer clients keep working.
        c.drops.badFrame++;
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.state !== 'open') return;
    const c = this.host.counters;
    while (this.inflight < INFLIGHT_LIMIT && this.queue.length > 0) {
      const batch = this.queue.shiftBatch(BATCH_BYTES);
      const frames = this.queue.batchFrames;
      const total = batch.length;
      this.inflight += total;
      this.ws.send(batch, { binary: true }, (err) => {
        this.inflight -= total;
        if (err || this.state === 'closed') return; // releaseAll() already gave the bytes back
        this.charge(-total);
        this.arena.written(batch);
        this.lastWriteProgressAt = performance.now();
        c.framesOut += frames;
        c.bytesOut += total;
        if ((this.blocked.size > 0 || this.overrun) && this.queue.dataLow) this.releaseSenders();
        if (this.queue.length > 0 && !this.flushScheduled) {
          this.flushScheduled = true;
          setImmediate(() => this.flush());
        }
      });
    }
  }
}
