// A hash table of flows keyed by address/port bytes, looked up straight from a packet without
// building a string key: the caller writes the tuple into a reusable scratch key, the table
// hashes it (FNV-1a) and compares bytes along a short chain. Insertion order is kept for sweeps.
import type { IpHeaderView } from '../../proto/ip/ip-header.js';

/** Longest key: version + two IPv6 addresses + two ports. */
export const MAX_FLOW_KEY = 1 + 16 + 16 + 2 + 2;

export interface FlowEntry {
  /** The tuple bytes (owned copy, exactly the key length). */
  readonly key: Uint8Array;
  readonly hash: number;
  /** Next entry in the same hash bucket (managed by FlowTable). */
  nextInBucket: FlowEntry | null;
}

/** A scratch key filled from packets; one per table user, reused for every lookup. */
export class FlowKey {
  readonly bytes = new Uint8Array(MAX_FLOW_KEY);
  length = 0;
  hash = 0;

  /**
   * (version, src address, src port) and, with withDestination, (dst address, dst port):
   * a TCP flow is the full 5-tuple, a UDP mapping only the peer's side.
   */
  fill(buf: Uint8Array, ip: IpHeaderView, srcPort: number, dstPort: number, withDestination: boolean): this {
    const b = this.bytes;
    const n = ip.addrLength;
    b[0] = ip.version;
    for (let i = 0; i < n; i++) b[1 + i] = buf[ip.srcOffset + i]!;
    b[1 + n] = srcPort >> 8;
    b[2 + n] = srcPort & 0xff;
    let len = 3 + n;
    if (withDestination) {
      for (let i = 0; i < n; i++) b[len + i] = buf[ip.dstOffset + i]!;
      b[len + n] = dstPort >> 8;
      b[len + n + 1] = dstPort & 0xff;
      len += n + 2;
    }
    this.length = len;
    let h = 0x811c9dc5;
    for (let i = 0; i < len; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    // Small integers stay unboxed in Map keys.
    this.hash = (h >>> 2) & 0x3fffffff;
    return this;
  }

  /** An owned copy of the current key, for a new entry. */
  copy(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}

function sameKey(a: Uint8Array, k: FlowKey): boolean {
  if (a.length !== k.length) return false;
  const b = k.bytes;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class FlowTable<T extends FlowEntry> {
  private readonly buckets = new Map<number, T>();
  /** Every entry, in insertion order (for idle sweeps and close()). */
  private readonly all = new Set<T>();

  get size(): number {
    return this.all.size;
  }

  find(k: FlowKey): T | undefined {
    let e: FlowEntry | null | undefined = this.buckets.get(k.hash);
    while (e) {
      if (sameKey(e.key, k)) return e as T;
      e = e.nextInBucket;
    }
    return undefined;
  }

  /** Adds an entry whose key is not in the table yet. */
  insert(entry: T): void {
    entry.nextInBucket = this.buckets.get(entry.hash) ?? null;
    this.buckets.set(entry.hash, entry);
    this.all.add(entry);
  }

  remove(entry: T): void {
    if (!this.all.delete(entry)) return;
    let e: FlowEntry | null | undefined = this.buckets.get(entry.hash);
    let prev: FlowEntry | null = null;
    while (e && e !== entry) {
      prev = e;
      e = e.nextInBucket;
    }
    if (!e) return;
    if (prev) prev.nextInBucket = e.nextInBucket;
    else if (e.nextInBucket) this.buckets.set(entry.hash, e.nextInBucket as T);
    else this.buckets.delete(entry.hash);
    entry.nextInBucket = null;
  }

  values(): IterableIterator<T> {
    return this.all.values();
  }
}
