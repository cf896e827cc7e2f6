// A laptop moves between two NATed networks (home NAT -> cafe NAT: old link down, new link and
// default route up) while pinging a peer behind a port-restricted NAT, both ways. The agent sees
// the change through its link monitor, redials the relay and the coordinator at once, re-runs
// STUN and tells the peer its new endpoints by call-me-maybe through the relay: traffic comes back
// in both directions within seconds (measured before this change: about 57 s) and the pair goes
// direct again over the cafe NAT. The strict 2 s bar is measured by scripts/bench-roaming. Needs root.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Lab, type Site } from '../../scripts/natlab/index.js';
import { peerOf, startMesh, waitFor, waitMeshReady, type Mesh, type MeshNode } from '../../scripts/traversal/mesh-lab.js';
import { logTails, pairPaths, pingSummary } from '../../scripts/traversal/pair-checks.js';
import { firstReplyAfter, moveUplink } from '../../scripts/traversal/roaming-lab.js';

/** Robust on a loaded 2-core CI machine; the bar (2 s) is the benchmark's. */
const RECOVERY_BOUND_MS = 10_000;

describe('roaming: a laptop moves from one NATed network to another', { timeout: 240_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;
  let cafe: Site;
  let cafeIp = '';

  before(async () => {
    lab = await createLab({ name: 'roam' });
    mesh = await startMesh(lab, [{ name: 'peer', nat: 'port-restricted-cone' }, { name: 'laptop', nat: 'port-restricted-cone' }]);
    cafe = await lab.addSite('cafe', { nat: 'port-restricted-cone' });
    cafeIp = await cafe.addUplink(mesh.node('laptop').host, 'eth1');
    await waitMeshReady(mesh, 60_000);
  });

  after(async () => {
    await mesh?.stop();
    await lab?.destroy();
  });

  async function settleDirect(a: MeshNode, b: MeshNode, ms: number): Promise<void> {
    await waitFor(`${a.spec.name} x ${b.spec.name} direct on both sides`, async () => {
      await pingSummary(a, b, 1, 0.2, 1);
      const p = await pairPaths(a, b);
      return p.ab === 'direct' && p.ba === 'direct';
    }, ms, 200).catch(async (err: Error) => assert.fail(`${err.message}; now ${JSON.stringify(await pairPaths(a, b))}\n${await logTails([a, b])}`));
  }

  test('traffic back both ways, then direct over the new NAT', async () => {
    const [laptop, peer] = [mesh!.node('laptop'), mesh!.node('peer')];
    await settleDirect(laptop, peer, 20_000);
    const out = laptop.host.spawn(['ping', '-n', '-D', '-i', '0.1', peer.ip]);
    const back = peer.host.spawn(['ping', '-n', '-D', '-i', '0.1', laptop.ip]);
    try {
      await waitFor('pings flowing both ways', async () => /bytes from/.test(out.stdout) && /bytes from/.test(back.stdout), 5000, 50);
      const t0 = Date.now();
      await moveUplink(laptop.host, 'eth0', 'eth1', cafe.gateway);
      const moved = Date.now();
      const [upMs, downMs] = await Promise.all([
        firstReplyAfter(() => out.stdout, moved, 60_000), firstReplyAfter(() => back.stdout, moved, 60_000),
      ]);
      const recovery = upMs === null || downMs === null ? null : Math.max(upMs, downMs) - t0;
      process.stdout.write(`# roaming: laptop->peer back after ${upMs === null ? 'never' : upMs - t0} ms, peer->laptop after ${downMs === null ? 'never' : downMs - t0} ms (bound ${RECOVERY_BOUND_MS} ms)\n`);
      assert.ok(recovery !== null && recovery <= RECOVERY_BOUND_MS,
        `traffic back after ${recovery ?? 'never (60 s)'} ms (bound ${RECOVERY_BOUND_MS} ms); paths ${JSON.stringify(await pairPaths(laptop, peer))}\n${await logTails([laptop, peer], 40)}`);
    } finally {
      await out.kill('SIGTERM', 1000);
      await back.kill('SIGTERM', 1000);
    }
    await settleDirect(laptop, peer, 20_000);
    const seen = peerOf(await peer.agent.status(), 'laptop');
    assert.ok(seen?.endpoint?.startsWith(`${cafe.wanIp}:`), `the peer reaches the laptop through the cafe NAT (${cafe.wanIp}, laptop at ${cafeIp}): ${JSON.stringify(seen)}`);
    const st = await laptop.agent.status();
    assert.ok(st.relays?.some((r) => r.home && r.connected), `the laptop's home relay is connected again: ${JSON.stringify(st.relays)}`);
    const steady = await pingSummary(laptop, peer, 5);
    assert.equal(steady.received, 5, steady.output);
  });
});
