// What netmaps and deltas are made of, encoded. Each node's Peer JSON (and its patches: only the
// live fields that changed) is encoded once per change and reused for every message carrying it.
// Records of active nodes are also kept joined in blocks of BLOCK_SIZE by id, so a full netmap of
// N peers is a concatenation of N/BLOCK_SIZE cached blocks (only the recipient's own block is
// rebuilt, without it) rather than N small pieces.
import type { Peer, PeerPatch, SelfNode } from '../proto/control/schemas.js';
import type { NodeRecord, NodeRegistry } from './registry.js';
import { isExitNode, servedRoutes } from './registry.js';

/** What changed about a peer since it was last sent: a bit set; CHANGED_RECORD means "send it whole". */
export const CHANGED_ENDPOINTS = 1; // endpoints, home relay, NAT kind
export const CHANGED_ONLINE = 2; // online, last seen
export const CHANGED_RECORD = 4;

const BLOCK_SIZE = 256;
const COMMA = Buffer.from(',');

export function peerOf(n: NodeRecord): Peer {
  return {
    id: n.id, name: n.name, nodeKey: n.nodeKey, discoKey: n.discoKey, ipv4: n.ipv4, ipv6: n.ipv6,
    endpoints: n.endpoints, homeRelay: n.homeRelay, natKind: n.natKind, online: n.online,
    lastSeen: n.lastSeen === null ? null : new Date(n.lastSeen).toISOString(),
    routes: servedRoutes(n), exitNode: isExitNode(n), tags: n.tags,
  };
}

function patchOf(n: NodeRecord, changed: number): PeerPatch {
  const p: PeerPatch = { id: n.id };
  if (changed & CHANGED_ENDPOINTS) {
    p.endpoints = n.endpoints;
    p.homeRelay = n.homeRelay;
    p.natKind = n.natKind;
  }
  if (changed & CHANGED_ONLINE) {
    p.online = n.online;
    p.lastSeen = n.lastSeen === null ? null : new Date(n.lastSeen).toISOString();
  }
  return p;
}

export function selfOf(n: NodeRecord): SelfNode {
  return {
    id: n.id, name: n.name, nodeKey: n.nodeKey, ipv4: n.ipv4, ipv6: n.ipv6,
    keyExpiresAt: n.keyExpiresAt === null ? null : new Date(n.keyExpiresAt).toISOString(), tags: n.tags,
    routes: servedRoutes(n),
  };
}

/** Joins runs of small parts (below 64 KiB) so a message is a few large fragments, not thousands. */
export function coalesce(parts: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  let runBytes = 0;
  const endRun = (): void => {
    if (run.length > 0) out.push(run.length === 1 ? run[0]! : Buffer.concat(run, runBytes));
    run = [];
    runBytes = 0;
  };
  for (const p of parts) {
    if (p.length >= 64 * 1024) {
      endRun();
      out.push(p);
    } else {
      run.push(p);
      runBytes += p.length;
      if (runBytes >= 64 * 1024) endRun();
    }
  }
  endRun();
  return out;
}

/** The parts separated by commas (for splicing into a JSON array). */
function commaSeparated(parts: Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (out.length > 0) out.push(COMMA);
    out.push(p);
  }
  return out;
}

export class PeerRecords {
  private readonly encoded = new Map<number, Buffer>();
  /** node id → patches by changed-bits (1..3) */
  private readonly patches = new Map<number, (Buffer | undefined)[]>();
  /** block index → ids of active nodes in it */
  private readonly blockMembers = new Map<number, Set<number>>();
  /** block index → its members' records joined with commas */
  private readonly blockCache = new Map<number, Buffer>();

  constructor(private readonly registry: NodeRegistry) {}

  /** The node changed: drop what was encoded from it. */
  invalidate(id: number): void {
    this.encoded.delete(id);
    this.patches.delete(id);
    this.blockCache.delete(Math.floor(id / BLOCK_SIZE));
  }

  /** Whether the node appears in everyone's netmap (everyone-sees-everyone mode). */
  setActive(id: number, active: boolean): void {
    const b = Math.floor(id / BLOCK_SIZE);
    let members = this.blockMembers.get(b);
    if (active) {
      if (!members) this.blockMembers.set(b, (members = new Set()));
      members.add(id);
    } else if (members) {
      members.delete(id);
      if (members.size === 0) this.blockMembers.delete(b);
    }
    this.blockCache.delete(b);
  }

  clearActive(): void {
    this.blockMembers.clear();
    this.blockCache.clear();
  }

  /** A node's whole record; null if the node is gone. */
  record(id: number): Buffer | null {
    let buf = this.encoded.get(id);
    if (buf === undefined) {
      const node = this.registry.get(id);
      if (!node) return null;
      buf = Buffer.from(JSON.stringify(peerOf(node)));
      this.encoded.set(id, buf);
    }
    return buf;
  }

  /** The fields of a node named by `changed` (CHANGED_ENDPOINTS | CHANGED_ONLINE). */
  patch(id: number, changed: number): Buffer | null {
    let byBits = this.patches.get(id);
    let buf = byBits?.[changed];
    if (buf === undefined) {
      const node = this.registry.get(id);
      if (!node) return null;
      buf = Buffer.from(JSON.stringify(patchOf(node, changed)));
      if (!byBits) this.patches.set(id, (byBits = []));
      byBits[changed] = buf;
    }
    return buf;
  }

  /** Records of these nodes, comma-separated. */
  list(ids: Iterable<number>): Buffer[] {
    const parts: Buffer[] = [];
    for (const id of ids) {
      const r = this.record(id);
      if (r) parts.push(r);
    }
    return commaSeparated(parts);
  }

  /** Records of every active node but `self`, comma-separated. */
  allExcept(self: number): Buffer[] {
    const selfBlock = Math.floor(self / BLOCK_SIZE);
    const blocks: Buffer[] = [];
    for (const [b, members] of this.blockMembers) {
      if (b === selfBlock) {
        const others = [...members].filter((id) => id !== self);
        if (others.length > 0) blocks.push(Buffer.concat(this.list(others)));
        continue;
      }
      let joined = this.blockCache.get(b);
      if (!joined) {
        joined = Buffer.concat(this.list(members));
        this.blockCache.set(b, joined);
      }
      blocks.push(joined);
    }
    return commaSeparated(blocks);
  }

  /**
   * A delta without its head: `"upserts":[...],"patches":[...],"removals":[...]<tail>}`.
   * `upserts` maps peer id → what changed; without `usePatches` every changed peer goes whole.
   */
  deltaBody(upserts: Iterable<[number, number]>, removals: Iterable<number>, usePatches: boolean, tail: string): Buffer {
    const whole: Buffer[] = [];
    const patched: Buffer[] = [];
    for (const [id, changed] of upserts) {
      if (usePatches && changed < CHANGED_RECORD) {
        const p = this.patch(id, changed);
        if (p) patched.push(p);
      } else {
        const r = this.record(id);
        if (r) whole.push(r);
      }
    }
    const rems = `],"removals":[${[...removals].join(',')}]${tail}}`;
    const parts = [Buffer.from('"upserts":['), ...commaSeparated(whole)];
    if (patched.length > 0) parts.push(Buffer.from('],"patches":['), ...commaSeparated(patched));
    parts.push(Buffer.from(rems));
    return Buffer.concat(parts);
  }
}
