// NAT traversal under faults, with real agents, relay and coordinator in the NAT lab:
//  - the relay restarts: agents reconnect by themselves, a relayed pair pings again, and a direct
//    pair does not notice the outage;
//  - `conntrack -F` on the router(s) of a direct pair (mappings lost): pings answered again within
//    5 s of the flush, and the pair goes back to a direct path;
//  - 10% loss + 20 ms delay on the WAN links of two NATed sites: their pairs still connect.
// Needs root.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { startMesh, waitFor, waitMeshReady, type Mesh, type MeshNode, type MeshSiteSpec } from '../../scripts/traversal/mesh-lab.js';
import { logTails, pairPathOf, pairPaths, pingSummary, timeUntilPingable } from '../../scripts/traversal/pair-checks.js';

const LOSSY = { lossPct: 10, delayMs: 20 };
const SITES: MeshSiteSpec[] = [
  { name: 'sym', nat: 'symmetric' },
  { name: 'prc', nat: 'port-restricted-cone' },
  { name: 'full', nat: 'full-cone' },
  { name: 'rest', nat: 'restricted-cone' },
  { name: 'lossr', nat: 'restricted-cone', netem: LOSSY },
  { name: 'lossp', nat: 'port-restricted-cone', netem: LOSSY },
];
const RELAY_DOWN_MS = 4000;
const RELAY_RECOVERY_BOUND_MS = 15_000;
const FLUSH_RECOVERY_BOUND_MS = 5000;
const FLUSH_ROUNDS = 3;

