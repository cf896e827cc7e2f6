// Birthday probing in one lab: a coordinator, a relay and three sites — a symmetric NAT, a
// port-restricted cone (two sites) and a restricted cone — with real agents. The symmetric node
// goes direct with a port-restricted node by birthday probing (the classic table says relay),
// whichever side pings first, and with the restricted node (plain punching already opens that one); status shows the path, the endpoint through which it
// runs, and the birthday counters (attempts, packets, sockets), and ping works over the path.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { peerOf, startMesh, waitFor, waitMeshReady, type Mesh, type MeshNode } from '../../scripts/traversal/mesh-lab.js';
import { logTails, pairPaths, pairPathOf, pingSummary } from '../../scripts/traversal/pair-checks.js';
import { SPRAY_BUDGET, BIRTHDAY_SOCKETS } from '../../agent/magicsock/birthday-plan.js';
/** Probes that reach an open mapping before the easy side's spray stops at the first pong: one, rarely two (the spray runs on for a round trip). */
const MAX_HITS = 3;

describe('birthday probing: symmetric NAT × restricted and port-restricted cones', { timeout: 150_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;

  before(async () => {
    lab = await createLab({ name: 'bday' });
    mesh = await startMesh(lab, [
      { name: 'sym', nat: 'symmetric' },
      { name: 'prc', nat: 'port-restricted-cone' },
      { name: 'rc', nat: 'restricted-cone' },
      { name: 'prc2', nat: 'port-restricted-cone' },
    ]);
    await waitMeshReady(mesh);
  });

  after(async () => {
    await mesh?.stop();
    await lab?.destroy();
  });

  /** Pings from `from` to `to` (and back) until both report a direct path; the time it took, ms. */
  async function untilDirect(from: MeshNode, to: MeshNode, ms: number): Promise<number> {
    const t0 = Date.now();
    try {
      await waitFor(`${from.spec.name} x ${to.spec.name} direct`, async () => {
        await pingSummary(from, to, 1, 0.2, 1);
        return pairPathOf(await pairPaths(from, to)) === 'direct';
      }, ms, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}: paths ${JSON.stringify(await pairPaths(from, to))}\n${await logTails([from, to], 25)}`);
    }
    return Date.now() - t0;
  }

  test('symmetric × port-restricted: direct by birthday probing, started by the port-restricted side', async () => {
    const [sym, prc] = [mesh!.node('sym'), mesh!.node('prc')];
    const ms = await untilDirect(prc, sym, 25_000);
    // The hard side closes the sockets no probe reached at its next tick (≤ 250 ms) once its path runs through the winner.
    let [ss, sp] = await Promise.all([sym.agent.status(), prc.agent.status()]);
    await waitFor('the hard side to close the sockets no probe reached', async () => {
      [ss, sp] = await Promise.all([sym.agent.status(), prc.agent.status()]);
      return (ss.birthday?.socketsOpen ?? BIRTHDAY_SOCKETS) <= MAX_HITS;
    }, 3000, 100).catch(() => undefined);
    // The easy side reaches the symmetric NAT's public address at the port birthday probing found.
    const seenByPrc = peerOf(sp, 'sym')!;
    assert.equal(seenByPrc.path, 'direct');
    assert.equal(seenByPrc.endpoint?.split(':')[0], sym.site.wanIp);
    assert.equal(peerOf(ss, 'prc')!.path, 'direct');
    const bs = ss.birthday!;
    const bp = sp.birthday!;
    assert.ok((bs.hardAttempts ?? 0) >= 1 && (bs.successes ?? 0) >= 1, `${JSON.stringify(bs)} ${JSON.stringify(bp)} ${JSON.stringify(ss.peers)}`);
    assert.ok((bp.easyAttempts ?? 0) >= 1 && (bp.successes ?? 0) >= 1, JSON.stringify(bp));
    assert.ok((bs.socketsOpened ?? 0) >= BIRTHDAY_SOCKETS);
    const packets = bp.lastSuccessPackets!;
    assert.ok(packets >= 1 && packets <= SPRAY_BUDGET, `probes ${packets}`);
    // Only the winning socket stays open, and any other a probe hit before the spray stopped (the
    // easy side may send there): one, rarely two, never the 255 others.
    const open = bs.socketsOpen ?? 0;
    assert.ok(open >= 1 && open <= MAX_HITS, JSON.stringify(bs));
    for (const [x, y] of [[prc, sym], [sym, prc]] as const) {
      const p = await pingSummary(x, y, 5, 0.2);
      assert.equal(p.received, 5, `${x.spec.name} → ${y.spec.name}: ${p.output}`);
    }
    const text = await prc.agent.cli(['status']);
    assert.match(text.stdout, /birthday probing: \d+ attempts, \d+ direct, \d+ packets sent/);
    // Why the path is what it is, per peer: both NAT kinds (the peer's as it reported it through the
    // coordinator after its netcheck) and this peer's birthday outcome.
    await waitFor('each side to show the other\'s reported NAT kind', async () => {
      [ss, sp] = await Promise.all([sym.agent.status(), prc.agent.status()]);
      return peerOf(ss, 'prc')!.nat?.peerSource === 'reported' && peerOf(sp, 'sym')!.nat?.peerSource === 'reported';
    }, 10_000, 200).catch(() => undefined);
    const natAtSym = peerOf(ss, 'prc')!;
    const natAtPrc = peerOf(sp, 'sym')!;
    assert.deepEqual(natAtSym.nat, { self: 'symmetric', peer: 'port-restricted-cone', peerSource: 'reported' }, JSON.stringify(natAtSym));
    assert.deepEqual(natAtPrc.nat, { self: 'port-restricted-cone', peer: 'symmetric', peerSource: 'reported' }, JSON.stringify(natAtPrc));
    assert.equal(natAtSym.birthday?.role, 'hard', JSON.stringify(natAtSym.birthday));
    assert.equal(natAtSym.birthday?.outcome, 'direct', JSON.stringify(natAtSym.birthday));
    assert.equal(natAtPrc.birthday?.role, 'easy', JSON.stringify(natAtPrc.birthday));
    assert.equal(natAtPrc.birthday?.outcome, 'direct', JSON.stringify(natAtPrc.birthday));
    assert.ok((natAtPrc.birthday?.attempts ?? 0) >= 1 && (natAtPrc.birthday?.probes ?? 0) >= 1, JSON.stringify(natAtPrc.birthday));
    const peerText = (await prc.agent.cli(['status'])).stdout;
    process.stdout.write(`# prc's status for sym: ${/^ {2}nat: .*$/m.exec(peerText)?.[0]?.trim()}\n`);
    assert.match(peerText, /^ {2}nat: this side port-restricted cone, peer symmetric \(reported\); birthday: \d+ attempts?, direct after \d+\.\d s, \d+ probes \(easy side\)$/m, peerText);
    process.stdout.write(`# sym x prc: direct after ${ms} ms; easy side sprayed ${packets} probes (${bp.lastSuccessMs} ms); hard side opened ${bs.socketsOpened} sockets\n`);
    // Still direct after heartbeats: the winning socket keeps the path alive.
    await new Promise((r) => setTimeout(r, 5000));
    assert.deepEqual(await pairPaths(sym, prc), { ab: 'direct', ba: 'direct' });
  });

  test('symmetric × port-restricted: direct by birthday probing, started by the symmetric side', async () => {
    const [sym, prc2] = [mesh!.node('sym'), mesh!.node('prc2')];
    const before = (await sym.agent.status()).birthday!;
    const ms = await untilDirect(sym, prc2, 25_000);
    // Each side books the success at its next tick: the hard side once its path runs through one of
    // its birthday sockets, the easy side when a probe's pong comes back (if the hard side's ping
    // got through first, the easy side ends its spray as moot, not as a success).
    let [ss, sp] = await Promise.all([sym.agent.status(), prc2.agent.status()]);
    const succeeded = (): boolean => (ss.birthday!.successes ?? 0) > (before.successes ?? 0) || (sp.birthday!.successes ?? 0) >= 1;
    await waitFor('a birthday success on either side', async () => {
      [ss, sp] = await Promise.all([sym.agent.status(), prc2.agent.status()]);
      return succeeded();
    }, 5000, 100).catch(() => undefined);
    assert.equal(peerOf(sp, 'sym')!.endpoint?.split(':')[0], sym.site.wanIp);
    assert.ok((ss.birthday!.hardAttempts ?? 0) > (before.hardAttempts ?? 0), JSON.stringify(ss.birthday));
    assert.ok(succeeded(), JSON.stringify({ sym: ss.birthday, prc2: sp.birthday }));
    const p = await pingSummary(prc2, sym, 5, 0.2);
    assert.equal(p.received, 5, p.output);
    process.stdout.write(`# sym x prc2 (sym starts): direct after ${ms} ms; easy side sprayed ${sp.birthday!.lastSuccessPackets} probes\n`);
  });

  test('symmetric × restricted: direct, started by the symmetric side', async () => {
    const [sym, rc] = [mesh!.node('sym'), mesh!.node('rc')];
    const ms = await untilDirect(sym, rc, 25_000);
    const p = await pingSummary(sym, rc, 5, 0.2);
    assert.equal(p.received, 5, p.output);
    const sr = await rc.agent.status();
    assert.equal(peerOf(sr, 'sym')!.endpoint?.split(':')[0], sym.site.wanIp);
    process.stdout.write(`# sym x rc: direct after ${ms} ms; rc birthday ${JSON.stringify(sr.birthday)}\n`);
  });
});
