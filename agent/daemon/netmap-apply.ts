// Netmap peers → WireGuard peers on the device. Each peer's allowed IPs are its overlay /32 and
// /128 plus the routes it carries. Its endpoint is not set here: the magic socket alone decides
// where a managed peer's packets go (MagicSocket.syncPeers reads the netmap's endpoints). Updates
// change the peer in place, so an established session survives them.
import { parseCidr, type Cidr } from '../../proto/ip/address.js';
import type { Peer as NetmapPeer } from '../../proto/control/schemas.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
import type { Device } from '../wireguard/device.js';

export interface ApplyCounts {
  added: number;
  updated: number;
  removed: number;
  /** Peers whose record could not be used (bad address or key): left out and counted. */
  skipped: number;
}

export function overlayCidrs(p: { ipv4: string; ipv6: string }): Cidr[] {
  return [parseCidr(`${p.ipv4}/32`), parseCidr(`${p.ipv6}/128`)];
}

const sameCidrs = (a: Cidr[], b: Cidr[]): boolean =>
  a.length === b.length && a.every((c, i) => c.bits === b[i]!.bits && Buffer.compare(c.bytes, b[i]!.bytes) === 0);

/** Keeps a device's peers (keys, names, allowed IPs) equal to a netmap's. */
export class NetmapApplier {
  /** `extraAllowedIps`: routes a peer carries besides its overlay addresses (accepted subnet routes, exit node). */
  constructor(private readonly device: Device, private readonly extraAllowedIps: (p: NetmapPeer) => Cidr[] = () => []) {}

  /** Makes the device's peers exactly `peers` (a full netmap). */
  applyAll(peers: Iterable<NetmapPeer>): ApplyCounts {
    const counts: ApplyCounts = { added: 0, updated: 0, removed: 0, skipped: 0 };
    const wanted = new Set<string>();
    for (const p of peers) {
      wanted.add(p.nodeKey);
      this.upsertInto(p, counts);
    }
    for (const key of [...this.device.peers.keys()]) {
      if (!wanted.has(key) && this.device.removePeer(key)) counts.removed++;
    }
    return counts;
  }

  /** A delta: peers added or changed (`previous` holds their old record when known), peers removed. */
  applyChanges(upserted: NetmapPeer[], removed: NetmapPeer[], previous: Map<number, NetmapPeer>): ApplyCounts {
    const counts: ApplyCounts = { added: 0, updated: 0, removed: 0, skipped: 0 };
    for (const p of removed) if (this.remove(p.nodeKey)) counts.removed++;
    for (const p of upserted) {
      const old = previous.get(p.id);
      // A node that changed its key is a new WireGuard peer: the old one goes.
      if (old && old.nodeKey !== p.nodeKey && this.remove(old.nodeKey)) counts.removed++;
      this.upsertInto(p, counts);
    }
    return counts;
  }

  private remove(nodeKey: string): boolean {
    return this.device.removePeer(nodeKey);
  }

  private upsertInto(p: NetmapPeer, counts: ApplyCounts): void {
    let allowed: Cidr[];
    let publicKey: Uint8Array;
    try {
      allowed = [...overlayCidrs(p), ...this.extraAllowedIps(p)];
      publicKey = decodeKey(p.nodeKey);
    } catch {
      counts.skipped++;
      return;
    }
    if (p.nodeKey === this.device.publicKeyBase64) { counts.skipped++; return; }
    const existing = this.device.peers.get(p.nodeKey);
    if (!existing) {
      this.device.addPeer({ publicKey, allowedIps: allowed, name: p.name });
      counts.added++;
      return;
    }
    let changed = false;
    if (existing.name !== p.name) { existing.name = p.name; changed = true; }
    if (!sameCidrs(existing.allowedIps, allowed)) {
      this.device.allowedIps.removeValue(existing);
      for (const c of allowed) this.device.allowedIps.insert(c, existing);
      existing.allowedIps = allowed;
      changed = true;
    }
    if (changed) counts.updated++;
  }
}
