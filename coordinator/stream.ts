// The netmap stream: one WebSocket per node (GET /api/v1/stream, upgraded), inside a control
// channel whose Noise static key is the node key (control-channels.ts) — that is the proof.
//   client → {type:'hello', nodeKey, capabilities?}   nodeKey must be the channel's key
//   server → {type:'netmap', ...} once, then {type:'delta', ...} as things change (with
//            capabilities: ['peer-patches'], live changes come as patches instead of whole records)
//   client → {type:'endpoints', endpoints, homeRelay} whenever they change; {type:'ping', t} → pong
//   client → {type:'paths', natType, peers} its path table (when the netmap's serverCapabilities
//            lists 'path-reports'), coalesced, at most every PATH_REPORT_MIN_INTERVAL_MS (mesh-paths.ts)
// Keepalives both ways: the client pings at the application level, the server sends WebSocket
// pings every keepalive interval and drops a connection that stayed silent for a whole interval
// (the node then goes offline, which its peers hear about). The server's pings are spread over
// the interval (keepalive-wheel.ts), a slice of the connections every 100 ms. A client whose
// hello promised to ping at least twice per interval (`client-pings:N`, N ≤ interval / 2: agents
// ping every 15 s, the interval is 30 s) is not pinged: its own pings keep it heard from, and a
// silent interval drops it just the same.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { ClientStreamMessage, STREAM_CAPABILITIES, clientPingsPromise, describeZodError } from '../proto/control/schemas.js';
import { parseEndpoint } from '../proto/ip/address.js';
import { callerOf, type ChannelCaller } from './control-channels.js';
import { KeepaliveWheel, type WheelMember } from './keepalive-wheel.js';
import type { Logger } from './log.js';
import type { MeshPaths } from './mesh-paths.js';
import type { NetmapHub, NetmapSink } from './netmap.js';
import type { NodeRegistry } from './registry.js';

export const STREAM_PATH = '/api/v1/stream';
const MAX_MESSAGE_BYTES = 64 * 1024;

/** WebSocket close codes the coordinator uses (4xxx: application-defined). */
export const CloseCode = {
  shutdown: 1001,
  protocolError: 1008,
  unauthorized: 4001,
  replaced: 4002,
  forbidden: 4003,
} as const;

/** One inbound text message: the message, or why it is refused (one line). Never throws. */
export function parseClientStreamMessage(text: string): { ok: true; msg: ClientStreamMessage } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: 'not a JSON text message' };
  }
  const parsed = ClientStreamMessage.safeParse(json);
  return parsed.success ? { ok: true, msg: parsed.data } : { ok: false, error: describeZodError(parsed.error) };
}

export interface StreamServerOptions {
  registry: NodeRegistry;
  netmap: NetmapHub;
  meshPaths: MeshPaths;
  keepaliveMs: number;
  helloTimeoutMs?: number;
  log: Logger;
}

/** One node's authenticated stream: the sink its netmap deltas go to. */
class NodeStream implements NetmapSink {
  constructor(readonly ws: WebSocket, readonly nodeId: number, readonly acceptsPatches: boolean) {}

  get bufferedAmount(): number { return this.ws.bufferedAmount; }

  send(parts: Buffer[], onWritten?: () => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) return onWritten?.();
    const done = onWritten && ((): void => onWritten());
    if (parts.length === 1) return this.ws.send(parts[0]!, { binary: false }, done);
    // Fragments of one text message, corked into one write: shared parts are never copied.
    const socket = (this.ws as unknown as { _socket: Socket })._socket;
    socket.cork();
    parts.forEach((p, i) => {
      const last = i === parts.length - 1;
      this.ws.send(p, { binary: false, fin: last }, last ? done : undefined);
    });
    socket.uncork();
  }
}

interface Connection extends WheelMember {
  ws: WebSocket;
  caller: ChannelCaller | null;
  stream: NodeStream | null;
  /** Heard from (any message, or a pong) since the keepalive's last visit. */
  alive: boolean;
  /** Its hello promised pings often enough that the server need not send its own. */
  pingsItself: boolean;
}

export class StreamServer {
  private readonly wss: WebSocketServer;
  /** Every open connection, dealt into the keepalive rounds. */
  private readonly connections: KeepaliveWheel<Connection>;
  private readonly streams = new Map<number, NodeStream>();
  /** pingedByClient: streams accepted whose client pings often enough that the server does not. */
  readonly stats = { accepted: 0, refused: 0, malformed: 0, timedOut: 0, pingedByClient: 0 };

