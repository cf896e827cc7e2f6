// The names this node answers for: itself and every peer of the netmap, as HOST.DOMAIN, with
// their overlay IPv4 (A) and IPv6 (AAAA), and the reverse (PTR) map. Rebuilt on every netmap
// change (a few thousand entries at most); lookups are one Map get.
import { parseAddress } from '../../proto/ip/address.js';
import type { DnsConfig } from '../../proto/dns/dns-config.js';

export interface NamedNode {
  name: string;
  ipv4: string;
  ipv6: string;
}

export interface NameTable {
  domain: string;
  routes: DnsConfig['routes'];
  /** lower-case host label → addresses */
  hosts: Map<string, { ipv4: string; ipv6: string }>;
  /** reverse name (e.g. "7.0.64.100.in-addr.arpa") → FQDN */
  reverse: Map<string, string>;
}

/** "100.64.0.7" → "7.0.64.100.in-addr.arpa"; an IPv6 address → its 32 nibbles under ip6.arpa. */
export function reverseName(address: string): string {
  const bytes = parseAddress(address).bytes;
  if (bytes.length === 4) return `${[...bytes].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (let i = bytes.length - 1; i >= 0; i--) nibbles.push((bytes[i]! & 15).toString(16), (bytes[i]! >> 4).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

export function buildNameTable(dns: DnsConfig, nodes: Iterable<NamedNode>): NameTable {
  const table: NameTable = { domain: dns.domain, routes: dns.routes, hosts: new Map(), reverse: new Map() };
  for (const n of nodes) {
    const host = n.name.toLowerCase();
    if (table.hosts.has(host)) continue; // names are unique on the coordinator; first one wins if not
    table.hosts.set(host, { ipv4: n.ipv4, ipv6: n.ipv6 });
    const fqdn = `${host}.${dns.domain}`;
    try {
      table.reverse.set(reverseName(n.ipv4), fqdn);
      table.reverse.set(reverseName(n.ipv6), fqdn);
    } catch {
      // An unparsable address in a netmap: the forward name still works.
    }
  }
  return table;
}
