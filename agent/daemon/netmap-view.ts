// The netmap the agent currently believes in: the last full map with every delta since folded
// in, indexed by node id so a delta costs what it touches, not the size of the map.
import type { FilterRule, Netmap, NetmapDelta, Peer, SelfNode } from '../../proto/control/schemas.js';

export interface DeltaChanges {
  /** Peers added or changed, as they are now. */
  upserted: Peer[];
  /** Peers that left, as they were. */
  removed: Peer[];
  /** The previous record of each upserted peer that existed before (by id). */
  previous: Map<number, Peer>;
  selfChanged: boolean;
}

export class NetmapView {
  readonly peers = new Map<number, Peer>();
  self: SelfNode;
  seq: number;
  packetFilter: FilterRule[] | null;
  relays: Netmap['relays'];
  dns: Netmap['dns'];

  constructor(netmap: Netmap) {
    this.self = netmap.self;
    this.seq = netmap.seq;
    this.packetFilter = netmap.packetFilter;
    this.relays = netmap.relays;
    this.dns = netmap.dns;
    for (const p of netmap.peers) if (p.id !== netmap.self.id) this.peers.set(p.id, p);
  }

  /** Folds a delta in: upserts, then patches (live fields of known peers), then removals. */
  applyDelta(delta: NetmapDelta): DeltaChanges {
    const changes: DeltaChanges = { upserted: [], removed: [], previous: new Map(), selfChanged: false };
    const upsert = (p: Peer): void => {
      const old = this.peers.get(p.id);
      if (old && !changes.previous.has(p.id)) changes.previous.set(p.id, old);
      this.peers.set(p.id, p);
      changes.upserted.push(p);
    };
    for (const p of delta.upserts) {
      if (p.id !== this.self.id) upsert(p); // never a peer of itself
    }
    for (const patch of delta.patches ?? []) {
      const old = this.peers.get(patch.id);
      if (!old) continue; // a patch only changes a peer we know
      const next: Peer = { ...old };
      if (patch.endpoints !== undefined) next.endpoints = patch.endpoints;
      if (patch.homeRelay !== undefined) next.homeRelay = patch.homeRelay;
      if (patch.natKind !== undefined) next.natKind = patch.natKind;
      if (patch.online !== undefined) next.online = patch.online;
      if (patch.lastSeen !== undefined) next.lastSeen = patch.lastSeen;
      upsert(next);
    }
    for (const id of delta.removals) {
      const old = this.peers.get(id);
      if (!old) continue;
      this.peers.delete(id);
      changes.removed.push(changes.previous.get(id) ?? old);
    }
    changes.upserted = changes.upserted.filter((p) => this.peers.get(p.id) === p);
    if (delta.packetFilter !== undefined) this.packetFilter = delta.packetFilter;
    if (delta.self) {
      changes.selfChanged = JSON.stringify(delta.self) !== JSON.stringify(this.self);
      this.self = delta.self;
    }
    this.seq = Math.max(this.seq, delta.seq);
    return changes;
  }

  toNetmap(): Netmap {
    return {
      type: 'netmap', seq: this.seq, self: this.self, peers: [...this.peers.values()],
      packetFilter: this.packetFilter, relays: this.relays,
      ...(this.dns ? { dns: this.dns } : {}),
    };
  }
}
