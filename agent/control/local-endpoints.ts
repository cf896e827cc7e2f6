// The endpoints a node reports before NAT traversal exists: its own interface IPv4 addresses
// (not loopback, not the overlay TUN) with the WireGuard UDP port. Peers on a shared segment
// reach each other directly on these.
import { networkInterfaces } from 'node:os';

/** 100.64.0.0/10: an overlay address is never an underlay endpoint. */
function isOverlayV4(ip: string): boolean {
  const [a, b] = ip.split('.').map(Number) as [number, number];
  return a === 100 && b >= 64 && b <= 127;
}

export function localEndpoints(port: number, excludeInterfaces: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (excludeInterfaces.includes(name)) continue;
    for (const a of addrs ?? []) {
      if (a.family !== 'IPv4' || a.internal || isOverlayV4(a.address) || a.address.startsWith('169.254.')) continue;
      out.push(`${a.address}:${port}`);
    }
  }
  return out.slice(0, 32);
}
