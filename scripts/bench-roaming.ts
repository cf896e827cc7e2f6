// Relay-down and roaming benchmark (issue 12, item 3), several tries of each in one lab:
//  - first reply, relay unreachable: a brand-new node behind a port-restricted NAT whose router
//    drops everything toward the relay pings a full-cone peer right after `up` (bar: <= 0.5 s);
//    the same with the relay reachable, for reference;
//  - roaming: a laptop behind a port-restricted NAT moves to a second port-restricted NAT (old
//    link down, new link + default route up; each try moves it to a network it never used, as a
//    laptop entering a cafe does) while pinging a port-restricted peer every 100 ms both ways;
//    time until replies come back in both directions (bar: <= 2 s).
// Prints a table and writes bench/results/roaming-bench-<date>.json (with the git commit measured).
//
//   node dist/scripts/bench-roaming.js [--rounds 5]     (root; see scripts/bench-roaming)
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createLab, type Lab } from './natlab/index.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { startMesh, waitFor, waitMeshReady, type Mesh, type MeshNode } from './traversal/mesh-lab.js';
import { addMeshNode } from './traversal/mesh-extra.js';
import { pairPaths, pingSummary, timeUntilPingable } from './traversal/pair-checks.js';
import { blockRelay, firstReplyAfter, moveUplink } from './traversal/roaming-lab.js';
import { fmt, median, parseBenchOptions, writeBenchReport, runBench } from './bench-options.js';

const BAR_FIRST_REPLY_MS = 500;
const BAR_ROAMING_MS = 2000;
const WAIT_MS = 60_000;

interface Summary { tries: Array<number | null>; median: number | null; max: number | null; failed: number }

function summarize(tries: Array<number | null>): Summary {
  const ok = tries.filter((x): x is number => x !== null);
  return { tries, median: median(tries), max: ok.length === tries.length && ok.length > 0 ? Math.max(...ok) : null, failed: tries.length - ok.length };
}

async function firstReply(lab: Lab, mesh: Mesh, name: string, relayReachable: boolean): Promise<number | null> {
  const site = await lab.addSite(name, { nat: 'port-restricted-cone' });
  if (!relayReachable) await blockRelay(site, mesh.relay.host.ips);
  const node = await addMeshNode(mesh, site, name);
  try {
    return await timeUntilPingable(node, mesh.node('easy'), Date.now(), WAIT_MS, 50);
  } finally {
    await node.agent.stop().catch(() => undefined);
  }
}

async function settleDirect(a: MeshNode, b: MeshNode): Promise<boolean> {
  return waitFor('direct', async () => {
    await pingSummary(a, b, 1, 0.2, 1);
    const p = await pairPaths(a, b);
    return p.ab === 'direct' && p.ba === 'direct';
  }, 30_000, 200).then(() => true, () => false);
}

async function roamOnce(laptop: MeshNode, peer: MeshNode, from: string, to: string, gateway: string): Promise<{ up: number | null; down: number | null }> {
  const out = laptop.host.spawn(['ping', '-n', '-D', '-i', '0.1', peer.ip]);
  const back = peer.host.spawn(['ping', '-n', '-D', '-i', '0.1', laptop.ip]);
  try {
    await waitFor('pings both ways', async () => /bytes from/.test(out.stdout) && /bytes from/.test(back.stdout), 10_000, 50);
    const t0 = Date.now();
    await moveUplink(laptop.host, from, to, gateway);
    const moved = Date.now();
    const [u, d] = await Promise.all([firstReplyAfter(() => out.stdout, moved, WAIT_MS), firstReplyAfter(() => back.stdout, moved, WAIT_MS)]);
    return { up: u === null ? null : u - t0, down: d === null ? null : d - t0 };
  } finally {
    await out.kill('SIGTERM', 1000);
    await back.kill('SIGTERM', 1000);
  }
}

