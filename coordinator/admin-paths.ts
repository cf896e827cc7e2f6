// The live mesh on the admin API, behind the admin guard (admin.ts):
//   GET /api/v1/admin/paths → AdminPaths: each node's latest path report (mesh-paths.ts), its
//   peers named, nodes by id. `pinhole admin paths` prints it as a table.
import type { AdminPathNode, AdminPaths } from '../proto/control/mesh-paths.js';
import type { ApiRequest, Route } from './http.js';
import type { MeshPaths } from './mesh-paths.js';
import type { NodeRegistry } from './registry.js';

export interface AdminPathsDeps {
  /** The admin token check (admin.ts adminGuard). */
  guard: (req: ApiRequest) => void;
  meshPaths: MeshPaths;
  registry: NodeRegistry;
}

/** The reply of GET /api/v1/admin/paths; reports of nodes deleted meanwhile are left out. */
export function adminPathsReply(meshPaths: MeshPaths, registry: NodeRegistry): AdminPaths {
  const nodes: AdminPathNode[] = [];
  for (const r of meshPaths.all()) {
    const node = registry.get(r.nodeId);
    if (!node) continue;
    const peers = r.peers.flatMap((p) => {
      const peer = registry.get(p.peerId);
      return peer ? [{ ...p, peerName: peer.name, pathSince: new Date(p.pathSince).toISOString() }] : [];
    });
    nodes.push({ nodeId: r.nodeId, name: node.name, natType: r.natType, reportedAt: new Date(r.reportedAt).toISOString(), peers });
  }
  nodes.sort((a, b) => a.nodeId - b.nodeId);
  return { nodes, stats: { ...meshPaths.stats } };
}

export function adminPathsRoutes(deps: AdminPathsDeps): Route[] {
  return [{
    method: 'GET', path: /^\/api\/v1\/admin\/paths$/, guard: deps.guard,
    handle: async () => ({ body: adminPathsReply(deps.meshPaths, deps.registry) }),
  }];
}
