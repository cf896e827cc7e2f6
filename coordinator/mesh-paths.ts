// The live mesh as the agents see it: each node's latest path report ({type:'paths'} on its
// stream), kept in memory only (it is live state, rebuilt within a second of every agent's
// reconnect). One writer: the stream server calls report()/forget(); readers take a snapshot or
// subscribe to changes (the console's live graph). Bounded: one report per node (the schema caps
// its peers), reports closer together than MIN_GAP_MS are dropped and counted, and at most
// MAX_SUBSCRIBERS listeners.
import { PATH_REPORT_MIN_INTERVAL_MS, type PeerPathReport, type StreamPaths } from '../proto/control/schemas.js';
import type { NodeRegistry } from './registry.js';

/** Half the agent's own minimum interval: room for timer jitter, no room for a flood. */
export const MIN_GAP_MS = PATH_REPORT_MIN_INTERVAL_MS / 2;
export const MAX_SUBSCRIBERS = 64;

/** One node's view of its peers, as it last reported it. */
export interface NodePaths {
  nodeId: number;
  natType: string | null;
  /** Peers by node id; reports naming keys that are not (or no longer) nodes are left out. */
  peers: (PeerPathReport & { peerId: number; pathSince: number })[];
  /** Milliseconds since the epoch, coordinator clock. */
  reportedAt: number;
}

export type MeshPathsListener = (change: { nodeId: number; paths: NodePaths | null }) => void;

export class MeshPaths {
  private readonly byNode = new Map<number, NodePaths>();
  private readonly listeners = new Set<MeshPathsListener>();
  readonly stats = { reports: 0, tooFrequent: 0, unknownPeers: 0 };

  constructor(private readonly registry: NodeRegistry, private readonly now: () => number = Date.now) {
    registry.onChange((c) => { if (c.kind === 'removed') this.forget(c.node.id); });
  }

  /** Stores a node's report; false (and counted) if it came too soon after the previous one. */
  report(nodeId: number, msg: StreamPaths): boolean {
    const t = this.now();
    const prev = this.byNode.get(nodeId);
    if (prev && t - prev.reportedAt < MIN_GAP_MS) { this.stats.tooFrequent++; return false; }
    const peers: NodePaths['peers'] = [];
    const before = new Map(prev?.peers.map((p) => [p.peerId, p]));
    for (const p of msg.peers) {
      const peer = this.registry.getByKey(p.peer);
      if (!peer || peer.id === nodeId) { this.stats.unknownPeers++; continue; }
      const was = before.get(peer.id);
      peers.push({ ...p, peerId: peer.id, pathSince: was && was.path === p.path ? was.pathSince : t });
    }
    const paths: NodePaths = { nodeId, natType: msg.natType, peers, reportedAt: t };
    this.byNode.set(nodeId, paths);
    this.stats.reports++;
    this.emit({ nodeId, paths });
    return true;
  }

  /** Drops a node's report (it was deleted). */
  forget(nodeId: number): void {
    if (this.byNode.delete(nodeId)) this.emit({ nodeId, paths: null });
  }

  get(nodeId: number): NodePaths | undefined { return this.byNode.get(nodeId); }
  all(): NodePaths[] { return [...this.byNode.values()]; }

  /** Calls `listener` on every change until the returned function is called; throws past the bound. */
  subscribe(listener: MeshPathsListener): () => void {
    if (this.listeners.size >= MAX_SUBSCRIBERS) throw new Error(`too many live mesh subscribers (at most ${MAX_SUBSCRIBERS})`);
    this.listeners.add(listener);
    return () => { this.listeners.delete(listener); };
  }

  private emit(change: { nodeId: number; paths: NodePaths | null }): void {
    for (const l of this.listeners) l(change);
  }
}
