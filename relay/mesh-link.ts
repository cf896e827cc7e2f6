// The connection this relay dials to one peer relay of the mesh. It proves this relay's static
// key and the mesh credential (and checks the peer's), then carries two things: the peer's
// presence announcements in (which client keys are connected there), and forward-runs out
// (packets from our clients for keys connected there, forward-runs.ts: each packet copied once,
// into the batch the socket is handed, no buffer of its own). Its outbound queue is a client queue
// (send-queue.ts) with the same backpressure: a client filling it is paused, for at most
// maxPauseMs, then the queue drops its oldest frames instead. Lost connections are dialled again
// with backoff; everything the peer announced is forgotten meanwhile.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { isDecodeError } from '../proto/errors.js';
import { checkRelayProof, makeNodeProof, relayHandshakeKey, type RelayHandshake } from '../proto/relay/auth.js';
import { RelayFrameReader } from '../proto/relay/frame-reader.js';
import { CLIENT_NONCE_LEN, decodeRelayFrame, FRAME, MAX_FRAME_PAYLOAD, noticeName } from '../proto/relay/frames.js';
import { checkMeshProof, makeMeshProof, type MeshHandshake } from '../proto/relay/mesh-auth.js';
import {
  decodeMeshFrame, encodeMeshFrame, MAX_RUN_PACKET, MESH_PATH, MESH_PROTOCOL_VERSION, type PresenceEntry,
} from '../proto/relay/mesh-frames.js';
import type { PausableSender, PauseTarget } from './client-session.js';
import { ForwardRuns } from './forward-runs.js';
import { keyText, type MeshHost } from './mesh-host.js';
import { SendQueue } from './send-queue.js';

const INFLIGHT_LIMIT = 512 * 1024;
const BATCH_BYTES = 64 * 1024;
const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;

export interface MeshLinkEvents {
  /** The peer announced keys connected (or gone) there. */
  onPresence(link: MeshLink, entries: PresenceEntry[]): void;
  /** The link went down (forget what it announced). */
  onDown(link: MeshLink): void;
}

/** ws://HOST:PORT[/anything] (or http://) → ws://HOST:PORT/relay/mesh; throws on anything else. */
export function meshUrl(text: string): string {
  const u = new URL(text);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`not a ws://, wss://, http:// or https:// URL: ${text}`);
  u.pathname = MESH_PATH;
  u.search = '';
  u.hash = '';
  return u.toString();
}

export class MeshLink implements PauseTarget {
  state: 'connecting' | 'open' | 'closed' = 'connecting';
  /** The peer's static key, once it proved it. */
  peerKey: Uint8Array | null = null;
  /** Why the peer (or we) refused the last handshake, for the log and /healthz. */
  lastError = '';
  readonly blocked = new Set<PausableSender>();
  overrun = false;
  private ws: WebSocket | null = null;
  private readonly queue: SendQueue;
  /** Packets become forward-runs here, queued as each run closes (at the latest at the next flush). */
  private readonly runs = new ForwardRuns((run, packets, priority) => {
    const before = this.queue.bytes;
    const dropped = this.queue.push(run, priority, this.overrun, packets);
    this.charge(this.queue.bytes - before);
    if (dropped > 0) this.host.counters.mesh.drops.queueOverflow += dropped;
  });
  private held = 0;
  private inflight = 0;
  private flushScheduled = false;
  private backoffMs = MIN_BACKOFF_MS;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;
  /** The URL leads back to this relay: never dialled again. */
  isSelf = false;
  private lastReadAt = performance.now();
  private lastKeepaliveAt = performance.now();

  constructor(readonly url: string, private readonly host: MeshHost, private readonly events: MeshLinkEvents) {
    this.queue = new SendQueue(host.config.queue);
    this.dial();
  }

