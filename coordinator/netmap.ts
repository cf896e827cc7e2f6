// Netmaps and their deltas, fanned out to every connected node. A change to node B touches only
// the nodes that see B (visibility.ts); it is queued, not sent: a flush every few tens of
// milliseconds turns everything queued into one delta per recipient. Each changed peer is
// encoded once per change (peer-records.ts), and recipients with the same pending changes share
// one encoded body, so with N nodes a batch of k changes costs k encodings and N small sends,
// not N×k encodings. With no policy every node sees every node: changes then go into one shared
// "broadcast" batch instead of N per-recipient queues.
import { SERVER_CAPABILITIES, type FilterRule, type RelayInfo } from '../proto/control/schemas.js';
import type { DnsConfig } from '../proto/dns/dns-config.js';
import type { Logger } from './log.js';
import { NetmapAdmission } from './netmap-admission.js';
import { CHANGED_ENDPOINTS, CHANGED_ONLINE, CHANGED_RECORD, PeerRecords, coalesce, selfOf } from './peer-records.js';
import type { CompiledPolicy } from './policy.js';
import { policyNodeOf, type NodeChange, type NodeRecord, type NodeRegistry } from './registry.js';
import { EveryoneVisibility, PolicyVisibility, type Visibility } from './visibility.js';

const SERVER_CAPABILITIES_JSON = JSON.stringify(Object.values(SERVER_CAPABILITIES));

/** Where a node's netmap messages go (its stream). */
export interface NetmapSink {
  readonly nodeId: number;
  /** The stream asked for patches (changed live fields) instead of whole peer records. */
  readonly acceptsPatches: boolean;
  /** Bytes queued but not yet written to the network: recipients over HIGH_WATER are skipped. */
  readonly bufferedAmount: number;
  /**
   * Sends one message made of these parts, in order, without copying them into one buffer (a
   * delta body is shared between recipients; a netmap is made of cached blocks). `onWritten` runs
   * once it left for the network, or the stream is gone.
   */
  send(parts: Buffer[], onWritten?: () => void): void;
}

export interface NetmapOptions {
  /** How long changes are gathered before a flush (the lower bound: it grows under load). */
  flushMs: number;
  relays: RelayInfo[];
  /** The DNS domain and split-DNS routes every node gets. */
  dns: DnsConfig;
  log: Logger;
  /**
   * After each flush that sent deltas: ms from the first change it carries being queued to the
   * last recipient's delta handed to its socket, and how many recipients got one (metrics).
   */
  onFanOut?: (ms: number, recipients: number) => void;
}

interface Subscriber {
  sink: NetmapSink;
  seq: number;
  /** peer id → what changed (CHANGED_* bits) */
  upserts: Map<number, number>;
  removals: Set<number>;
  filterDirty: boolean;
  selfDirty: boolean;
  lastFilter: string;
  /** After a policy change: the view this subscriber's peers were last in line with. */
  syncedTo: Visibility | null;
}

/** A recipient this far behind gets no new deltas until it drains; its changes keep coalescing. */
const HIGH_WATER = 8 * 1024 * 1024;
/** Recipients served per turn of the event loop during a flush. */
const FLUSH_SLICE = 512;
/**
 * Under load the next flush waits LOAD_FACTOR times the last one's duration, so the per-recipient
 * cost of a flush is paid less often while changes pile up into bigger batches. Capped: the cost
 * of a flush also grows with the bytes it carries, and an unbounded wait would feed on itself.
 */
const LOAD_FACTOR = 2;
const MAX_FLUSH_DELAY_MS = 250;

export class NetmapHub {
  private visibility: Visibility = new EveryoneVisibility();
  private readonly records: PeerRecords;
  private readonly relaysJson: string;
  private readonly dnsJson: string;
  private readonly subscribers = new Map<number, Subscriber>();
  /** Subscribers with something of their own queued. */
  private readonly dirty = new Set<Subscriber>();
  /** Everyone mode: changes every subscriber gets (peer id → CHANGED_* bits). */
  private broadcastUpserts = new Map<number, number>();
  private broadcastRemovals = new Set<number>();
  private readonly admission = new NetmapAdmission();
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing = false;
  /** Not before this time (performance clock, ms): set from the last flush's cost. */
  private nextFlushNotBefore = 0;
  /** When the oldest change not yet flushed was queued (performance clock, ms); null: none waiting. */
  private pendingSince: number | null = null;
  private closed = false;
  readonly stats = { flushes: 0, deltas: 0, deltaBytes: 0, netmaps: 0, netmapBytes: 0, skippedBehind: 0 };

