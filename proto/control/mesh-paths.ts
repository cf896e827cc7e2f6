// The live mesh as the coordinator holds it (coordinator/mesh-paths.ts), as the admin API sends it:
//   GET /api/v1/admin/paths → AdminPaths: per node its latest path report, peers named.
import * as z from 'zod/mini';
import { PeerPathReport } from './schemas.js';

export const AdminPathPeer = z.strictObject({
  ...PeerPathReport.shape,
  /** The peer's node id and name on the coordinator. */
  peerId: z.number().check(z.int(), z.nonnegative()),
  peerName: z.string().check(z.maxLength(255)),
  /** Since when (ISO 8601, coordinator clock) the reports show this path kind. */
  pathSince: z.string(),
});
export type AdminPathPeer = z.infer<typeof AdminPathPeer>;

export const AdminPathNode = z.strictObject({
  nodeId: z.number().check(z.int(), z.nonnegative()),
  name: z.string().check(z.maxLength(255)),
  /** The reporting node's NAT type from its netcheck, when it ran one. */
  natType: z.nullable(z.string().check(z.maxLength(100))),
  /** When the coordinator received the report (ISO 8601). */
  reportedAt: z.string(),
  peers: z.array(AdminPathPeer),
});
export type AdminPathNode = z.infer<typeof AdminPathNode>;

export const AdminPaths = z.strictObject({
  nodes: z.array(AdminPathNode),
  /** Reports stored, refused as too frequent, and peer entries naming no node (coordinator/mesh-paths.ts). */
  stats: z.strictObject({ reports: z.number().check(z.int()), tooFrequent: z.number().check(z.int()), unknownPeers: z.number().check(z.int()) }),
});
export type AdminPaths = z.infer<typeof AdminPaths>;