  constructor(private readonly opts: StreamServerOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES, perMessageDeflate: false, clientTracking: false });
    opts.registry.onChange((c) => {
      if (c.kind === 'removed') this.drop(c.node.id, CloseCode.forbidden, 'node deleted');
      else if (c.kind === 'updated' && c.membership && opts.registry.isExpired(c.node)) {
        this.drop(c.node.id, CloseCode.forbidden, 'node key expired: re-authenticate with an auth key');
      }
    });
    this.connections = new KeepaliveWheel(opts.keepaliveMs, (c) => this.keepalive(c));
  }

  get streamCount(): number { return this.streams.size; }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const caller = callerOf(socket);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, caller));
  }

  close(): void {
    this.connections.close();
    this.connections.forEach((c) => c.ws.close(CloseCode.shutdown, 'coordinator shutting down'));
    this.wss.close();
  }

  private accept(ws: WebSocket, caller: ChannelCaller | null): void {
    const conn: Connection = { ws, caller, stream: null, alive: true, pingsItself: false, wheelSlot: -1 };
    this.connections.add(conn);
    const helloTimer = setTimeout(() => {
      this.stats.timedOut++;
      this.refuse(conn, CloseCode.protocolError, 'no hello in time');
    }, this.opts.helloTimeoutMs ?? 10_000);
    ws.on('message', (data, isBinary) => {
      conn.alive = true;
      this.onMessage(conn, data, isBinary, helloTimer);
    });
    ws.on('pong', () => { conn.alive = true; });
    ws.on('error', (err) => this.opts.log.debug({ err: err.message }, 'stream error'));
    ws.on('close', () => {
      clearTimeout(helloTimer);
      this.connections.delete(conn);
      const s = conn.stream;
      if (!s) return;
      this.opts.netmap.detach(s);
      if (this.streams.get(s.nodeId) === s) {
        this.streams.delete(s.nodeId);
        this.opts.registry.setOnline(s.nodeId, false);
      }
    });
  }

  private onMessage(conn: Connection, data: RawData, isBinary: boolean, helloTimer: NodeJS.Timeout): void {
    const parsed = isBinary ? { ok: false as const, error: 'not a JSON text message' } : parseClientStreamMessage(data.toString());
    if (!parsed.ok) return this.malformed(conn, parsed.error);
    const msg = parsed.msg;
    if (!conn.stream) {
      if (msg.type !== 'hello') return this.refuse(conn, CloseCode.protocolError, 'expected hello first');
      clearTimeout(helloTimer);
      return this.hello(conn, msg);
    }
    switch (msg.type) {
      case 'hello':
        return this.malformed(conn, 'hello already received');
      case 'ping':
        conn.ws.send(JSON.stringify({ type: 'pong', t: msg.t }));
        return;
      case 'endpoints': {
        const endpoints = [...new Set(msg.endpoints)];
        for (const e of endpoints) {
          try {
            parseEndpoint(e);
          } catch (err) {
            return this.malformed(conn, `endpoints: ${(err as Error).message}`);
          }
        }
        this.opts.registry.setEndpoints(conn.stream.nodeId, endpoints, msg.homeRelay ?? null, msg.natKind);
        return;
      }
      case 'paths':
        this.opts.meshPaths.report(conn.stream.nodeId, msg);
        return;
    }
  }

  private hello(conn: Connection, hello: { nodeKey: string; capabilities?: string[] }): void {
    const { registry } = this.opts;
    if (!conn.caller || conn.caller.key !== hello.nodeKey) {
      return this.refuse(conn, CloseCode.unauthorized, 'hello names a node key other than the control channel\'s');
    }
    const node = registry.getByKey(hello.nodeKey);
    if (!node) return this.refuse(conn, CloseCode.unauthorized, 'unknown node key: register first');
    if (registry.isExpired(node)) return this.refuse(conn, CloseCode.forbidden, 'node key expired: re-authenticate with an auth key');
    const stream = new NodeStream(conn.ws, node.id, hello.capabilities?.includes(STREAM_CAPABILITIES.peerPatches) ?? false);
    conn.stream = stream;
    const promisedMs = clientPingsPromise(hello.capabilities);
    conn.pingsItself = promisedMs !== null && promisedMs * 2 <= this.opts.keepaliveMs;
    if (conn.pingsItself) this.stats.pingedByClient++;
    const old = this.streams.get(node.id);
    this.streams.set(node.id, stream);
    if (old) old.ws.close(CloseCode.replaced, 'replaced by a newer stream');
    this.stats.accepted++;
    conn.caller.authenticated();
    registry.setOnline(node.id, true);
    this.opts.netmap.attach(stream);
  }

  private malformed(conn: Connection, reason: string): void {
    this.stats.malformed++;
    if (!conn.stream) return this.refuse(conn, CloseCode.protocolError, `bad hello: ${reason}`);
    // After hello a bad message is dropped and reported; the stream stays up.
    conn.ws.send(JSON.stringify({ type: 'error', reason: `bad message: ${reason}` }));
  }

  private refuse(conn: Connection, code: number, reason: string): void {
    this.stats.refused++;
    if (conn.ws.readyState !== WebSocket.OPEN) return;
    conn.ws.send(JSON.stringify({ type: 'error', reason }));
    conn.ws.close(code, reason.slice(0, 120));
  }

  private drop(nodeId: number, code: number, reason: string): void {
    const s = this.streams.get(nodeId);
    if (!s || s.ws.readyState !== WebSocket.OPEN) return;
    s.ws.send(JSON.stringify({ type: 'error', reason }));
    s.ws.close(code, reason);
  }

  /**
   * Visits a connection once per keepalive interval: one not heard from since the previous visit
   * is dropped; the others are pinged, unless they ping often enough themselves.
   */
  private keepalive(c: Connection): void {
    if (!c.alive) {
      c.ws.terminate();
      return;
    }
    c.alive = false;
    if (!c.pingsItself) c.ws.ping();
  }
}
