// A peer relay's connection into this one (it dialled us, mesh-link.ts is its side). After the
// peer proved its static key and the mesh credential, this relay announces its own clients to
// it (a snapshot, then every connect and disconnect) and delivers the forward-runs (or, from a
// version 1 peer, forward frames) it sends to the clients connected here — a run's recv frames go
// to the client's queue as they are, one entry, no copy — and only here: a frame for a key that is not connected here is dropped
// and counted, never forwarded again (one hop, no loops). A local client whose queue fills pauses
// this socket like it pauses a client (TCP flow control then reaches the peer relay's link queue).
import { randomBytes } from 'node:crypto';
import type { WebSocket } from 'ws';
import { isDecodeError } from '../proto/errors.js';
import { checkNodeProof, makeRelayProof, relayHandshakeKey, type RelayHandshake } from '../proto/relay/auth.js';
import { RelayFrameReader } from '../proto/relay/frame-reader.js';
import { CHALLENGE_LEN, encodeRelayFrame, FRAME, FRAME_HEADER_LEN, MAX_PRIORITY_PACKET, NODE_KEY_LEN, NOTICE, RELAY_PROTOCOL_VERSION, SEND_FLAG_PRIORITY, type NoticeName } from '../proto/relay/frames.js';
import { checkMeshProof, makeMeshProof, type MeshHandshake } from '../proto/relay/mesh-auth.js';
import {
  decodeMeshFrame, encodeMeshFrame, FORWARD_HEADER_LEN, forwardRunPackets, MAX_PRESENCE_ENTRIES, MESH_FRAME, MESH_PROTOCOL_VERSION, meshForwardToRecvInPlace,
  MIN_MESH_PROTOCOL_VERSION, RECV_FRAME_OVERHEAD, RUN_HEADER_LEN, type PresenceEntry,
} from '../proto/relay/mesh-frames.js';
import type { ClientSession, PausableSender, PauseTarget } from './client-session.js';
import { keyHex, keyText, sameKey, type MeshHost } from './mesh-host.js';

/** Presence and keepalives a peer relay has not read, above which it is closed. */
const MAX_UNREAD_BYTES = 8 * 1024 * 1024;
const CLOSE_GRACE_MS = 2000;

export class MeshSession implements PausableSender {
  state: 'handshake' | 'authorizing' | 'open' | 'closed' = 'handshake';
  peerKey: Uint8Array | null = null;
  private readonly challenge = new Uint8Array(randomBytes(CHALLENGE_LEN));
  private readonly reader = new RelayFrameReader();
  private readonly createdAt = performance.now();
  private lastReadAt = performance.now();
  private lastKeepaliveAt = performance.now();
  private blockedOn: PauseTarget | null = null;
  private blockTimer: NodeJS.Timeout | null = null;
  private lastTo: ClientSession | null = null;
  private readonly lastToKey = new Uint8Array(NODE_KEY_LEN);

  constructor(private readonly ws: WebSocket, private readonly host: MeshHost, readonly remote: string, private readonly onClosed: (s: MeshSession) => void) {
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    ws.on('close', () => this.closed());
    ws.on('error', () => undefined);
    ws.send(encodeRelayFrame({ type: 'server-key', version: RELAY_PROTOCOL_VERSION, serverKey: host.relayPublicKey, challenge: this.challenge }));
  }

  /** Tells the peer that keys connected here (or left). */
  announce(entries: PresenceEntry[]): void {
    if (this.state !== 'open') return;
    for (let i = 0; i < entries.length; i += MAX_PRESENCE_ENTRIES) {
      this.write(encodeMeshFrame({ type: 'presence', entries: entries.slice(i, i + MAX_PRESENCE_ENTRIES) }));
    }
  }

  tick(now: number): void {
    const cfg = this.host.config;
    if ((this.state === 'handshake' || this.state === 'authorizing') && now - this.createdAt > cfg.handshakeTimeoutMs + (this.state === 'authorizing' ? 5000 : 0)) {
      this.refuse(null, 'unauthenticated', 'no mesh-hello in time');
    } else if (this.state === 'open') {
      if (this.blockedOn === null && now - this.lastReadAt > cfg.idleTimeoutMs) this.close('idle-timeout', `nothing received for ${cfg.idleTimeoutMs} ms`);
      else if (now - this.lastKeepaliveAt >= cfg.keepaliveMs) {
        this.lastKeepaliveAt = now;
        this.write(new Uint8Array([FRAME.KEEPALIVE, 0, 0, 0, 0]));
      }
    }
  }

