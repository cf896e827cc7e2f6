// The traversal matrix: agents behind every NAT behaviour (two sites of each, so same-behaviour
// pairs are real pairs), a double-NAT site and a UDP-blocked site; every pair is pinged and its
// path observed. Used by test/lab/nat-traversal.test.ts and scripts/traversal-matrix.
import type { Lab, NatBehaviour } from '../natlab/index.js';
import { NAT_BEHAVIOURS } from '../natlab/index.js';
import { birthdayPair, probePair, startMesh, waitMeshReady, type Mesh, type MeshSiteSpec, type PairResult } from './mesh-lab.js';

const SHORT: Record<NatBehaviour, string> = {
  none: 'open', 'full-cone': 'full', 'restricted-cone': 'rest', 'port-restricted-cone': 'prc', symmetric: 'sym',
};

export function matrixSites(): MeshSiteSpec[] {
  const sites: MeshSiteSpec[] = [];
  for (const nat of NAT_BEHAVIOURS) for (const n of [1, 2]) sites.push({ name: `${SHORT[nat]}${n}`, nat });
  sites.push({ name: 'dbl', nat: 'full-cone', doubleNat: true });
  sites.push({ name: 'noudp', nat: 'port-restricted-cone', udpBlocked: true });
  return sites;
}

/** Every unordered pair of behaviours (site 1 of one with site 2 of the other), then the special sites with each behaviour. */
export function matrixPairs(): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  const list = [...NAT_BEHAVIOURS];
  for (let i = 0; i < list.length; i++) {
    for (let j = i; j < list.length; j++) pairs.push([`${SHORT[list[i]!]}1`, `${SHORT[list[j]!]}2`]);
  }
  for (const special of ['dbl', 'noudp']) for (const nat of list) pairs.push([special, `${SHORT[nat]}1`]);
  pairs.push(['dbl', 'noudp']);
  return pairs;
}

export interface MatrixRun {
  mesh: Mesh;
  rows: PairResult[];
}

export async function runMatrix(lab: Lab, log: (line: string) => void = () => {}): Promise<MatrixRun> {
  const mesh = await startMesh(lab, matrixSites());
  try {
    await waitMeshReady(mesh);
    const rows: PairResult[] = [];
    for (const [a, b] of matrixPairs()) {
      // Birthday pairs: the agents' netcheck, the punch grace and the spray take seconds.
      const r = await probePair(mesh.node(a), mesh.node(b), birthdayPair(mesh.node(a).spec, mesh.node(b).spec) ? 20_000 : 4000);
      log(`${a} x ${b}: ${r.path} (expected ${r.expected}), first reply ${r.firstReplyMs ?? 'none'} ms, direct after ${r.timeToDirectMs ?? '-'} ms`);
      rows.push(r);
    }
    return { mesh, rows };
  } catch (err) {
    await mesh.stop();
    throw err;
  }
}
