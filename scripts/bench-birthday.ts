// Birthday probing benchmark (issue 12, item 2): fresh tries of symmetric × port-restricted and
// symmetric × restricted, each try on two new sites with new agents (no NAT state, no netcheck
// report carried over); the starting side alternates (even tries: the easy side pings first, odd:
// the symmetric side). Per try: direct or not within 30 s, time from the first ping to both sides
// direct (the netcheck the agents run for their NAT kind included), the probes the easy side
// sprayed and the sockets the hard side opened. Bar: ≥ 19/20 direct, median time to direct ≤ 5 s.
// Prints a table and writes bench/results/birthday-bench-<date>.json (with the git commit measured).
//
//   node dist/scripts/bench-birthday.js [--rounds 20]     (root; see scripts/bench-birthday)
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, type Lab, type NatBehaviour } from './natlab/index.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { peerOf, startMesh, waitFor, type Mesh, type MeshNode } from './traversal/mesh-lab.js';
import { addMeshNode } from './traversal/mesh-extra.js';
import { pairPaths, pingSummary } from './traversal/pair-checks.js';
import { fmt, median, parseBenchOptions } from './bench-options.js';

const DIRECT_WITHIN_MS = 30_000;
const BAR_DIRECT = 19 / 20;
const BAR_MEDIAN_MS = 5000;

interface Try {
  starter: 'easy' | 'hard';
  direct: boolean;
  timeToDirectMs: number | null;
  /** Probes the easy side sprayed in the successful attempt (null: no birthday success, e.g. direct by plain punching). */
  probes: number | null;
  /** Everything the easy side sprayed and the hard side sent from its sockets, all attempts. */
  easyPackets: number;
  hardPackets: number;
  socketsOpened: number;
  attempts: number;
}

async function oneTry(lab: Lab, mesh: Mesh, easyNat: NatBehaviour, i: number): Promise<Try> {
  const tag = easyNat === 'restricted-cone' ? 'r' : 'p';
  const [hs, es] = await Promise.all([lab.addSite(`bs${tag}${i}`, { nat: 'symmetric' }), lab.addSite(`be${tag}${i}`, { nat: easyNat })]);
  const nodes: MeshNode[] = [];
  try {
    nodes.push(await addMeshNode(mesh, hs, `bs${tag}${i}`));
    nodes.push(await addMeshNode(mesh, es, `be${tag}${i}`));
    const [hard, easy] = nodes as [MeshNode, MeshNode];
    await waitFor('both see each other with a relay', async () => {
      const [a, b] = await Promise.all([hard.agent.status(), easy.agent.status()]);
      return peerOf(a, easy.spec.name)?.relay != null && peerOf(b, hard.spec.name)?.relay != null;
    }, 30_000, 200);
    const starter = i % 2 === 0 ? 'easy' : 'hard';
    const [from, to] = starter === 'easy' ? [easy, hard] : [hard, easy];
    const t0 = Date.now();
    const direct = await waitFor('direct', async () => {
      await pingSummary(from, to, 1, 0.2, 1);
      const p = await pairPaths(from, to);
      return p.ab === 'direct' && p.ba === 'direct';
    }, DIRECT_WITHIN_MS, 100).then(() => true, () => false);
    const timeToDirectMs = direct ? Date.now() - t0 : null;
    await new Promise((r) => setTimeout(r, 300)); // the hard side's tick closes its other sockets
    const [hb, eb] = await Promise.all([hard.agent.status(), easy.agent.status()]).then((s) => s.map((x) => x.birthday ?? {}));
    return {
      starter, direct, timeToDirectMs,
      probes: (eb!.successes ?? 0) > 0 ? (eb!.lastSuccessPackets ?? null) : null,
      easyPackets: eb!.packetsSent ?? 0, hardPackets: hb!.packetsSent ?? 0, socketsOpened: hb!.socketsOpened ?? 0,
      attempts: (hb!.hardAttempts ?? 0),
    };
  } finally {
    for (const n of nodes) await n.agent.stop().catch(() => undefined);
    mesh.nodes.splice(0, mesh.nodes.length, ...mesh.nodes.filter((n) => !nodes.includes(n)));
  }
}

function summary(tries: Try[]): Record<string, unknown> {
  const ok = tries.filter((t) => t.direct).length;
  const probes = tries.map((t) => t.probes);
  return {
    direct: `${ok}/${tries.length}`, directRate: ok / tries.length,
    medianTimeToDirectMs: median(tries.map((t) => t.timeToDirectMs)),
    medianProbes: median(probes), maxProbes: Math.max(0, ...probes.filter((x): x is number => x !== null)),
    meanEasyPackets: tries.reduce((s, t) => s + t.easyPackets, 0) / tries.length,
    meanHardPackets: tries.reduce((s, t) => s + t.hardPackets, 0) / tries.length,
    meetsBar: ok / tries.length >= BAR_DIRECT && (median(tries.map((t) => t.timeToDirectMs)) ?? Infinity) <= BAR_MEDIAN_MS,
  };
}

async function main(): Promise<void> {
  const { rounds } = parseBenchOptions('bench-birthday', { seconds: 1, rounds: 20 });
  const commit = (() => { try { return execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { return null; } })();
  const lab = await createLab({ name: 'bdaybn' });
  let mesh: Mesh | undefined;
  const results: Record<string, { tries: Try[]; summary: Record<string, unknown> }> = {};
  try {
    mesh = await startMesh(lab, []);
    for (const easyNat of ['port-restricted-cone', 'restricted-cone'] as const) {
      const tries: Try[] = [];
      for (let i = 0; i < rounds; i++) {
        const t = await oneTry(lab, mesh, easyNat, i);
        tries.push(t);
        process.stdout.write(`symmetric x ${easyNat} #${i + 1} (${t.starter} starts): ${t.direct ? `direct after ${t.timeToDirectMs} ms` : 'NOT direct'}, probes ${t.probes ?? '-'}, easy sent ${t.easyPackets}, hard sent ${t.hardPackets} from ${t.socketsOpened} sockets\n`);
      }
      results[`symmetric x ${easyNat}`] = { tries, summary: summary(tries) };
    }
  } finally {
    await mesh?.stop();
    await lab.destroy();
  }
  process.stdout.write(`\ncommit ${commit ?? '?'}, ${rounds} fresh tries each\n`);
  for (const [pair, r] of Object.entries(results)) {
    const s = r.summary;
    process.stdout.write(`${pair}: direct ${s.direct as string}, median time to direct ${fmt(s.medianTimeToDirectMs as number | null, 0)} ms, median probes ${fmt(s.medianProbes as number | null, 0)} (max ${s.maxProbes as number}), mean packets easy ${(s.meanEasyPackets as number).toFixed(0)} / hard ${(s.meanHardPackets as number).toFixed(0)}, bar ${s.meetsBar ? 'met' : 'NOT met'}\n`);
  }
  const dir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `birthday-bench-${new Date().toISOString().slice(0, 10)}.json`);
  await writeFile(file, `${JSON.stringify({ commit, rounds, bar: { directRate: BAR_DIRECT, medianTimeToDirectMs: BAR_MEDIAN_MS }, results }, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench-birthday: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
