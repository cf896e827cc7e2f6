// The relays an agent talks to: one client per relay in the netmap's relay map, connected on
// demand; the home relay (lowest measured latency) stays connected so peers can reach us. Packets
// sent while a relay is still connecting wait in a short queue instead of being lost, so the
// first packets to a peer are not delayed by a handshake retry. A relay that fails to prove the
// key the netmap published (or has none published) is refused: nothing goes to it, it is never
// home, and status says why.
import type { Logger } from 'pino';
import { decodeKey } from '../../proto/wireguard/keys.js';
import { createRelayClient, type RelayClient } from '../relay/relay-client.js';

export interface RelayEntry {
  name: string;
  url: string;
  stun: string[];
  /** The relay's static key (base64) from the netmap; '' = none published. */
  key: string;
  /** Relays of one region are meshed (docs/relay-mesh.md); absent = a region of its own. */
  region?: string;
}

export interface RelaySetOptions {
  nodePrivateKey: Uint8Array;
  log: Logger;
  /** SO_MARK of the relay connections (socket-mark.ts); 0 or absent: unmarked. */
  socketMark?: number;
  /** A packet from node `src` through relay `relay`. */
  onRecv: (relay: string, src: Uint8Array, data: Uint8Array) => void;
  /** The home relay changed (report it to the coordinator). */
  onHomeChange: (name: string | null) => void;
  /** Relay `name` (re)connected: paths that avoided it while it was down may use it again. */
  onConnect?: (name: string) => void;
}

export interface RelayStatusJson {
  name: string;
  url: string;
  connected: boolean;
  home: boolean;
  latencyMs: number | null;
  framesIn: number;
  framesOut: number;
  sendDrops: number;
  /** Bytes held for the relay while it (re)connects (bounded: PENDING_MAX_BYTES). */
  pendingBytes: number;
  /** Why this agent refuses the relay ("key mismatch: …"), or null. */
  refused: string | null;
}

/** Re-measure relay latencies this often; a new home needs to be clearly better (hysteresis). */
const HOME_CHECK_MS = 60_000;
/** Clearly better: under 70 % of the current home's round trip and at least 10 ms less. */
const HOME_SWITCH_RATIO = 0.7;
const HOME_SWITCH_MIN_GAIN_MS = 10;
/** Non-home relays unused this long are disconnected. */
const IDLE_CLOSE_MS = 120_000;
/** Packets held for a relay that is (re)connecting: at most this many, bytes (a relay train is up to 64 KiB) and ms old. */
const PENDING_MAX = 128;
export const PENDING_MAX_BYTES = 1024 * 1024;
const PENDING_MAX_AGE_MS = 3000;

/**
 * Whether a relay measured at `candidateMs` should replace a home at `currentMs` (Infinity: the
 * home did not answer). Sub-millisecond jitter between relays of one site never moves the home:
 * each move is a netmap update to every peer and, across a region, a path change for them.
 */
export function clearlyFaster(candidateMs: number, currentMs: number): boolean {
  if (currentMs === Infinity) return candidateMs !== Infinity;
  return candidateMs < currentMs * HOME_SWITCH_RATIO && currentMs - candidateMs >= HOME_SWITCH_MIN_GAIN_MS;
}

interface Slot {
  entry: RelayEntry;
  client: RelayClient;
  lastUsed: number;
  pending: { dst: Uint8Array; data: Uint8Array; priority: boolean; at: number }[];
  pendingBytes: number;
}

