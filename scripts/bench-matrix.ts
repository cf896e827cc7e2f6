// The NAT traversal grid as a benchmark users can run: builds one lab with two sites of each kind
// (no NAT, full cone, restricted, port-restricted, symmetric, UDP blocked, double NAT), one agent
// per site, a real coordinator and relay; probes every pair of kinds from cold and prints three
// grids (path, time to first reply, time to direct), the direct count among the 16 classic cells
// against the bar, and writes bench/results/matrix-<date>.json. Not a test: it only reports.
//
//   node dist/scripts/bench-matrix.js [--concurrency 3] [--settle-ms 6000]   (root; see scripts/bench-matrix)
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLab } from './natlab/index.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { startMesh, waitMeshReady } from './traversal/mesh-lab.js';
import { CLASSIC_BAR, GRID_KINDS, MAPPED_BAR, classicDirect, formatGrid, gridSites, mappedDirect, runGrid } from './traversal/grid.js';

interface Options { concurrency: number; settleMs: number }

function parseOptions(): Options {
  const usage = (msg?: string): never => {
    if (msg) process.stderr.write(`bench-matrix: ${msg}\n`);
    process.stderr.write('usage: bench-matrix [--concurrency 1-8] [--settle-ms 1000-30000]\n');
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({ options: { concurrency: { type: 'string' }, 'settle-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    return usage((err as Error).message);
  }
  if (values.help) usage();
  const concurrency = Number(values.concurrency ?? 3);
  const settleMs = Number(values['settle-ms'] ?? 6000);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 8) usage(`--concurrency must be an integer 1-8, got ${values.concurrency}`);
  if (!Number.isInteger(settleMs) || settleMs < 1000 || settleMs > 30_000) usage(`--settle-ms must be an integer 1000-30000, got ${values['settle-ms']}`);
  return { concurrency, settleMs };
}

async function main(): Promise<void> {
  const opts = parseOptions();
  const log = (l: string): void => { process.stderr.write(`${l}\n`); };
  const t0 = Date.now();
  const lab = await createLab({ name: 'bmx' });
  try {
    const mesh = await startMesh(lab, gridSites());
    try {
      await waitMeshReady(mesh, 120_000);
      log(`lab ready: ${mesh.nodes.length} agents in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      const cells = await runGrid(mesh, { ...opts, log });
      const classic = classicDirect(cells);
      const unconnected = cells.filter((c) => !c.connected);
      const offTable = cells.filter((c) => c.path !== c.expected);
      process.stdout.write(`${formatGrid(cells)}\n\n`);
      process.stdout.write(`classic NATs (full cone, restricted, port-restricted, symmetric; 4 x 4 cells, no port mapping): `
        + `direct on ${classic.direct}/${classic.total}, bar ${CLASSIC_BAR}/${classic.total}: ${classic.direct >= CLASSIC_BAR ? 'met' : 'NOT met'}\n`);
      if (classic.relayedCells.length > 0) process.stdout.write(`  not direct: ${classic.relayedCells.join('; ')}\n`);
      const mapped = mappedDirect(cells);
      process.stdout.write(`classic NATs with port mapping on one side (miniupnpd in that router; 4 x 4 cells): `
        + `direct on ${mapped.direct}/${mapped.total}, bar ${MAPPED_BAR}/${mapped.total}: ${mapped.direct >= MAPPED_BAR ? 'met' : 'NOT met'}\n`);
      if (mapped.relayedCells.length > 0) process.stdout.write(`  not direct: ${mapped.relayedCells.join('; ')}\n`);
      process.stdout.write(`pairs connected: ${cells.length - unconnected.length}/${cells.length}`
        + `${unconnected.length ? ` (no reply both ways after settling: ${unconnected.map((c) => `${c.a} x ${c.b}`).join(', ')})` : ''}\n`);
      const lostFirst = cells.filter((c) => c.firstReplyMs === null);
      if (lostFirst.length > 0) process.stdout.write(`first ping (3 s) unanswered: ${lostFirst.map((c) => `${c.a} x ${c.b}`).join(', ')}\n`);
      process.stdout.write(`paths differing from the classic table: ${offTable.length === 0 ? 'none' : offTable.map((c) => `${c.a} x ${c.b} ${c.path} (table: ${c.expected})`).join(', ')}\n`);
      const dir = join(REPO_ROOT, 'bench', 'results');
      await mkdir(dir, { recursive: true });
      const when = new Date().toISOString();
      const file = join(dir, `matrix-${when.replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z')}.json`);
      await writeFile(file, `${JSON.stringify({
        when, machine: { cpus: availableParallelism(), node: process.version }, options: opts,
        kinds: GRID_KINDS.map((k) => ({ id: k.id, label: k.label, nat: k.nat, doubleNat: !!k.doubleNat, udpBlocked: !!k.udpBlocked, portMapping: !!k.portMapping })),
        classic: { direct: classic.direct, total: classic.total, bar: CLASSIC_BAR, met: classic.direct >= CLASSIC_BAR },
        connected: cells.length - unconnected.length,
        pairs: cells.length,
        portMapping: { direct: mapped.direct, total: mapped.total, bar: MAPPED_BAR, met: mapped.direct >= MAPPED_BAR },
        cells,
      }, null, 2)}\n`);
      process.stdout.write(`wrote ${file} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
    } finally {
      await mesh.stop();
    }
  } finally {
    await lab.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-matrix: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
