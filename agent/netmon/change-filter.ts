// Which link events mean "this host may be on another network now", and when to act on them.
// Pure state with time passed in (like magicsock/peer-path.ts); link-monitor.ts feeds it.
//  - ignored: the overlay TUN (our own routes and addresses come and go with the netmap),
//    loopback, link-local IPv6 addresses, routes outside the main table, non-default routes;
//  - a link counts only when its up/down state changes (the kernel repeats link messages);
//  - a burst (a link going down takes its addresses and routes with it) is one change, acted on
//    DEBOUNCE_MS after its last event, or MAX_DELAY_MS after its first if events keep coming.
import type { LinkEvent } from './monitor-line.js';

export const DEBOUNCE_MS = 150;
export const MAX_DELAY_MS = 1000;
/** Interfaces whose link state is remembered (a bound: one entry per interface name). */
export const MAX_TRACKED_LINKS = 256;

export class LinkChangeFilter {
  private readonly linkUp = new Map<string, boolean>();
  private firstAt: number | null = null;
  private lastAt = 0;
  private reasons: string[] = [];

  constructor(private readonly ignored: readonly string[]) {}

  /** Records an event; true if it matters (a change is now pending). */
  observe(e: LinkEvent, now: number): boolean {
    const why = this.relevance(e);
    if (why === null) return false;
    if (this.firstAt === null) this.firstAt = now;
    this.lastAt = now;
    if (this.reasons.length < 8) this.reasons.push(why);
    return true;
  }

  /** ms until a pending change is due (0 = now), or null if none is pending. */
  dueIn(now: number): number | null {
    if (this.firstAt === null) return null;
    return Math.max(0, Math.min(this.lastAt + DEBOUNCE_MS, this.firstAt + MAX_DELAY_MS) - now);
  }

  /** The pending change's reasons if it is due (and clears it), else null. */
  take(now: number): string[] | null {
    const wait = this.dueIn(now);
    if (wait === null || wait > 0) return null;
    const out = this.reasons;
    this.reasons = [];
    this.firstAt = null;
    return out;
  }

  private relevance(e: LinkEvent): string | null {
    switch (e.kind) {
      case 'link': {
        if (this.ignoredIf(e.ifName)) return null;
        if (e.deleted) {
          const was = this.linkUp.get(e.ifName);
          this.linkUp.delete(e.ifName);
          return was ? `${e.ifName} removed` : null;
        }
        const was = this.linkUp.get(e.ifName);
        if (was === e.up) return null;
        if (!this.linkUp.has(e.ifName) && this.linkUp.size >= MAX_TRACKED_LINKS) this.linkUp.delete(this.linkUp.keys().next().value!);
        this.linkUp.set(e.ifName, e.up);
        return `${e.ifName} ${e.up ? 'up' : 'down'}`;
      }
      case 'address':
        if (this.ignoredIf(e.ifName)) return null;
        if (e.family === 6 && /^fe[89ab]/i.test(e.address)) return null;
        return `${e.deleted ? 'lost' : 'new'} address ${e.address} on ${e.ifName}`;
      case 'route':
        if (e.dst !== 'default' || e.table !== 'main') return null;
        if (e.dev !== null && this.ignoredIf(e.dev)) return null;
        return `default route ${e.deleted ? 'removed' : 'added'}${e.via ? ` via ${e.via}` : ''}${e.dev ? ` dev ${e.dev}` : ''}`;
    }
  }

  private ignoredIf(name: string): boolean {
    return name === 'lo' || this.ignored.includes(name);
  }
}
