// Double NAT and two nodes behind one NAT that does not hairpin, with a real coordinator, relay
// and agents in one lab. (a) A node behind a home NAT behind a carrier-grade NAT goes direct with
// a node behind an ordinary port-restricted NAT (both NATs map endpoint-independently), and with
// a node behind a symmetric NAT after birthday probing (relayed meanwhile); traffic flows both ways on each pair.
// (b) Two nodes on one LAN behind a NAT that does not hairpin (netcheck says so) reach each other
// directly at their LAN addresses, not through the relay.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { birthdayPair, expectedPath, peerOf, startMesh, waitFor, waitMeshReady, type Mesh, type MeshNode } from '../../scripts/traversal/mesh-lab.js';
import { addMeshNode } from '../../scripts/traversal/mesh-extra.js';
import { logTails, pairPaths, pairPathOf, pingSummary } from '../../scripts/traversal/pair-checks.js';
import type { NetcheckReport } from '../../agent/netcheck/report.js';

describe('double NAT and two nodes behind one NAT', { timeout: 120_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;
  let lan2: MeshNode | undefined;

  before(async () => {
    lab = await createLab({ name: 'dblnat' });
    mesh = await startMesh(lab, [
      { name: 'dbl', nat: 'port-restricted-cone', doubleNat: true },
      { name: 'prc', nat: 'port-restricted-cone' },
      { name: 'sym', nat: 'symmetric' },
      { name: 'lan1', nat: 'port-restricted-cone' },
    ]);
    lan2 = await addMeshNode(mesh, mesh.node('lan1').site, 'lan2');
    await waitMeshReady(mesh);
  });

  after(async () => {
    await lan2?.agent.stop();
    await mesh?.stop();
    await lab?.destroy();
  });

  /** Pings both ways until both sides report the path `want`. */
  async function settle(a: MeshNode, b: MeshNode, want: 'direct' | 'relay'): Promise<void> {
    try {
      await waitFor(`${a.spec.name} x ${b.spec.name} to settle ${want}`, async () => {
        await Promise.all([pingSummary(a, b, 1, 0.2, 1), pingSummary(b, a, 1, 0.2, 1)]);
        return pairPathOf(await pairPaths(a, b)) === want;
      }, 15_000, 200);
    } catch (err) {
      throw new Error(`${(err as Error).message}: paths ${JSON.stringify(await pairPaths(a, b))}\n${await logTails([a, b], 15)}`);
    }
  }

  async function assertTrafficBothWays(a: MeshNode, b: MeshNode, count = 5): Promise<void> {
    for (const [x, y] of [[a, b], [b, a]] as const) {
      const p = await pingSummary(x, y, count, 0.2);
      if (p.received !== count) {
        assert.fail(`${x.spec.name} → ${y.spec.name}: ${p.output}\npaths ${JSON.stringify(await pairPaths(a, b))}\n${await logTails([a, b], 40)}`);
      }
    }
  }

  test('double NAT × port-restricted NAT: direct, to the CGN\'s public address, traffic both ways', async () => {
    const [dbl, prc] = [mesh!.node('dbl'), mesh!.node('prc')];
    assert.equal(expectedPath(dbl.spec, prc.spec), 'direct');
    assert.ok(dbl.site.cgn, 'the dbl site sits behind a CGN');
    await settle(dbl, prc, 'direct');
    await assertTrafficBothWays(dbl, prc);
    const seen = peerOf(await prc.agent.status(), 'dbl')!;
    assert.equal(seen.path, 'direct');
    // the outermost mapping: the CGN's address on the lab internet, not the home router's CGN-side one
    assert.equal(seen.endpoint?.split(':')[0], dbl.site.wanIp);
    assert.equal(peerOf(await dbl.agent.status(), 'prc')!.endpoint?.split(':')[0], prc.site.wanIp);
  });

  test('double NAT × symmetric NAT: relayed at first, then direct by birthday probing, traffic both ways', async () => {
    const [dbl, sym] = [mesh!.node('dbl'), mesh!.node('sym')];
    // Both of dbl's NATs map endpoint-independently: to the symmetric side it is an "easy" NAT.
    assert.ok(birthdayPair(dbl.spec, sym.spec));
    assert.equal(expectedPath(dbl.spec, sym.spec), 'direct');
    await settle(dbl, sym, 'relay');
    await assertTrafficBothWays(dbl, sym, 3);
    await settle(dbl, sym, 'direct');
    await assertTrafficBothWays(dbl, sym);
    const b = (await sym.agent.status()).birthday!;
    assert.ok((b.successes ?? 0) >= 1, JSON.stringify(b));
    assert.equal(peerOf(await dbl.agent.status(), 'sym')!.endpoint?.split(':')[0], sym.site.wanIp);
  });

  test('two nodes behind one non-hairpinning NAT talk directly over their LAN addresses', async () => {
    const [l1, l2] = [mesh!.node('lan1'), lan2!];
    assert.equal(l1.site, l2.site);
    // the NAT really does not hairpin: a probe to our own public mapping never comes back
    const nc = await l1.agent.cli(['netcheck', '--json'], 20_000);
    assert.equal(nc.code, 0, nc.stderr);
    const report = JSON.parse(nc.stdout) as NetcheckReport;
    assert.equal(report.ipv4?.split(':')[0], l1.site.wanIp);
    assert.equal(report.hairpinning, false);

    await settle(l1, l2, 'direct');
    await assertTrafficBothWays(l1, l2);
    const [s1, s2] = await Promise.all([l1.agent.status(), l2.agent.status()]);
    const port1 = s1.interface.listenPort;
    const port2 = s2.interface.listenPort;
    assert.equal(peerOf(s1, 'lan2')!.endpoint, `${l2.host.ip}:${port2}`);
    assert.equal(peerOf(s2, 'lan1')!.endpoint, `${l1.host.ip}:${port1}`);
    assert.ok(l1.host.ip.startsWith('198.18.') && l2.host.ip.startsWith('198.18.'));
    // and each advertises its LAN address as a candidate, next to the NAT's mapping
    const advertised = s1.control?.endpoints ?? [];
    assert.ok(advertised.includes(`${l1.host.ip}:${port1}`), JSON.stringify(advertised));
    assert.ok(advertised.some((e) => e.startsWith(`${l1.site.wanIp}:`)), JSON.stringify(advertised));
  });
});
