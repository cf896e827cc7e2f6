// One more managed agent in an existing mesh, on a site that already has one (a second host on
// its LAN): e.g. a pair forced onto the relay (PINHOLE_FORCE_RELAY=1) next to a direct pair.
import type { Site } from '../natlab/index.js';
import { startManagedAgent } from '../tunnels/pinhole-managed.js';
import { runId } from '../tunnels/keys.js';
import { tlsEnv } from '../tunnels/lab-tls.js';
import type { Mesh, MeshNode } from './mesh-lab.js';

/**
 * Starts an agent on a new host of `site`, joins it to the mesh as `name` and adds it to
 * mesh.nodes. mesh.stop() does not know it: the caller stops `node.agent` first.
 */
export async function addMeshNode(mesh: Mesh, site: Site, name: string, opts: { env?: Record<string, string>; authKey?: string; extraArgs?: string[] } = {}): Promise<MeshNode> {
  const host = await site.addHost(`x${mesh.nodes.length}`);
  const env = { ...tlsEnv(mesh.tls), ...opts.env };
  const agent = await startManagedAgent(host, {
    tun: `px${runId()}${mesh.nodes.length}`.slice(0, 15), ...(Object.keys(env).length > 0 ? { env } : {}), ...(opts.extraArgs ? { extraArgs: opts.extraArgs } : {}),
  });
  try {
    const key = opts.authKey ?? await mesh.coord.createAuthKey({ reusable: false });
    const r = await agent.cli(['up', '--coordinator', mesh.coord.url, '--auth-key', key, '--hostname', name], 30_000);
    if (r.code !== 0) throw new Error(`${name}: pinhole up failed: ${r.stderr.trim()}`);
    const spec = { name, nat: site.nat };
    const node: MeshNode = { spec, site, host, agent, ip: (await agent.status()).self!.ipv4! };
    mesh.nodes.push(node);
    return node;
  } catch (err) {
    await agent.stop();
    throw err;
  }
}