  constructor(private readonly registry: NodeRegistry, private readonly opts: NetmapOptions) {
    this.relaysJson = JSON.stringify(opts.relays);
    this.dnsJson = JSON.stringify(opts.dns);
    this.records = new PeerRecords(registry);
    this.rebuild(null);
    registry.onChange((c) => this.onChange(c));
  }

  /** Starts a node's stream of netmaps: the full map as soon as there is room, deltas after it. */
  attach(sink: NetmapSink): void {
    if (!this.registry.get(sink.nodeId)) throw new RangeError(`attach: no node ${sink.nodeId}`);
    this.detachNode(sink.nodeId);
    this.admission.admit(sink, () => this.sendNetmap(sink));
  }

  detach(sink: NetmapSink): void {
    this.admission.forget(sink);
    if (this.subscribers.get(sink.nodeId)?.sink === sink) this.detachNode(sink.nodeId);
  }

  /**
   * Replaces the policy (null: everyone sees everyone). Each subscriber's peer list is diffed
   * against the new view when its next delta is built, in the sliced flush: with N nodes that is
   * N×N work, which must not stall the event loop in one piece.
   */
  setPolicy(policy: CompiledPolicy | null): void {
    const old = this.visibility;
    this.rebuild(policy);
    for (const sub of this.subscribers.values()) {
      this.absorbBroadcast(sub, this.broadcastUpserts, this.broadcastRemovals);
      sub.syncedTo ??= old;
      sub.filterDirty = true;
      this.dirty.add(sub);
    }
    this.broadcastUpserts = new Map();
    this.broadcastRemovals = new Set();
    this.scheduleFlush();
  }

  /** Queues what differs between the view a subscriber was in line with and the current one. */
  private resync(sub: Subscriber, old: Visibility): void {
    const id = sub.sink.nodeId;
    const before = new Set(old.peersOf(id));
    for (const p of this.visibility.peersOf(id)) {
      if (before.delete(p)) continue;
      sub.removals.delete(p);
      sub.upserts.set(p, CHANGED_RECORD);
    }
    for (const p of before) {
      sub.upserts.delete(p);
      sub.removals.add(p);
    }
  }

  close(): void {
    this.closed = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
  }

  private sendNetmap(sink: NetmapSink): void {
    const node = this.registry.get(sink.nodeId);
    if (!node) return;
    const lastFilter = JSON.stringify(this.visibility.filterFor(node.id));
    const peers = this.visibility.everyone ? this.records.allExcept(node.id) : this.records.list(this.visibility.peersOf(node.id));
    const message = coalesce([
      Buffer.from(`{"type":"netmap","seq":0,"self":${JSON.stringify(selfOf(node))},"peers":[`),
      ...peers,
      Buffer.from(`],"packetFilter":${lastFilter},"relays":${this.relaysJson},"dns":${this.dnsJson},"serverCapabilities":${SERVER_CAPABILITIES_JSON}}`),
    ]);
    const sub: Subscriber = { sink, seq: 0, upserts: new Map(), removals: new Set(), filterDirty: false, selfDirty: false, lastFilter, syncedTo: null };
    this.subscribers.set(node.id, sub);
    const size = message.reduce((n, b) => n + b.length, 0);
    this.stats.netmaps++;
    this.stats.netmapBytes += size;
    sink.send(message, this.admission.track(sink, size));
  }

  private rebuild(policy: CompiledPolicy | null): void {
    this.visibility = policy ? new PolicyVisibility(policy) : new EveryoneVisibility();
    this.records.clearActive();
    for (const n of this.registry.all()) {
      if (this.registry.isExpired(n)) continue;
      this.visibility.update(policyNodeOf(n));
      this.records.setActive(n.id, true);
    }
  }

  private detachNode(id: number): void {
    const sub = this.subscribers.get(id);
    if (!sub) return;
    this.subscribers.delete(id);
    this.dirty.delete(sub);
  }

  private onChange(c: NodeChange): void {
    const id = c.node.id;
    this.records.invalidate(id);
    if (c.kind === 'added') {
      if (!this.registry.isExpired(c.node)) this.join(c.node);
    } else if (c.kind === 'removed') {
      this.leave(id);
    } else if (c.membership) {
      this.reevaluate(c.node);
      if (c.self) this.markSelf(id);
    } else if (this.visibility.has(id)) {
      this.touch(id, c.live === 'endpoints' ? CHANGED_ENDPOINTS : c.live === 'online' ? CHANGED_ONLINE : CHANGED_RECORD);
    }
    this.scheduleFlush();
  }

