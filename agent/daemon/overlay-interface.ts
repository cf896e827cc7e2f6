// The TUN's side of the netmap: the node's overlay addresses (IPv4 /32, IPv6 /128) and routes
// for the whole overlay (100.64.0.0/10 and the coordinator's ULA /48) into the TUN. Reapplied
// when the coordinator changes the node's addresses; only the difference is touched. The same
// addresses go to the WireGuard device: the only destinations it delivers peers' packets to.
import { formatCidr, maskCidr, parseCidr, type Cidr } from '../../proto/ip/address.js';
import type { SelfNode } from '../../proto/control/schemas.js';
import { addAddress, addRoute, removeAddress, removeRoute } from '../tun/iface.js';

export const OVERLAY_V4 = '100.64.0.0/10';

export interface OverlayPlan {
  addresses: string[];
  routes: string[];
}

export function overlayPlan(self: Pick<SelfNode, 'ipv4' | 'ipv6'>): OverlayPlan {
  const v6 = parseCidr(`${self.ipv6}/128`);
  return {
    addresses: [formatCidr(parseCidr(`${self.ipv4}/32`)), formatCidr(v6)],
    routes: [OVERLAY_V4, formatCidr(maskCidr({ ...v6, bits: 48 }))],
  };
}

/** The node's overlay addresses as host prefixes (the device's local addresses). */
export function overlayAddresses(self: Pick<SelfNode, 'ipv4' | 'ipv6'>): Cidr[] {
  return overlayPlan(self).addresses.map(parseCidr);
}

export class OverlayInterface {
  private applied: OverlayPlan = { addresses: [], routes: [] };

  /** `onAddresses` hears the node's addresses before the TUN gets them (device.setLocalAddresses). */
  constructor(readonly tunName: string, private readonly onAddresses: (addresses: Cidr[]) => void) {}

  get addresses(): string[] {
    return [...this.applied.addresses];
  }

  async apply(self: Pick<SelfNode, 'ipv4' | 'ipv6'>): Promise<void> {
    const plan = overlayPlan(self);
    this.onAddresses(plan.addresses.map(parseCidr));
    const old = this.applied;
    for (const a of old.addresses) if (!plan.addresses.includes(a)) await removeAddress(this.tunName, a).catch(() => undefined);
    for (const r of old.routes) if (!plan.routes.includes(r)) await removeRoute(this.tunName, r).catch(() => undefined);
    for (const a of plan.addresses) if (!old.addresses.includes(a)) await addAddress(this.tunName, a);
    for (const r of plan.routes) if (!old.routes.includes(r)) await addRoute(this.tunName, r);
    this.applied = plan;
  }
}