  /** Queues a client's send frame for `dst` (connected at this peer). */
  forward(from: PausableSender, src: Uint8Array, dst: Uint8Array, data: Uint8Array, priority: boolean): void {
    if (this.state !== 'open') {
      this.host.counters.mesh.drops.linkDown++;
      return;
    }
    if (data.length > MAX_RUN_PACKET) {
      this.host.counters.mesh.drops.tooLarge++;
      return;
    }
    this.runs.add(src, dst, data, priority);
    this.host.counters.mesh.forwardedOut++;
    if (!priority && this.queue.dataFull && !this.overrun && from.state === 'open') from.blockOn(this);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  tick(now: number): void {
    if (this.state !== 'open') return;
    const cfg = this.host.config;
    if (now - this.lastReadAt > cfg.idleTimeoutMs) {
      this.lastError = `nothing received for ${cfg.idleTimeoutMs} ms`;
      this.ws?.terminate();
    } else if (now - this.lastKeepaliveAt >= cfg.keepaliveMs) {
      this.lastKeepaliveAt = now;
      this.ws?.send(new Uint8Array([FRAME.KEEPALIVE, 0, 0, 0, 0]));
    }
  }

  close(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.ws?.terminate();
    this.down();
    this.state = 'closed';
  }

  private dial(): void {
    if (this.stopped) return;
    this.state = 'connecting';
    const ws = new WebSocket(this.url, {
      perMessageDeflate: false, maxPayload: 16 * (MAX_FRAME_PAYLOAD + 64), handshakeTimeout: this.host.config.handshakeTimeoutMs,
      // No RFC 6455 masking (an all-zero mask, which ws skips): it defends proxies against bytes a
      // browser's script chose; these are frames of two relays, and masking them in JS was 40% of
      // the dialer's CPU (and unmasking them a pass on the dialled side).
      generateMask: (mask: Buffer) => { mask.fill(0); },
    });
    this.ws = ws;
    const reader = new RelayFrameReader();
    const nonce = new Uint8Array(randomBytes(CLIENT_NONCE_LEN));
    let hs: RelayHandshake | null = null;
    let k: Uint8Array | null = null;
    let mh: MeshHandshake | null = null;
    let peerKey: Uint8Array | null = null;
    const fail = (why: string, counter?: 'badProof' | 'badCredential' | 'notAuthorized' | 'malformed'): void => {
      if (counter) this.host.counters.mesh.refused[counter]++;
      this.lastError = why;
      this.host.logger.warn({ peer: this.url, reason: why }, 'relay mesh link refused');
      ws.terminate();
    };
    const onFrame = (type: number, payload: Uint8Array): void => {
      if (ws !== this.ws) return;
      this.lastReadAt = performance.now();
      if (type === FRAME.SERVER_KEY && hs === null) {
        let sk;
        try {
          sk = decodeRelayFrame(type, payload);
        } catch {
          return fail('malformed server-key', 'malformed');
        }
        if (sk.type !== 'server-key') return;
        peerKey = Uint8Array.from(sk.serverKey);
        if (Buffer.from(peerKey).equals(Buffer.from(this.host.relayPublicKey))) {
          this.isSelf = true;
          this.stopped = true;
          this.host.logger.info({ peer: this.url }, 'relay mesh: this URL is this relay itself; not dialled again');
          ws.close();
          return;
        }
        hs = { nodeKey: this.host.relayPublicKey, relayKey: peerKey, challenge: Uint8Array.from(sk.challenge), clientNonce: nonce };
        k = relayHandshakeKey(this.host.relayPrivateKey, peerKey, hs);
        if (!k) return fail('peer relay key is not usable', 'badProof');
        mh = { dialerKey: this.host.relayPublicKey, dialledKey: peerKey, challenge: hs.challenge, nonce };
        ws.send(encodeMeshFrame({
          type: 'mesh-hello', version: MESH_PROTOCOL_VERSION, relayKey: this.host.relayPublicKey, nonce,
          keyProof: makeNodeProof(k, hs), meshProof: makeMeshProof(this.host.meshKey, mh, 'dialer'),
        }));
        return;
      }
      if (type === FRAME.NOTICE) {
        try {
          const n = decodeRelayFrame(type, payload);
          if (n.type === 'notice') this.lastError = `${noticeName(n.code)}: ${n.message}`;
        } catch { /* the close says enough */ }
        return;
      }
      if (type === FRAME.KEEPALIVE) return;
      let f;
      try {
        f = decodeMeshFrame(type, payload);
      } catch (err) {
        if (!isDecodeError(err)) throw err;
        this.host.counters.mesh.drops.badFrame++;
        return;
      }
      if (f.type === 'mesh-welcome' && this.state === 'connecting' && hs && k && mh && peerKey) {
        if (!checkRelayProof(k, hs, f.keyProof)) return fail('peer relay did not prove its key', 'badProof');
        if (!checkMeshProof(this.host.meshKey, mh, 'dialled', f.meshProof)) return fail('peer relay does not hold the mesh credential', 'badCredential');
        const key = peerKey;
        ws.pause();
        this.host.authorizePeer(key).then((r) => {
          if (ws !== this.ws) return;
          if (r !== 'allowed') return fail(`peer relay key ${keyText(key)} is not a relay of the coordinator (${r})`, 'notAuthorized');
          this.peerKey = key;
          this.state = 'open';
          this.backoffMs = MIN_BACKOFF_MS;
          this.lastError = '';
          this.host.counters.mesh.linksOut++;
          this.host.logger.info({ peer: this.url, key: keyText(key) }, 'relay mesh link up');
          ws.resume();
        }, () => fail('could not ask the coordinator', 'notAuthorized'));
        return;
      }
      if (f.type === 'presence' && this.state === 'open') {
        this.events.onPresence(this, f.entries);
        return;
      }
      this.host.counters.mesh.drops.badFrame++;
    };
    ws.on('message', (data: Buffer) => {
      if (ws !== this.ws) return;
      try {
        reader.push(data, onFrame);
      } catch (err) {
        if (!isDecodeError(err)) throw err;
        fail(`peer relay sent ${err.message}`, 'malformed');
      }
    });
    ws.on('error', (err) => { this.lastError = err.message; });
    ws.on('close', () => {
      if (ws !== this.ws) return;
      this.ws = null;
      this.down();
      if (this.stopped) {
        this.state = 'closed';
        return;
      }
      this.state = 'connecting';
      const delay = this.backoffMs;
      this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
      this.retry = setTimeout(() => { this.retry = null; this.dial(); }, delay);
    });
  }

  /** The connection is gone: release paused senders, drop what was queued, forget the peer's presence. */
  private down(): void {
    if (this.state === 'open') this.host.counters.mesh.linksOut--;
    if (this.state !== 'closed') this.state = 'connecting';
    this.overrun = false;
    for (const s of [...this.blocked]) s.unblock();
    this.host.counters.mesh.drops.linkDown += this.queue.frames + this.runs.discard();
    this.queue.clear();
    this.charge(-this.held);
    this.inflight = 0;
    this.events.onDown(this);
  }

  private charge(delta: number): void {
    this.held += delta;
    const b = this.host.budget;
    b.usedBytes += delta;
    if (b.usedBytes > b.peakBytes) b.peakBytes = b.usedBytes;
  }

  private flush(): void {
    this.flushScheduled = false;
    const ws = this.ws;
    if (this.state !== 'open' || !ws) return;
    this.runs.close();
    while (this.inflight < INFLIGHT_LIMIT && this.queue.length > 0) {
      const batch = this.queue.shiftBatch(BATCH_BYTES);
      const total = batch.length;
      this.inflight += total;
      ws.send(batch, { binary: true }, (err) => {
        if (ws !== this.ws || this.state !== 'open') return; // down() gave the bytes back
        this.inflight -= total;
        if (err) return;
        this.charge(-total);
        this.runs.written(batch);
        if ((this.blocked.size > 0 || this.overrun) && this.queue.dataLow) {
          this.overrun = false;
          for (const s of [...this.blocked]) s.unblock();
        }
        if (this.queue.length > 0 && !this.flushScheduled) {
          this.flushScheduled = true;
          setImmediate(() => this.flush());
        }
      });
    }
  }
}