  /** The node changed: every node that sees it gets the change. */
  private touch(id: number, changed: number): void {
    if (this.visibility.everyone) {
      this.broadcastRemovals.delete(id);
      this.broadcastUpserts.set(id, (this.broadcastUpserts.get(id) ?? 0) | changed);
      return;
    }
    for (const p of this.visibility.peersOf(id)) {
      const sub = this.subscribers.get(p);
      if (sub) this.queue(sub, id, changed);
    }
  }

  private join(node: NodeRecord): void {
    this.visibility.update(policyNodeOf(node));
    this.records.setActive(node.id, true);
    const own = this.subscribers.get(node.id);
    if (this.visibility.everyone) {
      this.touch(node.id, CHANGED_RECORD);
      if (own) for (const p of this.visibility.peersOf(node.id)) this.queue(own, p, CHANGED_RECORD);
      return;
    }
    for (const p of this.visibility.peersOf(node.id)) {
      const sub = this.subscribers.get(p);
      if (sub) this.queue(sub, node.id, CHANGED_RECORD);
      if (own) this.queue(own, p, CHANGED_RECORD);
    }
    this.markFilters(this.visibility.filterDependents(node.id), node.id);
  }

  private leave(id: number): void {
    if (!this.visibility.has(id)) return;
    const peers = [...this.visibility.peersOf(id)];
    const deps = [...this.visibility.filterDependents(id)];
    this.visibility.remove(id);
    this.records.setActive(id, false);
    const own = this.subscribers.get(id);
    if (own) for (const p of peers) this.queueRemoval(own, p);
    if (this.visibility.everyone) {
      this.broadcastUpserts.delete(id);
      this.broadcastRemovals.add(id);
      return;
    }
    for (const p of peers) {
      const sub = this.subscribers.get(p);
      if (sub) this.queueRemoval(sub, id);
    }
    this.markFilters(deps, id);
  }

  /** Tags, routes, name or expiry changed: the node's peers may change, and their filters. */
  private reevaluate(node: NodeRecord): void {
    const id = node.id;
    if (this.registry.isExpired(node)) return this.leave(id);
    if (!this.visibility.has(id)) return this.join(node);
    if (this.visibility.everyone) {
      this.visibility.update(policyNodeOf(node));
      return this.touch(id, CHANGED_RECORD);
    }
    const before = new Set(this.visibility.peersOf(id));
    const deps = new Set(this.visibility.filterDependents(id));
    this.visibility.update(policyNodeOf(node));
    const own = this.subscribers.get(id);
    for (const p of this.visibility.peersOf(id)) {
      const isNew = !before.delete(p);
      const sub = this.subscribers.get(p);
      if (sub) this.queue(sub, id, CHANGED_RECORD);
      if (own && isNew) this.queue(own, p, CHANGED_RECORD);
    }
    for (const p of before) {
      const sub = this.subscribers.get(p);
      if (sub) this.queueRemoval(sub, id);
      if (own) this.queueRemoval(own, p);
    }
    for (const d of this.visibility.filterDependents(id)) deps.add(d);
    this.markFilters(deps, id);
  }

  private markFilters(ids: Iterable<number>, self: number): void {
    for (const d of [self, ...ids]) {
      const sub = this.subscribers.get(d);
      if (sub) {
        sub.filterDirty = true;
        this.dirty.add(sub);
      }
    }
  }

  private markSelf(id: number): void {
    const sub = this.subscribers.get(id);
    if (!sub) return;
    sub.selfDirty = true;
    this.dirty.add(sub);
  }

  private queue(sub: Subscriber, peer: number, changed: number): void {
    if (peer === sub.sink.nodeId) return;
    sub.removals.delete(peer);
    sub.upserts.set(peer, (sub.upserts.get(peer) ?? 0) | changed);
    this.dirty.add(sub);
  }

  private queueRemoval(sub: Subscriber, peer: number): void {
    if (peer === sub.sink.nodeId) return;
    sub.upserts.delete(peer);
    sub.removals.add(peer);
    this.dirty.add(sub);
  }

