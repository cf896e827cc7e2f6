// The addresses the tunnel itself talks to, which must never be routed into the tunnel: the
// coordinator, the relays and their STUN servers, and every endpoint of every peer (those in the
// netmap and the ones the device is using now). Hostnames are resolved; results are cached.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** The host of "ip:port", "[v6]:port", "host:port" or a URL; null if there is none. */
export function hostOf(text: string): string | null {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    try {
      const h = new URL(text).hostname;
      return h.startsWith('[') ? h.slice(1, -1) : h || null;
    } catch {
      return null;
    }
  }
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (v6) return v6[1]!;
  const colon = text.lastIndexOf(':');
  if (colon > 0 && text.indexOf(':') === colon) return text.slice(0, colon);
  return text || null;
}

export class BypassResolver {
  private readonly cache = new Map<string, string[]>();
  private readonly pending = new Map<string, Promise<void>>();

  /**
   * Every address for these hosts: literals as they are, names from the cache (resolved in the
   * background when new; `changed` is called once a resolution adds addresses).
   */
  addresses(hosts: Iterable<string>, changed: () => void): string[] {
    const out = new Set<string>();
    for (const h of hosts) {
      if (isIP(h)) { out.add(h); continue; }
      const known = this.cache.get(h);
      if (known) for (const a of known) out.add(a);
      else this.resolve(h, changed);
    }
    return [...out];
  }

  private resolve(host: string, changed: () => void): void {
    if (this.pending.has(host)) return;
    const p = lookup(host, { all: true })
      .then((addrs) => {
        this.cache.set(host, addrs.map((a) => a.address));
        if (addrs.length > 0) changed();
      }, () => {
        this.cache.set(host, []);
        setTimeout(() => this.cache.delete(host), 30_000).unref(); // try again later
      })
      .finally(() => this.pending.delete(host));
    this.pending.set(host, p);
  }
}
