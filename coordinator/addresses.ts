// Overlay addresses. IPv4 from the CGNAT range 100.64.0.0/10 (RFC 6598), handed out in order
// from a cursor that only moves forward, so a freed address is not handed out again until the
// whole range has been used. IPv6 from the ULA prefix fd7a:1e57:9a3c::/48 (RFC 4193): the node's
// IPv4 in the last 32 bits (100.64.0.7 → fd7a:1e57:9a3c::6440:7), so it is unique whenever the
// IPv4 is, and a reader can map one to the other.

import { MAGIC_DNS_IPV4 } from '../proto/dns/dns-config.js';

export const IPV4_RANGE = '100.64.0.0/10';
export const IPV6_PREFIX = 'fd7a:1e57:9a3c::/48';

const V4_FIRST = (100 << 24 | 64 << 16) >>> 0; // 100.64.0.0
const V4_LAST = (V4_FIRST + (1 << 22) - 1) >>> 0; // 100.127.255.255
/** 100.100.100.100: where every agent answers DNS (MagicDNS), never a node's address. */
const V4_RESERVED = new Set([v4Number(MAGIC_DNS_IPV4)!]);

export class AddressPoolExhaustedError extends Error {
  override readonly name = 'AddressPoolExhaustedError';
}

function v4Text(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function v4Number(text: string): number | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (!m) return null;
  return ((Number(m[1]) << 24) | (Number(m[2]) << 16) | (Number(m[3]) << 8) | Number(m[4])) >>> 0;
}

/** The IPv6 address paired with an IPv4 one. */
export function ipv6For(ipv4: string): string {
  const n = v4Number(ipv4);
  if (n === null) throw new RangeError(`not an IPv4 address: ${ipv4}`);
  return `fd7a:1e57:9a3c::${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
}

export class AddressPool {
  private readonly used = new Set<number>();
  private cursor = V4_FIRST;

  /** Marks an address (loaded from the store) as taken, and moves the cursor past it. */
  claim(ipv4: string): void {
    const n = v4Number(ipv4);
    if (n === null) return;
    this.used.add(n);
    if (n >= this.cursor) this.cursor = n;
  }

  /** The next free address; taken until released. */
  allocate(): { ipv4: string; ipv6: string } {
    const span = V4_LAST - V4_FIRST + 1;
    for (let tries = 0; tries < span; tries++) {
      this.cursor = this.cursor >= V4_LAST ? V4_FIRST : this.cursor + 1;
      const low = this.cursor & 255;
      if (low === 0 || low === 255 || this.used.has(this.cursor) || V4_RESERVED.has(this.cursor)) continue; // .0/.255 confuse people
      this.used.add(this.cursor);
      const ipv4 = v4Text(this.cursor);
      return { ipv4, ipv6: ipv6For(ipv4) };
    }
    throw new AddressPoolExhaustedError(`no free address left in ${IPV4_RANGE}`);
  }

  release(ipv4: string): void {
    const n = v4Number(ipv4);
    if (n !== null) this.used.delete(n);
  }
}
