// Live updates for open consoles, as server-sent events on GET /admin/api/events:
//   event: node          data: NodeInfo             (added or changed)
//   event: node-removed  data: {"id": N}
//   event: paths         data: {"nodeId": N, "paths": NodePaths | null}
// Changes are coalesced per node and flushed every FLUSH_MS to every stream (one registry listener
// and one MeshPaths subscription for all of them). Bounded: at most MAX_STREAMS streams; a stream
// whose socket buffers more than MAX_BUFFERED bytes is closed (its page reconnects and reloads).
import type { ServerResponse } from 'node:http';
import type { NodeInfo } from '../../proto/control/schemas.js';
import type { MeshPaths } from '../mesh-paths.js';
import type { NodeRecord, NodeRegistry } from '../registry.js';

export const MAX_STREAMS = 16;
export const FLUSH_MS = 200;
export const MAX_BUFFERED = 1024 * 1024;
const KEEPALIVE_MS = 15_000;

interface Stream { res: ServerResponse; sessionId: string }

export class ConsoleEvents {
  private readonly streams = new Set<Stream>();
  private readonly dirtyNodes = new Set<number>();
  private readonly dirtyPaths = new Set<number>();
  private readonly unsubscribe: () => void;
  private readonly flushTimer: NodeJS.Timeout;
  private readonly keepaliveTimer: NodeJS.Timeout;
  private closed = false;
  readonly stats = { refusedFull: 0, closedSlow: 0 };

  constructor(private readonly registry: NodeRegistry, private readonly meshPaths: MeshPaths, private readonly toInfo: (n: NodeRecord) => NodeInfo) {
    registry.onChange((c) => { if (!this.closed && this.streams.size > 0) this.dirtyNodes.add(c.node.id); });
    this.unsubscribe = meshPaths.subscribe((c) => { if (this.streams.size > 0) this.dirtyPaths.add(c.nodeId); });
    this.flushTimer = setInterval(() => this.flush(), FLUSH_MS);
    this.keepaliveTimer = setInterval(() => this.write(': keepalive\n\n'), KEEPALIVE_MS);
    this.flushTimer.unref();
    this.keepaliveTimer.unref();
  }

  get size(): number { return this.streams.size; }

  /** Starts a stream on `res`; false (nothing written) when MAX_STREAMS are open. */
  attach(res: ServerResponse, sessionId: string): boolean {
    if (this.closed || this.streams.size >= MAX_STREAMS) { this.stats.refusedFull++; return false; }
    const stream: Stream = { res, sessionId };
    this.streams.add(stream);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 1000\n\n');
    res.socket?.setTimeout(0);
    res.on('close', () => this.streams.delete(stream));
    return true;
  }

  /** Closes the streams of a session (it signed out or expired). */
  endSession(sessionId: string): void {
    for (const s of [...this.streams]) if (s.sessionId === sessionId) this.drop(s);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.flushTimer);
    clearInterval(this.keepaliveTimer);
    this.unsubscribe();
    for (const s of [...this.streams]) this.drop(s);
  }

  private flush(): void {
    if (this.dirtyNodes.size === 0 && this.dirtyPaths.size === 0) return;
    const parts: string[] = [];
    for (const id of this.dirtyNodes) {
      const n = this.registry.get(id);
      parts.push(n ? event('node', this.toInfo(n)) : event('node-removed', { id }));
    }
    for (const id of this.dirtyPaths) parts.push(event('paths', { nodeId: id, paths: this.meshPaths.get(id) ?? null }));
    this.dirtyNodes.clear();
    this.dirtyPaths.clear();
    this.write(parts.join(''));
  }

  private write(text: string): void {
    for (const s of [...this.streams]) {
      if (s.res.writableLength > MAX_BUFFERED) { this.stats.closedSlow++; this.drop(s); continue; }
      s.res.write(text);
    }
  }

  private drop(s: Stream): void {
    this.streams.delete(s);
    s.res.end();
  }
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}
