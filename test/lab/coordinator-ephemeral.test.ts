// Ephemeral nodes (joined with an ephemeral auth key) are deleted --ephemeral-timeout after they
// go offline; coming back in time cancels that; ordinary nodes stay.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode, type StreamClient } from '../helpers/coordinator-node.js';

describe('coordinator ephemeral nodes', () => {
  let coord: CoordinatorProcess;
  let ephemeralKey: string;
  let plainKey: string;
  let watcher: StreamClient;
  const streams: StreamClient[] = [];
  const nodeIds = async (): Promise<number[]> => ((await coord.call('GET', '/api/v1/admin/nodes')).body.nodes as { id: number }[]).map((n) => n.id);

  before(async () => {
    coord = await CoordinatorProcess.start({ flags: ['--ephemeral-timeout', '1s', '--stream-keepalive', '500ms'] });
    ephemeralKey = await coord.createAuthKey({ reusable: true, ephemeral: true });
    plainKey = await coord.createAuthKey({ reusable: true });
    const w = new SimulatedNode();
    await w.join(coord.url, { authKey: plainKey, hostname: 'watcher' });
    watcher = await w.connect(coord.url);
    streams.push(watcher);
  });
  after(async () => {
    for (const s of streams) s.terminate();
    await coord.destroy();
  });

  test('an ephemeral node is deleted after going offline; its peers get a removal', async () => {
    const eph = new SimulatedNode();
    const self = await eph.join(coord.url, { authKey: ephemeralKey, hostname: 'eph' });
    const plain = new SimulatedNode();
    const plainSelf = await plain.join(coord.url, { authKey: plainKey, hostname: 'plain' });
    const se = await eph.connect(coord.url);
    const sp = await plain.connect(coord.url);
    streams.push(se, sp);
    await watcher.waitFor('eph online', () => watcher.peers.get(self.id)?.online === true);
    const nodesInfo = (await coord.call('GET', '/api/v1/admin/nodes')).body.nodes as { id: number; ephemeral: boolean }[];
    assert.equal(nodesInfo.find((n) => n.id === self.id)!.ephemeral, true);

    const t0 = Date.now();
    await se.close();
    await sp.close();
    await watcher.waitFor('eph offline', () => watcher.peers.get(self.id)?.online === false);
    await watcher.waitFor('eph removed', () => !watcher.peers.has(self.id), 5000);
    assert.ok(Date.now() - t0 >= 900, 'not before the timeout');
    assert.ok(!(await nodeIds()).includes(self.id));
    assert.ok(!(await coord.dump()).nodes!.some((n: any) => n.id === self.id), 'row deleted');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok((await nodeIds()).includes(plainSelf.id), 'an ordinary node stays');
    assert.equal(watcher.peers.get(plainSelf.id)?.online, false);
  });

  test('coming back before the timeout cancels the deletion', async () => {
    const eph = new SimulatedNode();
    const self = await eph.join(coord.url, { authKey: ephemeralKey, hostname: 'flaky' });
    const s1 = await eph.connect(coord.url);
    streams.push(s1);
    await watcher.waitFor('flaky online', () => watcher.peers.get(self.id)?.online === true);
    await s1.close();
    await new Promise((r) => setTimeout(r, 400));
    const s2 = await eph.connect(coord.url);
    streams.push(s2);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok((await nodeIds()).includes(self.id));
    assert.equal(watcher.peers.get(self.id)?.online, true);
  });

  test('an ephemeral node that never connects is deleted after the timeout too', async () => {
    const self = await new SimulatedNode().join(coord.url, { authKey: ephemeralKey, hostname: 'ghost' });
    assert.ok((await nodeIds()).includes(self.id));
    await new Promise((r) => setTimeout(r, 1600));
    assert.ok(!(await nodeIds()).includes(self.id));
  });
});
