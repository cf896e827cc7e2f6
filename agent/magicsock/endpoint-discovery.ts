// Where peers can reach this node: the local interface addresses with the WireGuard port, plus
// the server-reflexive address(es) STUN servers see for that same socket (the NAT's mapping).
// plus the gateway's port mapping when it grants one (agent/portmap/).
// Re-discovered on an interval and as soon as the local addresses change (a new network).
import type { Logger } from 'pino';
import { tryParseAddress, parseEndpoint } from '../../proto/ip/address.js';
import type { StunClient } from '../netcheck/stun-client.js';
import { localEndpoints } from '../control/local-endpoints.js';

export const RESTUN_INTERVAL_MS = 20_000;
/** The fallback poll of the local addresses while nothing else reports their changes. */
export const LOCAL_CHECK_MS = 10_000;
/**
 * The poll while a link monitor runs (linkWatched): it reports changes at once, so the poll only
 * covers what it could miss. Each look costs a netlink dump (os.networkInterfaces): at idle the
 * 10 s poll was the costliest timer the agent had after the path report.
 */
export const WATCHED_LOCAL_CHECK_MS = 60_000;
export const DEFAULT_STUN_PORT = 3478;

export interface EndpointDiscoveryOptions {
  stun: StunClient;
  port: () => number;
  /** Interfaces whose addresses are not endpoints (the overlay TUN). */
  exclude: string[];
  /** "ip:port" STUN servers to ask (from the relay map). */
  servers: () => string[];
  onChange: (endpoints: string[]) => void;
  /** The gateway's port mapping for our port ("ip:port"), if one is held (agent/portmap/). */
  mapped?: () => string | null;
  /** The poll saw the local addresses change (a new network the link monitor did not report). */
  onLocalChange?: () => void;
  /** True while a link monitor reports address changes (agent/netmon/): the poll slows down then. */
  linkWatched?: () => boolean;
  /** The local endpoints ("ip:port"); default localEndpoints (os.networkInterfaces). */
  readLocal?: (port: number, exclude: readonly string[]) => string[];
  log: Logger;
}

/** The STUN servers of a relay: the ones the coordinator lists, else port 3478 on the relay's host. */
export function relayStunServers(relay: { url: string; stun?: string[] }): string[] {
  if (relay.stun && relay.stun.length > 0) return relay.stun;
  try {
    const host = new URL(relay.url).hostname.replace(/^\[|\]$/g, '');
    return tryParseAddress(host) ? [host.includes(':') ? `[${host}]:${DEFAULT_STUN_PORT}` : `${host}:${DEFAULT_STUN_PORT}`] : [];
  } catch {
    return [];
  }
}

export class EndpointDiscovery {
  private local: string[] = [];
  private reflexive: string[] = [];
  private current: string[] = [];
  private restunTimer: NodeJS.Timeout | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  lastStunAt: string | null = null;
  lastStunError: string | null = null;

  private readonly readLocal: (port: number, exclude: readonly string[]) => string[];

  constructor(private readonly opts: EndpointDiscoveryOptions) {
    this.readLocal = opts.readLocal ?? localEndpoints;
  }

  get endpoints(): string[] {
    return this.current;
  }

  get reflexiveEndpoints(): string[] {
    return this.reflexive;
  }

  start(): void {
    this.local = this.readLocal(this.opts.port(), this.opts.exclude);
    this.publish();
    void this.discover();
    clearInterval(this.restunTimer);
    this.restunTimer = setInterval(() => void this.discover(), RESTUN_INTERVAL_MS);
    this.restunTimer.unref();
    this.armWatch();
  }

  stop(): void {
    clearInterval(this.restunTimer);
    this.restunTimer = undefined;
    clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
  }

  /** The next look at the local addresses: every LOCAL_CHECK_MS, or WATCHED_LOCAL_CHECK_MS while a link monitor runs. */
  private armWatch(): void {
    clearTimeout(this.watchTimer);
    const ms = this.opts.linkWatched?.() ? WATCHED_LOCAL_CHECK_MS : LOCAL_CHECK_MS;
    this.watchTimer = setTimeout(() => {
      this.watchLocal();
      this.armWatch();
    }, ms);
    this.watchTimer.unref();
  }

  private watchLocal(): void {
    const now = this.readLocal(this.opts.port(), this.opts.exclude);
    if (now.join() === this.local.join()) return;
    this.opts.log.info(`local addresses changed (${now.join(', ') || 'none'}): discovering endpoints again`);
    this.local = now;
    this.publish();
    if (this.opts.onLocalChange) this.opts.onLocalChange();
    else void this.discover();
  }

  /** A new network: re-reads the local addresses and asks STUN again (after any run in flight, whose answer may be stale). */
  async refresh(): Promise<void> {
    this.local = this.readLocal(this.opts.port(), this.opts.exclude);
    this.publish();
    await this.running?.catch(() => undefined);
    await this.discover();
  }

  /** Asks every STUN server for our mapping (at most one run at a time). */
  discover(): Promise<void> {
    if (this.running) return this.running;
    this.running = this.run().finally(() => { this.running = null; });
    return this.running;
  }

  private async run(): Promise<void> {
    const servers = this.opts.servers();
    if (servers.length === 0) return;
    const results = await Promise.all(servers.map(async (s) => {
      try {
        const e = parseEndpoint(s);
        const r = await this.opts.stun.request({ address: e.host, port: e.port }, { timeoutMs: 2500 });
        return r.mapped.family === 4 ? `${r.mapped.address}:${r.mapped.port}` : `[${r.mapped.address}]:${r.mapped.port}`;
      } catch (err) {
        this.lastStunError = `${s}: ${(err as Error).message}`;
        return null;
      }
    }));
    const found = [...new Set(results.filter((r): r is string => r !== null))];
    this.lastStunAt = new Date().toISOString();
    if (found.length > 0) this.lastStunError = null;
    // Keep the last mapping when a round fails entirely (a lost STUN packet is not a new network).
    if (found.length > 0 || this.local.length === 0) this.reflexive = found;
    this.publish();
  }

  /** The port mapping appeared, moved or went away. */
  mappedChanged(): void {
    this.publish();
  }

  private publish(): void {
    // The mapping before the STUN answers: behind a symmetric NAT it is the one that works.
    const mapped = this.opts.mapped?.() ?? null;
    const next = [...new Set([...this.local, ...(mapped ? [mapped] : []), ...this.reflexive])].slice(0, 32);
    if (next.join() === this.current.join()) return;
    this.current = next;
    this.opts.onChange(next);
  }
}