  blockOn(dst: PauseTarget): void {
    if (this.blockedOn !== null || this.state !== 'open') return;
    this.blockedOn = dst;
    dst.blocked.add(this);
    this.host.counters.backpressurePauses++;
    this.blockTimer = setTimeout(() => {
      this.host.counters.backpressureTimeouts++;
      dst.overrun = true;
      this.unblock();
    }, this.host.config.maxPauseMs);
    this.ws.pause();
  }

  unblock(): void {
    const dst = this.blockedOn;
    if (dst === null) return;
    if (this.blockTimer) clearTimeout(this.blockTimer);
    this.blockTimer = null;
    dst.blocked.delete(this);
    this.blockedOn = null;
    this.lastReadAt = performance.now();
    if (this.state === 'open') this.ws.resume();
  }

  close(notice: NoticeName | null, message = ''): void {
    if (this.state === 'closed') return;
    this.closed();
    try {
      this.ws.resume();
      if (notice) this.ws.send(encodeRelayFrame({ type: 'notice', code: NOTICE[notice], message }));
      this.ws.close(notice ? 4000 + NOTICE[notice] : 1000, notice ?? 'bye');
    } catch {
      this.ws.terminate();
    }
    setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS).unref();
  }

  private closed(): void {
    if (this.state === 'closed') return;
    if (this.state === 'open') this.host.counters.mesh.linksIn--;
    this.state = 'closed';
    this.lastTo = null;
    this.unblock();
    this.onClosed(this);
  }

  private refuse(counter: 'badProof' | 'badCredential' | 'notAuthorized' | 'malformed' | null, notice: NoticeName, why: string): void {
    if (counter) this.host.counters.mesh.refused[counter]++;
    this.host.logger.warn({ remote: this.remote, reason: why }, 'relay mesh peer refused');
    this.close(notice, why);
  }

  private write(frame: Uint8Array): void {
    if (this.ws.bufferedAmount > MAX_UNREAD_BYTES) {
      this.host.counters.writeTimeouts++;
      this.close('write-timeout', 'peer relay is not reading');
      return;
    }
    this.ws.send(frame);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    this.lastReadAt = performance.now();
    if (!isBinary) return this.refuse('malformed', 'protocol-error', 'text message on the mesh');
    try {
      this.reader.push(data, this.onFrame);
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      this.refuse('malformed', 'oversized', err.message);
    }
  }

  private readonly onFrame = (type: number, payload: Uint8Array, frame: Uint8Array): void => {
    if (this.state === 'open') {
      if (type === MESH_FRAME.FORWARD_RUN) return this.deliverRun(payload, frame);
      if (type === MESH_FRAME.FORWARD) return this.deliver(payload, frame);
      if (type === FRAME.KEEPALIVE && payload.length === 0) return;
      this.host.counters.mesh.drops.badFrame++;
      return;
    }
    if (this.state !== 'handshake') return;
    let f;
    try {
      f = decodeMeshFrame(type, payload);
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      return this.refuse('malformed', 'unauthenticated', `malformed mesh-hello: ${err.message}`);
    }
    if (f.type !== 'mesh-hello') return this.refuse('malformed', 'unauthenticated', `expected mesh-hello, got ${f.type}`);
    if (f.version < MIN_MESH_PROTOCOL_VERSION || f.version > MESH_PROTOCOL_VERSION) {
      return this.refuse('malformed', 'unauthenticated', `mesh protocol version ${f.version} is not ${MIN_MESH_PROTOCOL_VERSION}..${MESH_PROTOCOL_VERSION}`);
    }
    const h = this.host;
    const peerKey = Uint8Array.from(f.relayKey);
    const hs: RelayHandshake = { nodeKey: peerKey, relayKey: h.relayPublicKey, challenge: this.challenge, clientNonce: Uint8Array.from(f.nonce) };
    const k = relayHandshakeKey(h.relayPrivateKey, peerKey, hs);
    if (!k || !checkNodeProof(k, hs, f.keyProof)) return this.refuse('badProof', 'unauthenticated', 'peer relay did not prove its key');
    const mh: MeshHandshake = { dialerKey: peerKey, dialledKey: h.relayPublicKey, challenge: this.challenge, nonce: hs.clientNonce };
    if (!checkMeshProof(h.meshKey, mh, 'dialer', f.meshProof)) return this.refuse('badCredential', 'unauthenticated', `relay ${keyText(peerKey)} does not hold the mesh credential`);
    this.state = 'authorizing';
    this.ws.pause();
    h.authorizePeer(peerKey).then((r) => {
      if (this.state !== 'authorizing') return;
      if (r !== 'allowed') return this.refuse('notAuthorized', r === 'denied' ? 'not-authorized' : 'authorizer-unavailable', `relay ${keyText(peerKey)} is not a relay of the coordinator (${r})`);
      this.peerKey = peerKey;
      this.state = 'open';
      h.counters.mesh.linksIn++;
      this.lastReadAt = performance.now();
      this.ws.send(encodeMeshFrame({ type: 'mesh-welcome', keyProof: makeRelayProof(k, hs), meshProof: makeMeshProof(h.meshKey, mh, 'dialled') }));
      this.announce([...h.localKeys()].map((nodeKey) => ({ connected: true, nodeKey })));
      h.logger.info({ remote: this.remote, key: keyText(peerKey) }, 'relay mesh peer connected');
      this.ws.resume();
    }, () => this.refuse('notAuthorized', 'authorizer-unavailable', 'could not ask the coordinator'));
  };

  /** The open session here of the key at payload[1..33] (forward and forward-run put dst there), or null. */
  private destination(payload: Uint8Array): ClientSession | null {
    // One-entry cache: consecutive frames for one client skip the table (a replaced session is closed, so never open here).
    const to = this.lastTo;
    if (to !== null && to.state === 'open' && sameKey(this.lastToKey, payload, 1)) return to;
    const found = this.host.localSession(keyHex(payload.subarray(1, 1 + NODE_KEY_LEN)));
    if (found === undefined || found.state !== 'open') return null;
    this.lastTo = found;
    this.lastToKey.set(payload.subarray(1, 1 + NODE_KEY_LEN));
    return found;
  }

  /** A forward-run: its recv frames go to the client as they are, one queue entry. */
  private deliverRun(payload: Uint8Array, frame: Uint8Array): void {
    const c = this.host.counters;
    const n = forwardRunPackets(payload);
    if (n < 0) {
      c.mesh.drops.badFrame++;
      return;
    }
    const to = this.destination(payload);
    if (to === null) {
      c.mesh.drops.notHere += n;
      return;
    }
    const b = this.host.budget;
    if (b.usedBytes + frame.length > b.capBytes) {
      c.drops.globalBudget += n;
      return;
    }
    c.mesh.forwardedIn += n;
    c.packetsForwarded += n;
    const run = frame.subarray(FRAME_HEADER_LEN + RUN_HEADER_LEN);
    if (n === 1 && payload[0] !== 0 && run.length - RECV_FRAME_OVERHEAD <= MAX_PRIORITY_PACKET) to.enqueue(run, true, true);
    else to.enqueueData(run, this, n);
  }

  private deliver(payload: Uint8Array, frame: Uint8Array): void {
    const c = this.host.counters;
    const flags = payload[0];
    if (payload.length < FORWARD_HEADER_LEN || flags === undefined || (flags & ~SEND_FLAG_PRIORITY) !== 0) {
      c.mesh.drops.badFrame++;
      return;
    }
    const to = this.destination(payload);
    if (to === null) {
      c.mesh.drops.notHere++;
      return;
    }
    const b = this.host.budget;
    if (b.usedBytes + frame.length > b.capBytes) {
      c.drops.globalBudget++;
      return;
    }
    c.mesh.forwardedIn++;
    c.packetsForwarded++;
    const priority = flags !== 0 && payload.length - FORWARD_HEADER_LEN <= MAX_PRIORITY_PACKET;
    const out = meshForwardToRecvInPlace(frame);
    if (priority) to.enqueue(out, true, true);
    else to.enqueueData(out, this);
  }
}
