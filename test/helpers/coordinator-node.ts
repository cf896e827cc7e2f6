// A simulated node speaking the real control protocol (real keys, real proofs, a real WebSocket),
// without TUN or WireGuard: registers, holds its netmap stream, and keeps the netmap it was sent
// up to date from the deltas, validating every message against the wire schemas.
import { WebSocket } from 'ws';
import { deregistrationFields, makeProof, registrationFields, streamFields } from '../../proto/control/proof.js';
import { ServerInfo, ServerStreamMessage, type FilterRule, type Netmap, type NetmapDelta, type Peer, type SelfNode } from '../../proto/control/schemas.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import type { ApiResult } from './coordinator-process.js';

export interface RegisterOptions {
  authKey?: string;
  hostname: string;
  advertiseRoutes?: string[];
  advertiseExitNode?: boolean;
  /** Prove with this private key instead of the node's own (a forgery). */
  proveWith?: Uint8Array;
  /** Use this challenge instead of fetching a fresh one. */
  challenge?: string;
}

export class SimulatedNode {
  readonly privateKey = generatePrivateKey();
  readonly nodeKey = encodeKey(publicKeyFromPrivate(this.privateKey));
  readonly discoKey = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
  /** The challenge used by the last registration (to try replaying it). */
  lastChallenge = '';

  async register(url: string, opts: RegisterOptions): Promise<ApiResult> {
    const info = ServerInfo.parse(await (await fetch(`${url}/api/v1/server`)).json());
    const challenge = opts.challenge ?? info.challenge;
    this.lastChallenge = challenge;
    const fields = { nodeKey: this.nodeKey, discoKey: this.discoKey, hostname: opts.hostname };
    const proof = makeProof(opts.proveWith ?? this.privateKey, decodeKey(info.serverKey), challenge, registrationFields(fields));
    const body: Record<string, unknown> = { ...fields, challenge, proof };
    if (opts.authKey !== undefined) body.authKey = opts.authKey;
    if (opts.advertiseRoutes) body.advertiseRoutes = opts.advertiseRoutes;
    if (opts.advertiseExitNode !== undefined) body.advertiseExitNode = opts.advertiseExitNode;
    const res = await fetch(`${url}/api/v1/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() };
  }

  /** Registers and insists on success; returns the node as the coordinator sees itself. */
  async join(url: string, opts: RegisterOptions): Promise<SelfNode> {
    const r = await this.register(url, opts);
    if (r.status !== 200) throw new Error(`registration of ${opts.hostname} failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.node as SelfNode;
  }

  /** Logout: the node deletes itself, proving it holds its key (`proveWith`: a forgery). */
  async deregister(url: string, opts: { proveWith?: Uint8Array } = {}): Promise<ApiResult> {
    const info = ServerInfo.parse(await (await fetch(`${url}/api/v1/server`)).json());
    const proof = makeProof(opts.proveWith ?? this.privateKey, decodeKey(info.serverKey), info.challenge, deregistrationFields(this.nodeKey));
    const res = await fetch(`${url}/api/v1/deregister`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ nodeKey: this.nodeKey, challenge: info.challenge, proof }),
    });
    return { status: res.status, body: await res.json() };
  }

  connect(url: string, opts: StreamOptions = {}): Promise<StreamClient> {
    return StreamClient.open(url, this, opts);
  }
}

export interface StreamOptions {
  proveWith?: Uint8Array;
  answerOtherChallenge?: boolean;
  /** Sent in hello, e.g. ['peer-patches']. */
  capabilities?: string[];
}

export class StreamClient {
  netmap: Netmap | null = null;
  readonly peers = new Map<number, Peer>();
  self: SelfNode | null = null;
  packetFilter: FilterRule[] | null = null;
  readonly deltas: NetmapDelta[] = [];
  readonly errors: string[] = [];
  readonly pongs: number[] = [];
  /** Messages that did not validate, or seqs out of order: a test asserts this stays empty. */
  readonly violations: string[] = [];
  closed: { code: number; reason: string } | null = null;
  private lastSeq = -1;

  private constructor(readonly ws: WebSocket) {}

  static open(url: string, node: SimulatedNode, opts: StreamOptions): Promise<StreamClient> {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/stream`);
    const client = new StreamClient(ws);
    ws.on('message', (data) => {
      let parsed;
      try {
        parsed = ServerStreamMessage.safeParse(JSON.parse(data.toString()));
      } catch {
        client.violations.push('not JSON');
        return;
      }
      if (!parsed.success) {
        client.violations.push(parsed.error.message);
        return;
      }
      const msg = parsed.data;
      if (msg.type === 'challenge') {
        const challenge = opts.answerOtherChallenge ? `${msg.challenge}x` : msg.challenge;
        const proof = makeProof(opts.proveWith ?? node.privateKey, decodeKey(msg.serverKey), challenge, streamFields(node.nodeKey));
        ws.send(JSON.stringify({ type: 'hello', nodeKey: node.nodeKey, challenge, proof, ...(opts.capabilities ? { capabilities: opts.capabilities } : {}) }));
      } else if (msg.type === 'netmap') client.onNetmap(msg);
      else if (msg.type === 'delta') client.onDelta(msg);
      else if (msg.type === 'pong') client.pongs.push(msg.t);
      else if (msg.type === 'error') client.errors.push(msg.reason);
    });
    ws.on('close', (code, reason) => { client.closed = { code, reason: reason.toString() }; });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
    });
  }

  private onNetmap(m: Netmap): void {
    if (this.netmap || m.seq !== 0) this.violations.push(`netmap with seq ${m.seq} after ${this.lastSeq}`);
    this.lastSeq = m.seq;
    this.netmap = m;
    this.self = m.self;
    this.packetFilter = m.packetFilter;
    for (const p of m.peers) this.peers.set(p.id, p);
  }

  private onDelta(d: NetmapDelta): void {
    if (!this.netmap) this.violations.push('delta before the netmap');
    if (d.seq !== this.lastSeq + 1) this.violations.push(`delta seq ${d.seq} after ${this.lastSeq}`);
    this.lastSeq = d.seq;
    this.deltas.push(d);
    for (const p of d.upserts) this.peers.set(p.id, p);
    for (const patch of d.patches ?? []) {
      const peer = this.peers.get(patch.id);
      if (!peer) this.violations.push(`patch for unknown peer ${patch.id}`);
      else this.peers.set(patch.id, { ...peer, ...patch });
    }
    for (const id of d.removals) this.peers.delete(id);
    if (d.packetFilter !== undefined) this.packetFilter = d.packetFilter;
    if (d.self) this.self = d.self;
  }

  peerNamed(name: string): Peer | undefined {
    return [...this.peers.values()].find((p) => p.name === name);
  }

  /** Resolves once `check` holds (checked on every message and every 20 ms). */
  async waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  sendEndpoints(endpoints: string[], homeRelay: string | null = null): void {
    this.ws.send(JSON.stringify({ type: 'endpoints', endpoints, homeRelay }));
  }

  sendRaw(text: string): void {
    this.ws.send(text);
  }

  /** Stops reading the socket: WebSocket pings go unanswered, as with a dead peer. */
  stopResponding(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }

  terminate(): void {
    this.ws.terminate();
  }
}
