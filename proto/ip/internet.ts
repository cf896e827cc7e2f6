// "The internet" as a set of prefixes: what `autogroup:internet` means in a policy, and what an
// exit node carries. Public address space is everything except the ranges that are private,
// local or special-purpose (IANA's special-purpose registries, RFC 6890):
//
//   IPv4 out: 0/8 "this network", 10/8, 172.16/12, 192.168/16 (RFC 1918), 100.64/10 (CGNAT, and
//             our overlay), 127/8 loopback, 169.254/16 link-local (cloud metadata lives there),
//             192.0.0/24 IETF protocol assignments, 198.18/15 benchmarking, 224/4 multicast,
//             240/4 reserved + broadcast.
//   IPv6 in:  2000::/3 global unicast only (so ::1, ::ffff:0:0/96, fc00::/7 ULA and our overlay,
//             fe80::/10, ff00::/8 and the rest of the unassigned space are out).
//
// The documentation ranges (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32) count as
// internet: no real network routes them, so treating them as public grants nothing real, and the
// lab builds its internet out of them. 198.18/15 does not: real sites and the lab use it for LANs.
import { cidrContains, formatCidr, parseCidr, type Cidr } from './address.js';

const NON_PUBLIC_V4 = [
  '0.0.0.0/8', '10.0.0.0/8', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '172.16.0.0/12',
  '192.0.0.0/24', '192.168.0.0/16', '198.18.0.0/15', '224.0.0.0/4', '240.0.0.0/4',
].map(parseCidr);

const GLOBAL_UNICAST_V6 = parseCidr('2000::/3');

/** The prefixes of `whole` not covered by any of `holes`, as few as a binary split gives. */
export function subtractPrefixes(whole: Cidr, holes: readonly Cidr[]): Cidr[] {
  const out: Cidr[] = [];
  const visit = (c: Cidr): void => {
    const inside = (outer: Cidr, inner: Cidr): boolean => outer.bits <= inner.bits && cidrContains(outer, inner.bytes);
    if (holes.some((h) => h.family === c.family && inside(h, c))) return;
    if (!holes.some((h) => h.family === c.family && inside(c, h))) {
      out.push(c);
      return;
    }
    const low = new Uint8Array(c.bytes);
    const high = new Uint8Array(c.bytes);
    high[c.bits >> 3]! |= 0x80 >> (c.bits & 7);
    visit({ family: c.family, bytes: low, bits: c.bits + 1 });
    visit({ family: c.family, bytes: high, bits: c.bits + 1 });
  };
  visit(whole);
  return out;
}

/** Public IPv4 space as prefixes (0.0.0.0/0 minus the non-public ranges above). */
export const INTERNET_V4: readonly Cidr[] = subtractPrefixes(parseCidr('0.0.0.0/0'), NON_PUBLIC_V4);
/** Public IPv6 space: global unicast. */
export const INTERNET_V6: readonly Cidr[] = [GLOBAL_UNICAST_V6];

/** The internet prefixes of one family, as CIDR text. */
export function internetPrefixes(family: 4 | 6): string[] {
  return (family === 4 ? INTERNET_V4 : INTERNET_V6).map(formatCidr);
}

/** Is this address (4 or 16 bytes) public, i.e. inside autogroup:internet? */
export function isInternetAddress(bytes: Uint8Array): boolean {
  if (bytes.length === 4) return !NON_PUBLIC_V4.some((c) => cidrContains(c, bytes));
  return bytes.length === 16 && cidrContains(GLOBAL_UNICAST_V6, bytes);
}
