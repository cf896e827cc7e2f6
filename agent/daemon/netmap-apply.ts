// Netmap peers → WireGuard peers on the device. Each peer's allowed IPs are its overlay /32 and
// /128; its endpoint is the first endpoint the coordinator lists (NAT traversal replaces this
// next). Updates change the peer in place, so an established session survives an endpoint change.
import { parseCidr, type Cidr } from '../../proto/ip/address.js';
import type { Peer as NetmapPeer } from '../../proto/control/schemas.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
import { parseEndpoint } from '../../proto/ip/address.js';
import type { Device } from '../wireguard/device.js';
import { encodePackedAddr } from '../tun/packed-addr.js';

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

/** The first IP-literal endpoint in packed form; hostnames are not expected from a coordinator. */
function firstEndpoint(p: NetmapPeer): { text: string; packed: Uint8Array } | undefined {
  for (const text of p.endpoints) {
    try {
      const e = parseEndpoint(text);
      return { text, packed: encodePackedAddr({ address: e.host, port: e.port }) };
    } catch { /* try the next one */ }
  }
  return undefined;
}

const sameCidrs = (a: Cidr[], b: Cidr[]): boolean =>
  a.length === b.length && a.every((c, i) => c.bits === b[i]!.bits && Buffer.compare(c.bytes, b[i]!.bytes) === 0);

/**
 * Keeps a device's peers equal to a netmap's. Remembers which endpoint it last set for each peer:
 * the device may since have learned a better one from the peer's own packets (roaming), and only
 * a change on the coordinator's side should override that.
 */
export class NetmapApplier {
  private readonly appliedEndpoint = new Map<string, string | undefined>();

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
      if (!wanted.has(key) && this.device.removePeer(key)) {
        this.appliedEndpoint.delete(key);
        counts.removed++;
      }
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
    this.appliedEndpoint.delete(nodeKey);
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
    const ep = firstEndpoint(p);
    const existing = this.device.peers.get(p.nodeKey);
    if (!existing) {
      this.device.addPeer({ publicKey, allowedIps: allowed, endpoint: ep?.packed, name: p.name });
      this.appliedEndpoint.set(p.nodeKey, ep?.text);
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
    if (this.appliedEndpoint.get(p.nodeKey) !== ep?.text) {
      // Keep a learned endpoint when the coordinator no longer lists any.
      if (ep) existing.endpoint = ep.packed;
      this.appliedEndpoint.set(p.nodeKey, ep?.text);
      changed = true;
    }
    if (changed) counts.updated++;
  }
}
