// scripts/traversal-matrix: runs the NAT traversal matrix once, prints the table (pair, path,
// time to first reply, time to direct) and writes bench/results/traversal-<time>.json.
//   node dist/scripts/traversal-matrix.js [--only a,b]     (root: builds network namespaces)
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab } from './natlab/index.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { formatPairTable, probePair, startMesh, waitMeshReady } from './traversal/mesh-lab.js';
import { matrixSites, runMatrix } from './traversal/matrix.js';

async function main(): Promise<void> {
  const onlyArg = process.argv.indexOf('--only');
  const only = onlyArg > 0 ? process.argv[onlyArg + 1]?.split(',') : undefined;
  const lab = await createLab({ name: 'trav' });
  try {
    let rows;
    if (only && only.length === 2) {
      const specs = matrixSites().filter((s) => only.includes(s.name));
      const mesh = await startMesh(lab, specs);
      try {
        await waitMeshReady(mesh);
        rows = [await probePair(mesh.node(only[0]!), mesh.node(only[1]!))];
      } finally { await mesh.stop(); }
    } else {
      const run = await runMatrix(lab, (l) => process.stderr.write(`${l}\n`));
      rows = run.rows;
      await run.mesh.stop();
    }
    process.stdout.write(`${formatPairTable(rows)}\n`);
    const dir = join(REPO_ROOT, 'bench', 'results');
    await mkdir(dir, { recursive: true });
    const file = join(dir, `traversal-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    await writeFile(file, `${JSON.stringify({ when: new Date().toISOString(), rows }, null, 2)}\n`);
    process.stdout.write(`wrote ${file}\n`);
    const bad = rows.filter((r) => r.firstReplyMs === null || r.path !== r.expected);
    process.exitCode = bad.length === 0 ? 0 : 1;
  } finally {
    await lab.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`traversal-matrix: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
