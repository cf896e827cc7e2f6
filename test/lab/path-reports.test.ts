// Path reports, end to end with real agents, relay and coordinator: two nodes behind symmetric
// NATs (relayed: the classic table allows nothing else), one behind a full-cone NAT (direct
// with both), and one next to it started with --force-relay. The coordinator's live mesh (GET /api/v1/admin/paths, `pinhole admin paths`) shows
// each node's paths as the agents see them: direct with the endpoint, or relayed with the reason
// ("pings … unanswered … symmetric NAT", after `pinhole netcheck` told the nodes their NAT type);
// `pinhole status` prints the reason. Also measured: from an agent's "direct path" log line to
// the coordinator holding it (the bar: ≤ 2 s).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { startMesh, waitFor, waitMeshReady, type Mesh, type MeshNode } from '../../scripts/traversal/mesh-lab.js';
import { addMeshNode } from '../../scripts/traversal/mesh-extra.js';
import { logTails, pairPathOf, pairPaths, pingSummary } from '../../scripts/traversal/pair-checks.js';
import { AdminPaths, type AdminPathNode } from '../../proto/control/mesh-paths.js';

describe('path reports: the coordinator sees every node\'s paths and why not direct', { timeout: 120_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;
  let paths: AdminPaths | undefined;
  let forced: MeshNode | undefined;

  const fetchPaths = async (): Promise<AdminPaths> => {
    const r = await mesh!.coord.request('GET', '/api/v1/admin/paths', undefined, true);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return AdminPaths.parse(r.body);
  };
  const nodeOf = (p: AdminPaths, name: string): AdminPathNode | undefined => p.nodes.find((n) => n.name === name);
  const peerIn = (p: AdminPaths, from: string, to: string) => nodeOf(p, from)?.peers.find((x) => x.peerName === to);

  before(async () => {
    lab = await createLab({ name: 'pathrep' });
    mesh = await startMesh(lab, [
      { name: 'sym1', nat: 'symmetric' },
      { name: 'sym2', nat: 'symmetric' },
      { name: 'fc', nat: 'full-cone' },
    ]);
    forced = await addMeshNode(mesh, mesh.node('fc').site, 'forced', { extraArgs: ['--force-relay'] });
    await waitMeshReady(mesh);
    // Each symmetric node learns its NAT type (the reason and the report name it).
    for (const n of [mesh.node('sym1'), mesh.node('sym2')]) {
      const r = await n.agent.cli(['netcheck', '--json'], 30_000);
      assert.equal(r.code, 0, r.stderr);
      assert.notEqual(JSON.parse(r.stdout).mapping, 'endpoint-independent', `${n.spec.name}: ${r.stdout}`);
    }
    const settle = async (a: MeshNode, b: MeshNode, want: 'direct' | 'relay'): Promise<void> => {
      await waitFor(`${a.spec.name} x ${b.spec.name} to settle ${want}`, async () => {
        await Promise.all([pingSummary(a, b, 1, 0.2, 1), pingSummary(b, a, 1, 0.2, 1)]);
        return pairPathOf(await pairPaths(a, b)) === want;
      }, 15_000, 200).catch(async (err: Error) => { throw new Error(`${err.message}\n${await logTails([a, b], 15)}`); });
    };
    const [sym1, sym2, fc] = [mesh.node('sym1'), mesh.node('sym2'), mesh.node('fc')];
    await Promise.all([settle(sym1, fc, 'direct'), settle(sym2, fc, 'direct')]);
    // The symmetric pair: traffic, so both sides probe (and their pings go unanswered); and the forced one.
    await Promise.all([pingSummary(sym1, sym2, 5, 0.2, 1), pingSummary(sym2, sym1, 5, 0.2, 1), pingSummary(forced!, sym1, 3, 0.2, 1)]);
    await waitFor('the coordinator to hold every node\'s paths', async () => {
      const p = await fetchPaths();
      paths = p;
      const ok = (from: string, to: string, path: string): boolean => peerIn(p, from, to)?.path === path;
      return ok('sym1', 'fc', 'direct') && ok('fc', 'sym1', 'direct') && ok('sym2', 'fc', 'direct') && ok('fc', 'sym2', 'direct')
        && ok('sym1', 'sym2', 'relay') && ok('sym2', 'sym1', 'relay') && ok('forced', 'sym1', 'relay')
        && /unanswered/.test(peerIn(p, 'sym1', 'sym2')?.whyNotDirect ?? '') && /unanswered/.test(peerIn(p, 'sym2', 'sym1')?.whyNotDirect ?? '');
    }, 20_000, 300).catch((err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(paths, null, 1)}`); });
  });

  after(async () => {
    await forced?.agent.stop();
    await mesh?.stop();
    await lab?.destroy();
  });

  test('direct pairs: direct with the endpoint and a latency, no reason; pongs were received', () => {
    for (const [a, b] of [['sym1', 'fc'], ['fc', 'sym1'], ['sym2', 'fc'], ['fc', 'sym2']] as const) {
      const p = peerIn(paths!, a, b)!;
      assert.match(p.endpoint ?? '', /^\d+\.\d+\.\d+\.\d+:\d+$/, `${a} → ${b}`);
      assert.equal(p.relay, null);
      assert.equal(p.whyNotDirect, null);
      assert.ok(p.latencyMs !== null && p.latencyMs >= 0, `${a} → ${b}: latency ${p.latencyMs}`);
      assert.ok(p.tried.pongsReceived >= 1, `${a} → ${b}: ${JSON.stringify(p.tried)}`);
    }
  });

  test('the symmetric pair: relayed through the lab relay, pings unanswered, this side\'s symmetric NAT named', () => {
    for (const [a, b] of [['sym1', 'sym2'], ['sym2', 'sym1']] as const) {
      const p = peerIn(paths!, a, b)!;
      assert.equal(p.relay, 'lab');
      assert.equal(p.endpoint, null);
      assert.match(p.whyNotDirect!, /^pings to \d+ candidates? unanswered for \d+ s \((this side behind symmetric NAT|both sides behind symmetric NAT)/, `${a} → ${b}`);
      assert.ok(p.tried.candidates >= 1 && p.tried.pingsSent >= 1, JSON.stringify(p.tried));
      assert.equal(p.tried.pongsReceived, 0, `${a} → ${b}: no pong over a direct candidate`);
      assert.match(nodeOf(paths!, a)!.natType ?? '', /^symmetric/);
    }
    assert.equal(nodeOf(paths!, 'fc')!.natType, null, 'fc never ran netcheck');
  });

  test('--force-relay: relayed, and the reason says so', () => {
    const p = peerIn(paths!, 'forced', 'sym1')!;
    assert.equal(p.relay, 'lab');
    assert.equal(p.whyNotDirect, 'forced to relay (--force-relay / PINHOLE_FORCE_RELAY)');
    assert.equal(p.tried.pingsSent, 0, 'no direct probing');
  });

  test('pinhole admin paths prints the mesh as a table; pinhole status prints the reason', async () => {
    const r = await mesh!.coord.adminCli(['paths']);
    assert.equal(r.code, 0, r.stderr);
    process.stdout.write(`${r.stdout.replace(/^/gm, '# ')}\n`);
    assert.match(r.stdout, /^NODE\s+PEER\s+PATH\s+VIA\s+MS\s+TRIED\s+WHY NOT DIRECT$/m);
    assert.match(r.stdout, /^sym1\s+fc\s+direct\s+\d+\.\d+\.\d+\.\d+:\d+\s+[\d.]+\s+\d+\/\d+\/\d+\s+-$/m);
    assert.match(r.stdout, /^sym1\s+sym2\s+relay\s+lab\s+\S+\s+\d+\/\d+\/0\s+pings to \d+ candidates? unanswered/m);
    assert.match(r.stdout, /^NAT \(netcheck\): .*sym1: symmetric/m);
    const j = await mesh!.coord.adminCli(['paths', '--json']);
    assert.equal(j.code, 0, j.stderr);
    const parsed = AdminPaths.parse(JSON.parse(j.stdout));
    assert.deepEqual(parsed.nodes.map((n) => n.name).sort(), ['fc', 'forced', 'sym1', 'sym2']);
    assert.ok(parsed.stats.reports >= 4, JSON.stringify(parsed.stats));
    assert.equal(parsed.stats.tooFrequent, 0, 'the agents keep to the interval');
    const st = await mesh!.node('sym1').agent.cli(['status']);
    assert.equal(st.code, 0, st.stderr);
    const block = st.stdout.split('\n\n').find((b) => /^peer: sym2/m.test(b)) ?? '';
    assert.match(block, /^ {2}path: relay lab/m, st.stdout);
    assert.match(block, /^ {2}why not direct: pings to \d+ candidates? unanswered for \d+ s \(.*symmetric NAT.*\); tried \d+ candidates?, \d+ pings?, 0 pongs$/m, st.stdout);
    const fcBlock = st.stdout.split('\n\n').find((b) => /^peer: fc/m.test(b)) ?? '';
    assert.doesNotMatch(fcBlock, /why not direct/);
    const json = JSON.parse((await mesh!.node('sym1').agent.cli(['status', '--json'])).stdout) as { peers: { name: string; whyNotDirect?: string | null }[] };
    assert.match(json.peers.find((p) => p.name.startsWith('sym2'))!.whyNotDirect ?? '', /unanswered/);
  });

  test('a direct path reaches the coordinator within 2 s of the agent seeing it', async () => {
    const figures: string[] = [];
    for (const [a, b] of [['sym1', 'fc'], ['fc', 'sym1'], ['sym2', 'fc'], ['fc', 'sym2']] as const) {
      const since = Date.parse(peerIn(paths!, a, b)!.pathSince);
      const log = await readFile(join(mesh!.node(a).agent.dir, 'agent.log'), 'utf8');
      // The agent's first "direct path" line for the peer after it last lost one (pino: time in ms).
      let seen: number | null = null;
      for (const line of log.split('\n')) {
        let rec: { time?: number; msg?: string };
        try { rec = JSON.parse(line) as typeof rec; } catch { continue; }
        if (!rec.msg?.startsWith(`${b}`) || rec.time === undefined || rec.time > since) continue;
        if (/: direct path lost/.test(rec.msg)) seen = null;
        else if (/: direct path /.test(rec.msg) && seen === null) seen = rec.time;
      }
      assert.ok(seen !== null, `${a}: no "direct path" line for ${b} before the coordinator had it`);
      const ms = since - seen;
      figures.push(`${a} → ${b}: ${ms} ms`);
      assert.ok(ms >= 0 && ms <= 2000, `${a} → ${b}: ${ms} ms`);
    }
    process.stdout.write(`# agent "direct path" → coordinator: ${figures.join(', ')}\n`);
  });

  test('a restarted coordinator (its live mesh in memory only) gets every table again when the agents reconnect', async () => {
    const coord = mesh!.coord;
    await coord.kill9();
    await coord.start();
    const t0 = Date.now();
    let p: AdminPaths | undefined;
    await waitFor('every node to report again', async () => {
      p = await fetchPaths();
      return p.nodes.length === 4 && p.nodes.every((n) => n.peers.length === 3);
    }, 30_000, 300).catch((err: Error) => { throw new Error(`${err.message}: ${JSON.stringify(p, null, 1)}`); });
    process.stdout.write(`# after a coordinator restart, every table back in ${Date.now() - t0} ms\n`);
    assert.equal(peerIn(p!, 'sym1', 'fc')!.path, 'direct');
    assert.equal(peerIn(p!, 'sym1', 'sym2')!.path, 'relay');
  });
});
