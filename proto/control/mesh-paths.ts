// The live mesh as the coordinator holds it (coordinator/mesh-paths.ts), as the admin API sends it:
//   GET /api/v1/admin/paths → AdminPaths: per node its latest path report, peers named.
import { z } from 'zod';
import { PeerPathReport } from './schemas.js';

export const AdminPathPeer = PeerPathReport.extend({
  /** The peer's node id and name on the coordinator. */
  peerId: z.number().int().nonnegative(),
  peerName: z.string().max(255),
  /** Since when (ISO 8601, coordinator clock) the reports show this path kind. */
  pathSince: z.string(),
}).strict();
export type AdminPathPeer = z.infer<typeof AdminPathPeer>;

export const AdminPathNode = z.object({
  nodeId: z.number().int().nonnegative(),
  name: z.string().max(255),
  /** The reporting node's NAT type from its netcheck, when it ran one. */
  natType: z.string().max(100).nullable(),
  /** When the coordinator received the report (ISO 8601). */
  reportedAt: z.string(),
  peers: z.array(AdminPathPeer),
}).strict();
export type AdminPathNode = z.infer<typeof AdminPathNode>;

export const AdminPaths = z.object({
  nodes: z.array(AdminPathNode),
  /** Reports stored, refused as too frequent, and peer entries naming no node (coordinator/mesh-paths.ts). */
  stats: z.object({ reports: z.number().int(), tooFrequent: z.number().int(), unknownPeers: z.number().int() }).strict(),
}).strict();
export type AdminPaths = z.infer<typeof AdminPaths>;
