// A simulated node speaking the real control protocol (real keys, a real Noise control channel
// opened with its node key, a real WebSocket inside it), without TUN or WireGuard: registers, holds its netmap stream, and keeps the netmap it was sent
// up to date from the deltas, validating every message against the wire schemas.
import { WebSocket } from 'ws';
import { ServerStreamMessage, type FilterRule, type Netmap, type NetmapDelta, type Peer, type SelfNode } from '../../proto/control/schemas.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { channelCall, openChannel, type ApiResult } from './control-client.js';

export interface RegisterOptions {
  authKey?: string;
  hostname: string;
  advertiseRoutes?: string[];
  advertiseExitNode?: boolean;
  /** What the agent says it runs (unknown: to send bad values too); absent, as an older agent. */
  os?: unknown;
  version?: unknown;
  /** Open the channel with this private key instead of the node's own (a forgery). */
  proveWith?: Uint8Array;
}

export class SimulatedNode {
  readonly privateKey = generatePrivateKey();
  readonly nodeKey = encodeKey(publicKeyFromPrivate(this.privateKey));
  readonly discoKey = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
  async register(url: string, opts: RegisterOptions): Promise<ApiResult> {
    const body: Record<string, unknown> = { nodeKey: this.nodeKey, discoKey: this.discoKey, hostname: opts.hostname };
    if (opts.authKey !== undefined) body.authKey = opts.authKey;
    if (opts.advertiseRoutes) body.advertiseRoutes = opts.advertiseRoutes;
    if (opts.advertiseExitNode !== undefined) body.advertiseExitNode = opts.advertiseExitNode;
    if (opts.os !== undefined) body.os = opts.os;
    if (opts.version !== undefined) body.version = opts.version;
    return channelCall(url, opts.proveWith ?? this.privateKey, 'POST', '/api/v1/register', { body });
  }

  /** Registers and insists on success; returns the node as the coordinator sees itself. */
  async join(url: string, opts: RegisterOptions): Promise<SelfNode> {
    const r = await this.register(url, opts);
    if (r.status !== 200) throw new Error(`registration of ${opts.hostname} failed: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body.node as SelfNode;
  }

  /** Logout: the node deletes itself, in a channel opened with its key (`proveWith`: a forgery). */
  async deregister(url: string, opts: { proveWith?: Uint8Array } = {}): Promise<ApiResult> {
    return channelCall(url, opts.proveWith ?? this.privateKey, 'POST', '/api/v1/deregister', { body: { nodeKey: this.nodeKey } });
  }

  connect(url: string, opts: StreamOptions = {}): Promise<StreamClient> {
    return StreamClient.open(url, this, opts);
  }
}

export interface StreamOptions {
  /** Open the channel with this private key instead of the node's own (a forgery). */
  proveWith?: Uint8Array;
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

  static async open(url: string, node: SimulatedNode, opts: StreamOptions): Promise<StreamClient> {
    const { channel } = await openChannel(url, opts.proveWith ?? node.privateKey);
    const ws = new WebSocket('ws://coordinator/api/v1/stream', { createConnection: () => channel as never });
    const client = new StreamClient(ws);
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'hello', nodeKey: node.nodeKey, ...(opts.capabilities ? { capabilities: opts.capabilities } : {}) }));
    });
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
      if (msg.type === 'netmap') client.onNetmap(msg);
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
    // The ws socket is the Noise channel; pausing it stops reading the TCP socket under it.
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