async function main(): Promise<number> {
  const { rounds } = parseBenchOptions('bench-roaming', { seconds: 1, rounds: 5 });
  const startedAt = new Date();
  const commit = (() => { try { return execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(); } catch { return null; } })();
  const lab = await createLab({ name: 'broam' });
  let mesh: Mesh | undefined;
  const relayDown: Array<number | null> = [];
  const relayUp: Array<number | null> = [];
  const roaming: Array<{ up: number | null; down: number | null; both: number | null }> = [];
  try {
    mesh = await startMesh(lab, [{ name: 'easy', nat: 'full-cone' }, { name: 'peer', nat: 'port-restricted-cone' }, { name: 'laptop', nat: 'port-restricted-cone' }]);
    await waitMeshReady(mesh, 60_000);
    for (let i = 0; i < rounds; i++) {
      relayDown.push(await firstReply(lab, mesh, `nd${i}`, false));
      relayUp.push(await firstReply(lab, mesh, `nu${i}`, true));
      process.stdout.write(`try ${i + 1}: first reply relay unreachable ${relayDown.at(-1) ?? 'never'} ms, relay up ${relayUp.at(-1) ?? 'never'} ms\n`);
    }
    const [laptop, peer] = [mesh.node('laptop'), mesh.node('peer')];
    let current = 'eth0';
    for (let i = 0; i < rounds; i++) {
      // A network the laptop never used: no NAT mapping or conntrack entry left from an earlier try.
      const cafe = await lab.addSite(`cafe${i}`, { nat: 'port-restricted-cone' });
      const next = `eth${i + 1}`;
      await cafe.addUplink(laptop.host, next);
      if (!(await settleDirect(laptop, peer))) process.stdout.write(`roam ${i + 1}: pair not direct before the move\n`);
      const r = await roamOnce(laptop, peer, current, next, cafe.gateway);
      current = next;
      const both = r.up === null || r.down === null ? null : Math.max(r.up, r.down);
      roaming.push({ ...r, both });
      process.stdout.write(`roam ${i + 1} (to cafe${i}): laptop->peer ${r.up ?? 'never'} ms, peer->laptop ${r.down ?? 'never'} ms\n`);
    }
  } finally {
    for (const node of mesh?.nodes.slice(3) ?? []) await node.agent.stop().catch(() => undefined);
    await mesh?.stop();
    await lab.destroy();
  }
  const down = summarize(relayDown);
  const up = summarize(relayUp);
  const roam = summarize(roaming.map((r) => r.both));
  process.stdout.write(`\ncommit ${commit ?? '?'}, ${rounds} tries each\n`);
  process.stdout.write(`first reply, relay unreachable: median ${fmt(down.median, 0)} ms, max ${fmt(down.max, 0)} ms (bar <= ${BAR_FIRST_REPLY_MS} ms: ${down.max !== null && down.max <= BAR_FIRST_REPLY_MS ? 'met' : 'NOT met'})\n`);
  process.stdout.write(`first reply, relay up:          median ${fmt(up.median, 0)} ms, max ${fmt(up.max, 0)} ms\n`);
  process.stdout.write(`roaming, both directions back:  median ${fmt(roam.median, 0)} ms, max ${fmt(roam.max, 0)} ms (bar <= ${BAR_ROAMING_MS} ms: ${roam.max !== null && roam.max <= BAR_ROAMING_MS ? 'met' : 'NOT met'})\n`);
  const report = {
    benchmark: 'roaming',
    startedAt: startedAt.toISOString(),
    commit,
    machine: { nproc: availableParallelism(), node: process.version },
    settings: {
      rounds, waitMs: WAIT_MS,
      firstReply: 'new node behind a port-restricted NAT pings a full-cone peer every 50 ms right after `up`; relay unreachable = its router drops everything toward the relay host',
      roaming: 'laptop and peer behind port-restricted NATs ping each other every 100 ms; the laptop moves to a second port-restricted NAT (old link down, new link and default route up), each try to a network never used before; time from the move until a reply in each direction',
    },
    firstReplyRelayUnreachableMs: down,
    firstReplyRelayUpMs: up,
    roamingMs: { ...roam, perTry: roaming },
    bars: {
      firstReplyMs: BAR_FIRST_REPLY_MS, firstReplyMet: down.max !== null && down.max <= BAR_FIRST_REPLY_MS,
      roamingMs: BAR_ROAMING_MS, roamingMet: roam.max !== null && roam.max <= BAR_ROAMING_MS,
    },
  };
  const file = await writeBenchReport('roaming-bench', startedAt, report);
  process.stdout.write(`\nwrote ${file}\n`);
  return 0;
}

runBench('bench-roaming', main);
