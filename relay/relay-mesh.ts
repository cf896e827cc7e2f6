// The relay mesh (`pinhole relay --mesh-with URL ... --mesh-key-file F`): one dialled link to
// every peer relay (mesh-link.ts), the peers' links into this relay (mesh-session.ts), and the
// presence table saying which peer holds which client key. The relay asks route() for a key it
// does not hold, and tells announce() when its own clients come and go.
import type { WebSocket } from 'ws';
import type { PresenceEntry } from '../proto/relay/mesh-frames.js';
import { keyHex, type MeshHost } from './mesh-host.js';
import { MeshLink, meshUrl } from './mesh-link.js';
import { PresenceTable } from './mesh-presence.js';
import { MeshSession } from './mesh-session.js';

export interface RelayMeshOptions {
  /** Peer relays' URLs (ws://HOST:PORT[/relay]); this relay's own URL among them is skipped. */
  peers: readonly string[];
  /** Client keys remembered as connected at peers, all peers together; default 100,000. */
  maxPresence?: number;
}

export interface RelayMeshStatus {
  peers: Array<{ url: string; state: string; key: string | null; keys: number; lastError: string | null }>;
  inbound: number;
  presence: number;
}

export class RelayMesh {
  private readonly links: MeshLink[];
  private readonly sessions = new Set<MeshSession>();
  private readonly table: PresenceTable<MeshLink>;

  constructor(private readonly host: MeshHost, opts: RelayMeshOptions) {
    this.table = new PresenceTable(opts.maxPresence ?? 100_000);
    const events = {
      onPresence: (link: MeshLink, entries: PresenceEntry[]) => {
        for (const e of entries) {
          const id = keyHex(e.nodeKey);
          if (!e.connected) this.table.withdraw(id, link);
          else if (!this.table.announce(id, link)) host.counters.mesh.drops.presenceFull++;
        }
        host.routesChanged();
        host.counters.mesh.presence = this.table.size;
      },
      onDown: (link: MeshLink) => {
        this.table.dropPeer(link);
        host.routesChanged();
        host.counters.mesh.presence = this.table.size;
      },
    };
    this.links = [...new Set(opts.peers.map(meshUrl))].map((u) => new MeshLink(u, host, events));
  }

  /** The link to the peer relay holding `dst`, if one does (forward frames to it with link.forward). */
  route(dst: Uint8Array): MeshLink | null {
    const link = this.table.lookup(keyHex(dst));
    return link && link.state === 'open' ? link : null;
  }

  /** A peer relay dialled in on the mesh path. */
  accept(ws: WebSocket, remote: string): void {
    this.sessions.add(new MeshSession(ws, this.host, remote, (s) => this.sessions.delete(s)));
  }

  /** One of this relay's clients connected (or left for good). */
  announce(nodeKey: Uint8Array, connected: boolean): void {
    const entries = [{ connected, nodeKey }];
    for (const s of this.sessions) s.announce(entries);
  }

  tick(now: number): void {
    for (const l of this.links) l.tick(now);
    for (const s of this.sessions) s.tick(now);
  }

  status(): RelayMeshStatus {
    return {
      peers: this.links.filter((l) => !l.isSelf).map((l) => ({
        url: l.url, state: l.state, key: l.peerKey ? Buffer.from(l.peerKey).toString('base64') : null, keys: this.table.countOf(l), lastError: l.lastError || null,
      })),
      inbound: [...this.sessions].filter((s) => s.state === 'open').length,
      presence: this.table.size,
    };
  }

  close(): void {
    for (const l of this.links) l.close();
    for (const s of [...this.sessions]) s.close('shutting-down', 'relay is stopping');
  }
}
