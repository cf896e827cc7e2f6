// Node key expiry: an expired node drops out of its peers' netmaps, its stream is closed, and it
// must present an auth key again (then it gets its old identity back). Challenges expire too.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode, type StreamClient } from '../helpers/coordinator-node.js';

describe('coordinator node key expiry', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  after(async () => { for (const c of cleanup.reverse()) await c(); });

  test('a node whose key expires is dropped and must re-authenticate; it keeps its identity', async () => {
    const coord = await CoordinatorProcess.start({ flags: ['--node-key-expiry', '1500ms'] });
    cleanup.push(() => coord.destroy());
    const key = await coord.createAuthKey({ reusable: true });
    const node = new SimulatedNode();
    const self = await node.join(coord.url, { authKey: key, hostname: 'shortlived' });
    assert.ok(Math.abs(Date.parse(self.keyExpiresAt!) - Date.now() - 1500) < 1000);
    const s = await node.connect(coord.url);
    cleanup.push(() => s.terminate());
    await s.waitFor('closed on expiry', () => s.closed !== null, 5000);
    assert.equal(s.closed!.code, 4003);
    assert.match(s.errors.join(), /node key expired/);

    const r = await node.register(coord.url, { hostname: 'shortlived' });
    assert.equal(r.status, 403);
    assert.match(r.body.error, /node key expired: re-authenticate/);
    const s2 = await node.connect(coord.url);
    cleanup.push(() => s2.terminate());
    await s2.waitFor('hello refused', () => s2.closed !== null);
    assert.equal(s2.closed!.code, 4003);

    const again = await node.join(coord.url, { authKey: key, hostname: 'shortlived' });
    assert.deepEqual([again.id, again.ipv4, again.ipv6, again.name], [self.id, self.ipv4, self.ipv6, self.name]);
    assert.ok(Date.parse(again.keyExpiresAt!) > Date.now());
  });

  describe('admin expiry', () => {
    let coord: CoordinatorProcess;
    let key: string;
    const streams: StreamClient[] = [];
    before(async () => {
      coord = await CoordinatorProcess.start();
      key = await coord.createAuthKey({ reusable: true });
    });
    after(async () => {
      for (const s of streams) s.terminate();
      await coord.destroy();
    });

    test('expiring a node removes it from its peers and closes its stream; an auth key brings it back', async () => {
      const watcher = new SimulatedNode();
      const victim = new SimulatedNode();
      await watcher.join(coord.url, { authKey: key, hostname: 'watcher' });
      const v = await victim.join(coord.url, { authKey: key, hostname: 'victim' });
      const sw = await watcher.connect(coord.url);
      const sv = await victim.connect(coord.url);
      streams.push(sw, sv);
      await sw.waitFor('victim online', () => sw.peers.get(v.id)?.online === true);

      const r = await coord.call('POST', `/api/v1/admin/nodes/${v.id}/expire`);
      assert.equal(r.status, 200);
      assert.ok(Date.parse(r.body.keyExpiresAt) <= Date.now());
      await sw.waitFor('victim removed', () => !sw.peers.has(v.id));
      await sv.waitFor('victim stream closed', () => sv.closed !== null);
      assert.equal(sv.closed!.code, 4003);
      assert.equal((await victim.register(coord.url, { hostname: 'victim' })).status, 403);

      const back = await victim.join(coord.url, { authKey: key, hostname: 'victim' });
      assert.deepEqual([back.id, back.ipv4], [v.id, v.ipv4]);
      await sw.waitFor('victim back', () => sw.peers.has(v.id));
      assert.deepEqual(sw.violations, []);
    });

    test('expiring an unknown node is a 404; a bad id a 400', async () => {
      assert.equal((await coord.call('POST', '/api/v1/admin/nodes/9999/expire')).status, 404);
      assert.equal((await coord.call('POST', '/api/v1/admin/nodes/abc/expire')).status, 400);
    });
  });
});
