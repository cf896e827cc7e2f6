// Which client keys are connected at which peer relay, as the peers announce them (presence
// frames). Bounded: announcements past maxEntries are refused (and counted by the caller), so a
// peer relay cannot grow this relay's memory without limit. One writer: the mesh links.

export class PresenceTable<P> {
  private readonly where = new Map<string, P>();
  private readonly byPeer = new Map<P, Set<string>>();

  constructor(readonly maxEntries: number) {
    if (!Number.isInteger(maxEntries) || maxEntries < 1) throw new RangeError('presence table needs maxEntries >= 1');
  }

  get size(): number {
    return this.where.size;
  }

  /** Key `id` (hex) is connected at `peer`; false when the table is full (the entry is not stored). */
  announce(id: string, peer: P): boolean {
    const old = this.where.get(id);
    if (old === peer) return true;
    if (old === undefined && this.where.size >= this.maxEntries) return false;
    if (old !== undefined) this.byPeer.get(old)?.delete(id);
    this.where.set(id, peer);
    let set = this.byPeer.get(peer);
    if (!set) this.byPeer.set(peer, (set = new Set()));
    set.add(id);
    return true;
  }

  /** Key `id` left `peer` (an entry another peer announced since is kept). */
  withdraw(id: string, peer: P): void {
    if (this.where.get(id) !== peer) return;
    this.where.delete(id);
    this.byPeer.get(peer)?.delete(id);
  }

  /** The peer's connection is gone: everything it announced goes with it. Returns how many. */
  dropPeer(peer: P): number {
    const set = this.byPeer.get(peer);
    if (!set) return 0;
    for (const id of set) if (this.where.get(id) === peer) this.where.delete(id);
    this.byPeer.delete(peer);
    return set.size;
  }

  lookup(id: string): P | undefined {
    return this.where.get(id);
  }

  /** How many keys `peer` holds in the table. */
  countOf(peer: P): number {
    return this.byPeer.get(peer)?.size ?? 0;
  }
}
