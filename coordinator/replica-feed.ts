// Keeps a coordinator's memory in step with the other coordinators on the same PostgreSQL
// database (replicas): on every NOTIFY, and after every (re)connect of the listening connection,
// reads the changes after the last id it applied (in order, in bounded batches), loads the rows
// they name and applies them to the registry, auth keys and policy without writing anything
// back. The registry emits the same events as for a local write, so streams fan out as usual.
// Its own changes it skips (applied when written). Rows pruned before it read them (it was cut
// off longer than the retention) make it reload the whole snapshot instead.
// Also beats the replica's heartbeat, which declares silent replicas dead (their nodes offline).
import type { AccessPolicy } from './access-policy.js';
import type { AuthKeys } from './authkeys.js';
import type { Logger } from './log.js';
import type { NodeRegistry } from './registry.js';
import type { ChangeFeedStore } from './store/interface.js';

export interface ReplicaFeedOptions {
  /** Changes read at most per query (default 500). */
  batch?: number;
  /** Heartbeat and clean-up interval (default 2 s). */
  heartbeatMs?: number;
  /** A replica silent this long is dead: its nodes go offline (default 10 s). */
  staleMs?: number;
  /** Change rows kept at most this long (default 10 min) ... */
  retentionMs?: number;
  /** ... and at most this many (default 100,000). */
  maxRows?: number;
}

export interface ReplicaFeedStats {
  replica: string;
  connected: boolean;
  /** The last change id applied (own changes count as applied). */
  lastApplied: number;
  /** Change ids applied since start (others' and own skipped ones), each exactly once, in order. */
  applied: number;
  ownSkipped: number;
  /** Whole-snapshot reloads (change rows pruned before this replica read them). */
  resyncs: number;
  /** Ids that arrived out of order (must stay 0: the ids are gapless). */
  gaps: number;
  reconnects: number;
  replicasReaped: number;
}

const RETRY_MS = 500;

export class ReplicaFeed {
  readonly stats: ReplicaFeedStats;
  private running = false;
  private beaten = false;
  private again = false;
  private closed = false;
  private retry: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private listener: { close(): Promise<void> } | null = null;
  private readonly batch: number;

  constructor(
    private readonly store: ChangeFeedStore,
    private readonly state: {
      registry: NodeRegistry; authKeys: AuthKeys; policy: AccessPolicy;
      /** The stored coordinator keys after another replica rotated them (private, base64). */
      onServerKeys?: (current: string, next: string | null) => void;
    },
    lastChangeId: number,
    private readonly log: Logger,
    private readonly opts: ReplicaFeedOptions = {},
  ) {
    this.batch = opts.batch ?? 500;
    this.stats = {
      replica: store.replicaId, connected: false, lastApplied: lastChangeId, applied: 0, ownSkipped: 0, resyncs: 0, gaps: 0, reconnects: 0, replicasReaped: 0,
    };
  }