  /** Moves a shared batch into one subscriber's own queue (it was behind, or the policy changed). */
  private absorbBroadcast(sub: Subscriber, ups: Map<number, number>, rems: Set<number>): void {
    for (const [p, changed] of ups) this.queue(sub, p, changed);
    for (const p of rems) this.queueRemoval(sub, p);
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.flushing || this.closed) return;
    if (this.dirty.size === 0 && this.broadcastUpserts.size === 0 && this.broadcastRemovals.size === 0) return;
    const delay = Math.max(this.opts.flushMs, this.nextFlushNotBefore - performance.now());
    this.pendingSince ??= performance.now();
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      void this.flush();
    }, delay);
  }

  /** Sends every queued change, a slice of recipients per turn of the event loop. */
  private async flush(): Promise<void> {
    this.flushing = true;
    const started = performance.now();
    const queuedAt = this.pendingSince ?? started;
    this.pendingSince = null;
    const ups = this.broadcastUpserts;
    const rems = this.broadcastRemovals;
    this.broadcastUpserts = new Map();
    this.broadcastRemovals = new Set();
    const broadcast = ups.size > 0 || rems.size > 0 ? { ups, rems } : null;
    const targets = broadcast ? [...this.subscribers.values()] : [...this.dirty];
    const shared = new Map<string, Buffer>();
    let sent = 0;
    const cpu0 = process.cpuUsage();
    try {
      for (let i = 0; i < targets.length; i++) {
        const sub = targets[i]!;
        if (this.subscribers.get(sub.sink.nodeId) !== sub) continue; // gone meanwhile
        if (sub.sink.bufferedAmount > HIGH_WATER) {
          if (broadcast) this.absorbBroadcast(sub, ups, rems);
          this.stats.skippedBehind++;
          continue;
        }
        this.dirty.delete(sub);
        if (this.sendDelta(sub, broadcast, shared)) sent++;
        if ((i + 1) % FLUSH_SLICE === 0) await new Promise<void>((r) => setImmediate(r));
      }
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'netmap flush failed');
    } finally {
      const ended = performance.now();
      const cost = ended - started;
      this.stats.flushes++;
      // Under load, gather for longer: a flush costs about the same for 1 change as for 50.
      this.nextFlushNotBefore = ended + Math.min(MAX_FLUSH_DELAY_MS, LOAD_FACTOR * cost);
      this.flushing = false;
      if (sent > 0) {
        this.opts.onFanOut?.(ended - queuedAt, sent);
        const cpu = process.cpuUsage(cpu0);
        this.opts.log.debug({ recipients: sent, changes: ups.size + rems.size, ms: Math.round(cost), cpuMs: Math.round((cpu.user + cpu.system) / 1000) }, 'netmap flush');
      }
      this.scheduleFlush();
    }
  }

  /** One delta for one recipient; false if it turned out to have nothing to say. */
  private sendDelta(sub: Subscriber, broadcast: { ups: Map<number, number>; rems: Set<number> } | null, shared: Map<string, Buffer>): boolean {
    const id = sub.sink.nodeId;
    const patches = sub.sink.acceptsPatches;
    if (sub.syncedTo) {
      this.resync(sub, sub.syncedTo);
      sub.syncedTo = null;
    }
    let tail = '';
    if (sub.filterDirty) {
      sub.filterDirty = false;
      const f = JSON.stringify(this.visibility.filterFor(id) as FilterRule[] | null);
      if (f !== sub.lastFilter) {
        sub.lastFilter = f;
        tail += `,"packetFilter":${f}`;
      }
    }
    if (sub.selfDirty) {
      sub.selfDirty = false;
      const node = this.registry.get(id);
      if (node) tail += `,"self":${JSON.stringify(selfOf(node))}`;
    }
    let body: Buffer;
    const own = sub.upserts.size > 0 || sub.removals.size > 0;
    if (broadcast && !own && tail === '' && !broadcast.ups.has(id)) {
      // The common case under churn: exactly the shared batch, encoded once for everyone.
      const key = patches ? 'broadcast+patches' : 'broadcast';
      body = shared.get(key) ?? this.remember(shared, key, this.records.deltaBody(broadcast.ups, broadcast.rems, patches, ''));
    } else {
      const u = sub.upserts;
      const r = sub.removals;
      sub.upserts = new Map();
      sub.removals = new Set();
      if (broadcast) {
        for (const [p, changed] of broadcast.ups) {
          if (p === id) continue;
          r.delete(p);
          u.set(p, (u.get(p) ?? 0) | changed);
        }
        for (const p of broadcast.rems) {
          u.delete(p);
          r.add(p);
        }
      }
      for (const p of u.keys()) if (!this.visibility.has(p)) u.delete(p);
      if (u.size === 0 && r.size === 0 && tail === '') return false;
      const key = tail === '' ? `${patches ? 'p' : 'f'}|${[...u].map(([p, c]) => `${p}:${c}`).join(',')}|${[...r].join(',')}` : null;
      body = (key !== null ? shared.get(key) : undefined) ?? this.remember(shared, key, this.records.deltaBody(u, r, patches, tail));
    }
    sub.seq++;
    const head = Buffer.from(`{"type":"delta","seq":${sub.seq},`);
    sub.sink.send([head, body]);
    this.stats.deltas++;
    this.stats.deltaBytes += head.length + body.length;
    return true;
  }

  private remember(shared: Map<string, Buffer>, key: string | null, body: Buffer): Buffer {
    if (key !== null) shared.set(key, body);
    return body;
  }
}