describe('NAT traversal under faults', { timeout: 600_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;
  const n = (name: string): MeshNode => mesh!.node(name);

  /** Pings a → b until both sides report `want` (pings keep the pair active), within ms. */
  async function settle(a: MeshNode, b: MeshNode, want: 'direct' | 'relay', ms = 15_000): Promise<void> {
    try {
      await waitFor(`${a.spec.name} x ${b.spec.name} to be ${want} on both sides`, async () => {
        await pingSummary(a, b, 1, 0.2, 1);
        const p = await pairPaths(a, b);
        return p.ab === want && p.ba === want;
      }, ms, 200);
    } catch (err) {
      assert.fail(`${(err as Error).message}; now ${JSON.stringify(await pairPaths(a, b))}\n${await logTails([a, b])}`);
    }
  }

  before(async () => {
    lab = await createLab({ name: 'tfault' });
    mesh = await startMesh(lab, SITES);
    await waitMeshReady(mesh, 60_000);
  });

  after(async () => {
    await mesh?.stop();
    await lab?.destroy();
  });

  test('relay restart: agents reconnect, the relayed pair pings again, a direct pair is unaffected', async () => {
    const [sym, prc, full, rest] = [n('sym'), n('prc'), n('full'), n('rest')];
    await settle(sym, prc, 'relay');
    await settle(full, rest, 'direct');
    const before = await pingSummary(sym, prc, 3);
    assert.equal(before.received, 3, `relayed pair before the restart:\n${before.output}`);

    const oldPid = mesh!.relay.proc.pid;
    const restarting = mesh!.relay.restart(RELAY_DOWN_MS);
    // SIGTERM lets the relay close its clients first; on a loaded machine that can take a while.
    await waitFor('the relay to exit', async () => !mesh!.relay.proc.running, 3500, 50).catch(() => undefined);
    assert.equal(mesh!.relay.proc.running, false, 'the relay is down');
    // While the relay is down: the direct pair keeps every ping and stays direct.
    const during = await pingSummary(full, rest, 10, 0.2, 1);
    const pathsDuring = await pairPaths(full, rest);
    assert.equal(mesh!.relay.proc.running, false, 'the relay was down for the whole check');
    await restarting;
    const upAt = Date.now();
    assert.notEqual(mesh!.relay.proc.pid, oldPid, 'a new relay process');
    assert.equal(during.received, during.sent, `direct pair during the relay outage:\n${during.output}`);
    assert.deepEqual(pathsDuring, { ab: 'direct', ba: 'direct' }, 'direct pair stays direct during the outage');

    const back = await timeUntilPingable(sym, prc, upAt, RELAY_RECOVERY_BOUND_MS);
    assert.ok(back !== null, `relayed pair did not ping within ${RELAY_RECOVERY_BOUND_MS} ms of the relay coming back\n${await logTails([sym, prc])}`);
    process.stdout.write(`# relayed pair answered ${back} ms after the relay came back (down ${RELAY_DOWN_MS} ms)\n`);
    for (const node of [sym, prc]) {
      const st = await node.agent.status();
      const home = st.relays?.find((r) => r.home);
      assert.ok(home?.connected, `${node.spec.name} reconnected to its home relay: ${JSON.stringify(st.relays)}`);
    }
    assert.equal(pairPathOf(await pairPaths(sym, prc)), 'relay');
    const after = await pingSummary(sym, prc, 5);
    assert.equal(after.received, 5, `relayed pair after the restart:\n${after.output}`);
  });

  // Recovery depends on when the flush falls between two heartbeats, so each case flushes 3 times.
  for (const c of [
    { a: 'sym', b: 'full', flush: ['sym'], what: 'the symmetric router of a symmetric x full-cone pair (new random ports)' },
    { a: 'prc', b: 'rest', flush: ['prc', 'rest'], what: 'both routers of a port-restricted x restricted-cone pair' },
  ]) {
    test(`conntrack -F on ${c.what}: pings back within 5 s, path back to direct`, async () => {
      const [a, b] = [n(c.a), n(c.b)];
      const times: Array<number | null> = [];
      for (let round = 1; round <= FLUSH_ROUNDS; round++) {
        await settle(a, b, 'direct', 20_000);
        // a random phase against the 2 s heartbeat
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 2000)));
        const t0 = Date.now();
        await Promise.all(c.flush.map((s) => n(s).site.flushConntrack()));
        const back = await timeUntilPingable(a, b, t0, 20_000);
        times.push(back);
        process.stdout.write(`# ${c.a} x ${c.b} round ${round}: pings answered ${back ?? 'never (20 s)'} ms after conntrack -F on ${c.flush.join(', ')}\n`);
        const logs = back === null || back > FLUSH_RECOVERY_BOUND_MS ? `\n${await logTails([a, b])}` : '';
        assert.ok(back !== null && back <= FLUSH_RECOVERY_BOUND_MS,
          `round ${round}: traffic back ${back ?? 'never'} ms after the flush (bound ${FLUSH_RECOVERY_BOUND_MS} ms; rounds so far ${JSON.stringify(times)}); paths now ${JSON.stringify(await pairPaths(a, b))}${logs}`);
      }
      await settle(a, b, 'direct', 20_000);
      const steady = await pingSummary(a, b, 5);
      assert.equal(steady.received, 5, `after recovery:\n${steady.output}`);
    });
  }

  test('10% loss + 20 ms delay on two NATed sites\' WAN links: their pairs still connect', async () => {
    for (const [x, y] of [['lossr', 'lossp'], ['lossp', 'sym']] as const) {
      const [a, b] = [n(x), n(y)];
      const first = await timeUntilPingable(a, b, Date.now(), 30_000);
      assert.ok(first !== null, `${x} -> ${y}: no ping reply within 30 s\n${await logTails([a, b])}`);
      const r = await pingSummary(a, b, 20, 0.2, 2);
      const paths = await pairPaths(a, b);
      process.stdout.write(`# ${x} x ${y} under loss: first reply after ${first} ms, ${r.received}/${r.sent} replies, avg ${r.avgMs ?? '-'} ms, path ${JSON.stringify(paths)}\n`);
      assert.ok(r.received > 0, `${x} -> ${y}: no replies under loss:\n${r.output}`);
      assert.notEqual(pairPathOf(paths), 'none', `${x} x ${y} has a path`);
      // Each impaired site adds 2 x 20 ms to a round trip: the packets really crossed the impaired links.
      const addedMs = 2 * LOSSY.delayMs * [a, b].filter((node) => node.spec.netem).length;
      assert.ok(r.avgMs !== null && r.avgMs >= addedMs * 0.9, `RTT ${r.avgMs} ms includes the ${addedMs} ms of emulated delay`);
    }
  });
});