  /** Beats once (so the replica exists before it streams), then listens. */
  async start(): Promise<void> {
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat(), this.opts.heartbeatMs ?? 2000);
    this.heartbeat.unref();
    let first = true;
    this.listener = this.store.listen({
      onNotify: () => this.kick(),
      onConnected: () => {
        this.stats.connected = true;
        if (!first) this.stats.reconnects++;
        first = false;
        this.kick(); // whatever committed while nobody listened
      },
      onError: (err) => {
        if (this.stats.connected) this.log.warn({ err: err.message }, 'change feed connection lost; reconnecting');
        this.stats.connected = false;
      },
    });
  }

  private async beat(): Promise<void> {
    try {
      const { reinstated, reaped } = await this.store.heartbeat({
        staleMs: this.opts.staleMs ?? 10_000, retentionMs: this.opts.retentionMs ?? 600_000, maxRows: this.opts.maxRows ?? 100_000,
      });
      if (reaped.length > 0) {
        this.stats.replicasReaped += reaped.length;
        this.log.warn({ replicas: reaped }, 'replicas silent too long: their nodes are offline');
      }
      // Another replica declared this one dead (it was cut off) and cleared its nodes' online state.
      if (reinstated && this.beaten) this.state.registry.markLocalLivenessDirty();
      this.beaten = true;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'replica heartbeat failed');
    }
    // A safety net under the notifications: one cheap read per beat finds anything one missed.
    this.kick();
  }

  /** Reads and applies everything after the last applied id; one reader at a time. */
  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.again = false;
        while (!this.closed && (await this.step()));
      } while (this.again && !this.closed);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'applying the change feed failed; retrying');
      if (!this.closed) {
        this.retry = setTimeout(() => this.kick(), RETRY_MS);
        this.retry.unref();
      }
    } finally {
      this.running = false;
    }
  }

  /** One batch; true if there may be more. */
  private async step(): Promise<boolean> {
    const after = this.stats.lastApplied;
    const { changes, lastId } = await this.store.changesAfter(after, this.batch);
    if (changes.length === 0) {
      if (lastId <= after) return false;
      await this.resync();
      return true;
    }
    if (changes[0]!.id !== after + 1) {
      await this.resync();
      return true;
    }
    const nodeIds = new Set<number>();
    const keyIds = new Set<number>();
    let policy = false;
    let serverKeys = false;
    let expect = after + 1;
    for (const c of changes) {
      if (c.id !== expect) this.stats.gaps++;
      expect = c.id + 1;
      if (c.replica === this.store.replicaId) {
        this.stats.ownSkipped++;
        continue;
      }
      for (const id of c.nodeIds) nodeIds.add(id);
      for (const id of c.authKeyIds) keyIds.add(id);
      policy ||= c.policy;
      serverKeys ||= c.serverKeys;
    }
    // The rows as they are now: a later change to the same row is applied early, which is
    // harmless (it is applied again, to no effect, when its own id comes).
    const { registry, authKeys } = this.state;
    if (keyIds.size > 0) authKeys.applyStored(await this.store.loadAuthKeys([...keyIds]));
    if (policy) this.applyPolicy(await this.store.loadPolicy());
    if (serverKeys) this.applyServerKeys(await this.store.loadServerKeys());
    if (nodeIds.size > 0) {
      const ids = [...nodeIds];
      const { rows, onlineElsewhere } = await this.store.loadNodes(ids);
      registry.applyStored(ids, rows, onlineElsewhere);
    }
    this.stats.lastApplied = changes[changes.length - 1]!.id;
    this.stats.applied += changes.length;
    return changes.length === this.batch;
  }

  private applyPolicy(row: Parameters<AccessPolicy['applyStored']>[0]): void {
    try {
      this.state.policy.applyStored(row);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'keeping the policy in force');
    }
  }

  private applyServerKeys(k: { current: string | null; next: string | null }): void {
    if (k.current === null) return;
    try {
      this.state.onServerKeys?.(k.current, k.next);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'stored coordinator keys unusable: keeping the keys in use');
    }
  }

  /** The whole snapshot, for a replica that missed pruned changes. */
  private async resync(): Promise<void> {
    this.stats.resyncs++;
    const snap = await this.store.loadSnapshot();
    this.log.warn({ from: this.stats.lastApplied, to: snap.lastChangeId }, 'change feed rows pruned before they were read: reloading the snapshot');
    const { registry, authKeys } = this.state;
    authKeys.applyStored(snap.authKeys);
    this.applyPolicy(snap.policy);
    this.applyServerKeys({ current: snap.serverPrivateKey, next: snap.nextServerPrivateKey });
    const ids = new Set<number>(snap.nodes.map((n) => n.id));
    for (const n of registry.all()) ids.add(n.id);
    registry.applyStored([...ids], snap.nodes, snap.onlineElsewhere ?? []);
    this.stats.lastApplied = snap.lastChangeId ?? this.stats.lastApplied;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.retry) clearTimeout(this.retry);
    await this.listener?.close();
  }
}
