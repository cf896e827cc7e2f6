// The console's live mesh at scale: a coordinator in this process with 1,000 nodes and 1,000
// pairs reported on its live mesh, headless Chromium signed in on #mesh; measures the first paint
// of the graph (navigation start → Cytoscape's first render with every edge), best and worst of
// RUNS page loads. Bar: ≤ 2 s. Writes bench/results/console.json.
//   node dist/scripts/bench-console.js [--nodes N] [--edges N] [--runs N]
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { launchChromium } from './console/browser.js';
import { startConsoleCoordinator } from './console/in-process.js';
import { REPO_ROOT } from './tunnels/paths.js';

const BAR_MS = 2000;
const { values } = parseArgs({ options: { nodes: { type: 'string', default: '1000' }, edges: { type: 'string', default: '1000' }, runs: { type: 'string', default: '3' } } });
const nodeCount = Number(values.nodes);
const edgeCount = Number(values.edges);
const runs = Number(values.runs);

const c = await startConsoleCoordinator();
const browser = await launchChromium();
try {
  const nodes = [];
  for (let i = 0; i < nodeCount; i++) nodes.push(await c.addNode(`node-${i}`));
  // Edges: a ring, then chords; each edge reported by its first node (one report per node).
  const byNode = new Map<number, { peer: (typeof nodes)[number]; i: number }[]>();
  for (let e = 0; e < edgeCount; e++) {
    const a = e % nodeCount;
    const b = (a + 1 + Math.floor(e / nodeCount) * 7) % nodeCount;
    if (!byNode.has(a)) byNode.set(a, []);
    byNode.get(a)!.push({ peer: nodes[b]!, i: e });
  }
  for (const [a, peers] of byNode) {
    c.report(nodes[a]!, peers.map(({ peer, i }) => (i % 3 === 0
      ? { peer, path: 'relay' as const, relay: 'lab-relay', latencyMs: 20 + (i % 30), whyNotDirect: 'symmetric NAT on both sides' }
      : { peer, path: 'direct' as const, endpoint: '198.18.0.20:41641', latencyMs: 1 + (i % 10) })), 'endpoint-independent mapping');
  }
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(c.consoleUrl);
  await page.fill('#token', c.token);
  await page.click('button[type=submit]');
  await page.waitForSelector('table.nodes');
  const samples: number[] = [];
  for (let r = 0; r < runs; r++) {
    await page.goto(`${c.consoleUrl}#mesh`);
    await page.reload();
    await page.waitForSelector('body[data-graph-painted]', { state: 'attached', timeout: 30_000 });
    const ms = await page.evaluate(() => performance.getEntriesByName('graph-painted')[0]!.startTime);
    const edges = Number(await page.getAttribute('body', 'data-graph-painted'));
    if (edges !== edgeCount) throw new Error(`the graph painted ${edges} edges, not ${edgeCount}`);
    samples.push(ms);
  }
  const result = {
    nodes: nodeCount, edges: edgeCount, runs, firstPaintMs: samples.map((x) => Math.round(x)),
    bestMs: Math.round(Math.min(...samples)), worstMs: Math.round(Math.max(...samples)), barMs: BAR_MS,
    pass: Math.max(...samples) <= BAR_MS, at: new Date().toISOString(),
  };
  const dir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'console.json'), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`console graph first paint, ${nodeCount} nodes / ${edgeCount} edges: best ${result.bestMs} ms, worst ${result.worstMs} ms (bar ${BAR_MS} ms): ${result.pass ? 'PASS' : 'FAIL'}`);
  if (!result.pass) process.exitCode = 1;
} finally {
  await browser.close();
  await c.close();
}
