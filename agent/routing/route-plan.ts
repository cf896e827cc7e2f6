// What the kernel's routing should look like for a client's routing preferences: a pure function
// of the accepted subnet routes, the exit node choice and the local LAN. route-installer.ts turns
// the difference into `ip` commands.
//
// Everything lives in one routing table of ours (ROUTE_TABLE) consulted by one rule per family
// (PREF_LOOKUP) before the main table:
//   - accepted subnet routes, and with an exit node 0.0.0.0/0 and ::/0, into the TUN;
//   - with --exit-node-allow-lan-access, "throw" routes for the directly connected LAN prefixes,
//     so those lookups fall through to the main table (the LAN stays direct);
//   - one rule in front (PREF_MARK) sending packets with the agent's socket mark to the main
//     table: the tunnel's own packets (UDP socket, relay and coordinator connections) never enter
//     the tunnel. It names no address, so nothing a peer reports can add a way around the tunnel.
import { formatCidr, maskCidr, parseCidr, type Cidr } from '../../proto/ip/address.js';

export const ROUTE_TABLE = 5270;
/** The fwmark rule (socket-mark.ts); the range PREF_MARK..PREF_LOOKUP is ours (swept at start). */
export const PREF_MARK = 5210;
export const PREF_LOOKUP = 5270;

export interface RouteTableEntry {
  cidr: string;
  /** unicast: into the TUN; throw: fall through to the main table. */
  type: 'unicast' | 'throw';
}

export interface KernelRoutePlan {
  table: RouteTableEntry[];
}

export interface RoutePlanInput {
  /** Subnet routes of peers this node accepts (already approved, already opted into). */
  subnetRoutes: readonly string[];
  /** An exit node is wanted: default routes into the TUN (also while it is unavailable: fail closed). */
  exitNode: boolean;
  allowLanAccess: boolean;
  /** Directly connected prefixes of the main table (for allowLanAccess). */
  lanPrefixes: readonly string[];
}

const EXIT = ['0.0.0.0/0', '::/0'];

function tryCidr(text: string): Cidr | null {
  try {
    return maskCidr(parseCidr(text));
  } catch {
    return null;
  }
}

export function planRoutes(x: RoutePlanInput): KernelRoutePlan {
  const table = new Map<string, RouteTableEntry>();
  for (const r of x.subnetRoutes) {
    const c = tryCidr(r);
    if (!c || c.bits === 0) continue;
    const cidr = formatCidr(c);
    table.set(cidr, { cidr, type: 'unicast' });
  }
  if (x.exitNode) {
    for (const cidr of EXIT) table.set(cidr, { cidr, type: 'unicast' });
    if (x.allowLanAccess) {
      for (const l of x.lanPrefixes) {
        const c = tryCidr(l);
        if (!c || c.bits === 0) continue;
        const cidr = formatCidr(c);
        if (!table.has(cidr)) table.set(cidr, { cidr, type: 'throw' });
      }
    }
  }
  return {
    table: [...table.values()].sort((a, b) => familyOf(a.cidr) - familyOf(b.cidr) || (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : 0)),
  };
}

/** The address family of a CIDR or address text. */
export function familyOf(text: string): 4 | 6 {
  return text.includes(':') ? 6 : 4;
}