export class RelaySet {
  private entries = new Map<string, RelayEntry>();
  private readonly slots = new Map<string, Slot>();
  private readonly latency = new Map<string, number | null>();
  private home: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  private measuring: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly opts: RelaySetOptions) {}

  get homeRelay(): string | null {
    return this.home;
  }

  relays(): RelayEntry[] {
    return [...this.entries.values()];
  }

  /** The netmap's relay map. A removed relay is disconnected; a new one is measured. */
  setRelays(list: RelayEntry[]): void {
    const next = new Map(list.map((r) => [r.name, r]));
    const same = next.size === this.entries.size && [...next].every(([n, r]) => {
      const o = this.entries.get(n);
      return o && o.url === r.url && o.key === r.key && o.stun.join() === r.stun.join() && o.region === r.region;
    });
    if (same) return;
    this.entries = next;
    for (const [name, slot] of this.slots) {
      const e = next.get(name);
      if (!e || e.url !== slot.entry.url || e.key !== slot.entry.key) void this.drop(name);
    }
    if (this.home && !next.has(this.home)) this.setHome(null);
    void this.chooseHome();
    if (!this.timer && !this.closed) {
      this.timer = setInterval(() => { void this.chooseHome(); this.closeIdle(); }, HOME_CHECK_MS);
      this.timer.unref();
    }
  }

  /** Sends to `dst` through relay `name` (connecting if needed); false if dropped. */
  send(name: string, dst: Uint8Array, data: Uint8Array, priority = false): boolean {
    if (!this.usable(name)) return false;
    const slot = this.slot(name);
    if (!slot) return false;
    slot.lastUsed = Date.now();
    if (slot.client.connected) {
      slot.client.send(dst, data, { priority });
      return true; // queued (a false from the client only asks for backpressure)
    }
    const now = Date.now();
    while (slot.pending.length > 0 && (slot.pending.length >= PENDING_MAX || slot.pendingBytes + data.length > PENDING_MAX_BYTES || now - slot.pending[0]!.at > PENDING_MAX_AGE_MS)) {
      slot.pendingBytes -= slot.pending.shift()!.data.length;
    }
    slot.pending.push({ dst: Uint8Array.from(dst), data: Uint8Array.from(data), priority, at: now });
    slot.pendingBytes += data.length;
    return true;
  }

  /** The region of relay `name` (its own name when the netmap gives none). */
  regionOf(name: string): string {
    return this.entries.get(name)?.region ?? `relay:${name}`;
  }

  /**
   * The relay to reach a peer homed on `theirs`: ours when both are relays of one region (the
   * mesh carries it, and a dead relay of the region does not matter), else theirs.
   */
  relayToward(theirs: string | null): string | null {
    const home = this.home;
    if (theirs && home && home !== theirs && this.usable(home) && this.regionOf(theirs) === this.regionOf(home)) return home;
    if (theirs && this.usable(theirs)) return theirs;
    return home;
  }

  /** False for a relay we refuse (no key published, or it failed to prove it) or do not know. */
  usable(name: string): boolean {
    return this.entries.has(name) && this.refusalOf(name) === null;
  }

  /** Why relay `name` is refused, or null. */
  refusalOf(name: string): string | null {
    const e = this.entries.get(name);
    if (!e) return null;
    if (!validKey(e.key)) return 'no key published for this relay';
    const c = this.slots.get(name)?.client;
    return c && !c.connected && c.refusal ? c.refusal.message : null;
  }

  connected(name: string): boolean {
    return this.slots.get(name)?.client.connected ?? false;
  }

  /** True when relay `name` failed to connect (or lost its connection) and has not come back. */
  down(name: string): boolean {
    return this.slots.get(name)?.client.down ?? false;
  }

  /** The network changed: every relay connection is dialled again at once. */
  reconnectAll(): void {
    for (const slot of this.slots.values()) slot.client.reconnectNow();
    if (this.home) this.slot(this.home);
  }

  /** Round trip to relay `name` over its connection (connecting if needed). */
  async latencyTo(name: string, signal?: AbortSignal): Promise<number> {
    const slot = this.slot(name);
    if (!slot) throw new Error(`unknown relay ${name}`);
    await slot.client.ready(signal ?? AbortSignal.timeout(5000));
    const ms = await slot.client.measureLatency({ samples: 3, timeoutMs: 2000, ...(signal ? { signal } : {}) });
    this.latency.set(name, ms);
    return ms;
  }

  status(): RelayStatusJson[] {
    return [...this.entries.values()].map((e) => {
      const c = this.slots.get(e.name)?.client;
      return {
        name: e.name, url: e.url, connected: c?.connected ?? false, home: e.name === this.home,
        latencyMs: this.latency.get(e.name) ?? null,
        framesIn: c?.stats.framesIn ?? 0, framesOut: c?.stats.framesOut ?? 0, sendDrops: c?.stats.sendDrops ?? 0,
        pendingBytes: this.slots.get(e.name)?.pendingBytes ?? 0, refused: this.refusalOf(e.name),
      };
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    await Promise.all([...this.slots.keys()].map((n) => this.drop(n)));
  }

  /** Measures every relay and makes the fastest the home relay (kept unless another is clearly faster). */
  chooseHome(): Promise<void> {
    if (this.measuring) return this.measuring;
    this.measuring = (async () => {
      const names = [...this.entries.keys()];
      // Until measured, the first usable relay is home: peers need some relay to reach us right away.
      const first = names.find((n) => this.usable(n));
      if ((this.home === null || !this.usable(this.home)) && first !== undefined) this.setHome(first);
      const results = await Promise.all(names.map(async (n) => {
        try { return { n, ms: await this.latencyTo(n) }; } catch { this.latency.set(n, null); return { n, ms: Infinity }; }
      }));
      if (this.closed) return;
      const best = results.reduce<{ n: string; ms: number } | null>((b, r) => (r.ms < (b?.ms ?? Infinity) ? r : b), null);
      if (!best) {
        if (this.home !== null && !this.usable(this.home)) this.setHome(names.find((n) => this.usable(n)) ?? null);
        return;
      }
      const cur = this.home ? this.latency.get(this.home) ?? Infinity : Infinity;
      if (this.home !== best.n && clearlyFaster(best.ms, cur)) this.setHome(best.n);
      this.closeIdle();
    })().finally(() => { this.measuring = null; });
    return this.measuring;
  }

  private setHome(name: string | null): void {
    if (this.home === name) return;
    this.home = name;
    if (name) this.slot(name);
    this.opts.log.info(name ? `home relay: ${name}` : 'no home relay');
    this.opts.onHomeChange(name);
  }

  private slot(name: string): Slot | undefined {
    const existing = this.slots.get(name);
    if (existing) return existing;
    const entry = this.entries.get(name);
    if (!entry || this.closed || !validKey(entry.key)) return undefined;
    const client = createRelayClient({
      url: entry.url, nodePrivateKey: this.opts.nodePrivateKey, relayKey: decodeKey(entry.key), reconnect: { minDelayMs: 100, maxDelayMs: 5000 }, socketMark: this.opts.socketMark,
    });
    const slot: Slot = { entry, client, lastUsed: Date.now(), pending: [], pendingBytes: 0 };
    client.onRecv((src, data) => this.opts.onRecv(name, src, data));
    client.on('connect', () => {
      this.opts.log.info(`connected to relay ${name} (${entry.url})`);
      const now = Date.now();
      slot.pendingBytes = 0;
      for (const p of slot.pending.splice(0)) if (now - p.at <= PENDING_MAX_AGE_MS) client.send(p.dst, p.data, { priority: p.priority });
      this.opts.onConnect?.(name);
    });
    client.on('disconnect', (d) => {
      if (d.refused) {
        slot.pending.length = 0;
        slot.pendingBytes = 0;
        this.opts.log.warn(`relay ${name} (${entry.url}) refused: ${d.refused.message}; using other relays and direct paths`);
        if (name === this.home) void this.chooseHome();
        return;
      }
      this.opts.log.warn(`relay ${name} connection ended (${d.notice ?? d.code}${d.message ? ` ${d.message}` : ''})${d.willReconnect ? ', reconnecting' : ''}`);
      if (name === this.home) this.failOver(name);
    });
    this.slots.set(name, slot);
    return slot;
  }

  /**
   * The home relay's connection ended: move at once to another relay of its region (peers homed
   * anywhere in the region still reach us through the mesh). Single-relay regions wait for the
   * relay to come back, as before.
   */
  private failOver(from: string): void {
    const region = this.regionOf(from);
    const others = [...this.entries.keys()].filter((n) => n !== from && this.usable(n) && this.regionOf(n) === region);
    if (others.length === 0) return;
    const next = others.find((n) => this.connected(n)) ?? others[0]!;
    this.opts.log.info(`home relay ${from} lost: moving to ${next} (region ${region})`);
    this.setHome(next);
    if (!this.connected(next)) this.slots.get(next)?.client.reconnectNow();
  }

  private closeIdle(): void {
    const now = Date.now();
    for (const [name, slot] of this.slots) {
      if (name !== this.home && now - slot.lastUsed > IDLE_CLOSE_MS) void this.drop(name);
    }
  }

  private async drop(name: string): Promise<void> {
    const slot = this.slots.get(name);
    if (!slot) return;
    this.slots.delete(name);
    await slot.client.close().catch(() => undefined);
  }
}

function validKey(text: string): boolean {
  try {
    decodeKey(text);
    return true;
  } catch {
    return false;
  }
}
