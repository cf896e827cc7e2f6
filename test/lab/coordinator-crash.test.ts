// kill -9 at any moment loses nothing the coordinator acknowledged: registrations, auth keys
// (their uses and revocations), the policy, approved routes, expiries and the server key are all
// there after a restart on the same database.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode } from '../helpers/coordinator-node.js';
import type { SelfNode } from '../../proto/control/schemas.js';

describe('coordinator crash safety', () => {
  const coords: CoordinatorProcess[] = [];
  after(async () => { for (const c of coords) await c.destroy(); });

  test('everything acknowledged before kill -9 is there after the restart', async () => {
    const coord = await CoordinatorProcess.start();
    coords.push(coord);
    const serverKey = (await coord.call('GET', '/api/v1/server')).body.serverKey;
    const once = await coord.createAuthKey();
    const reusable = await coord.createAuthKey({ reusable: true, tags: ['tag:ci'] });
    const revoked = await coord.createAuthKey({ reusable: true });
    const keysNow = (await coord.call('GET', '/api/v1/admin/authkeys')).body.authKeys;
    assert.equal((await coord.call('DELETE', `/api/v1/admin/authkeys/${keysNow[2].id}`)).status, 200);
    const onceNode = new SimulatedNode();
    const onceSelf = await onceNode.join(coord.url, { authKey: once, hostname: 'once' });
    const router = new SimulatedNode();
    const routerSelf = await router.join(coord.url, { authKey: reusable, hostname: 'router', advertiseRoutes: ['10.20.0.0/16'] });
    assert.equal((await coord.call('POST', `/api/v1/admin/nodes/${routerSelf.id}/routes`, { routes: ['10.20.0.0/16'] })).status, 200);
    const policy = { tags: { 'tag:ci': [] }, acls: [{ action: 'accept', src: ['*'], dst: ['tag:ci:*'] }] };
    assert.equal((await coord.call('PUT', '/api/v1/admin/policy', policy)).status, 200);
    const expired = (await coord.call('POST', `/api/v1/admin/nodes/${onceSelf.id}/expire`)).body.keyExpiresAt;
    const last = new SimulatedNode();
    const lastSelf = await last.join(coord.url, { authKey: reusable, hostname: 'last' });
    await coord.kill9(); // right after the last acknowledgement

    await coord.launch();
    assert.equal((await coord.call('GET', '/api/v1/server')).body.serverKey, serverKey);
    const nodes = (await coord.call('GET', '/api/v1/admin/nodes')).body.nodes as any[];
    assert.deepEqual(nodes.map((n) => [n.id, n.name, n.ipv4, n.ipv6]), [onceSelf, routerSelf, lastSelf].map((s) => [s.id, s.name, s.ipv4, s.ipv6]));
    assert.deepEqual(nodes.find((n) => n.id === routerSelf.id).routes, ['10.20.0.0/16']);
    assert.equal(nodes.find((n) => n.id === onceSelf.id).keyExpiresAt, expired);
    assert.deepEqual(nodes.find((n) => n.id === lastSelf.id).tags, ['tag:ci']);
    const keys = (await coord.call('GET', '/api/v1/admin/authkeys')).body.authKeys as any[];
    assert.deepEqual(keys.map((k) => [k.usedCount, k.revoked]), [[1, false], [2, false], [0, true]]);
    assert.deepEqual((await coord.call('GET', '/api/v1/admin/policy')).body.policy, policy);
    assert.equal((await new SimulatedNode().register(coord.url, { authKey: once, hostname: 'again' })).status, 403);
    assert.equal((await new SimulatedNode().register(coord.url, { authKey: revoked, hostname: 'again' })).status, 403);
    // The last node re-registers without a key and gets its identity back.
    assert.deepEqual(await last.join(coord.url, { hostname: 'last' }), lastSelf);
  });

  test('kill -9 in the middle of a burst of registrations: every acknowledged one survives', async () => {
    const coord = await CoordinatorProcess.start();
    coords.push(coord);
    const key = await coord.createAuthKey({ reusable: true });
    const acknowledged: SelfNode[] = [];
    let killed: Promise<void> | null = null;
    const attempts = Array.from({ length: 60 }, (_, i) => (async () => {
      try {
        const r = await new SimulatedNode().register(coord.url, { authKey: key, hostname: `burst${i}` });
        if (r.status === 200) {
          acknowledged.push(r.body.node);
          if (acknowledged.length === 20) killed ??= coord.kill9();
        }
      } catch {
        // the connection died with the process: not acknowledged
      }
    })());
    await Promise.all(attempts);
    await killed;
    assert.ok(acknowledged.length >= 20);
    await coord.launch();
    const nodes = (await coord.call('GET', '/api/v1/admin/nodes')).body.nodes as any[];
    const byKey = new Map(nodes.map((n) => [n.nodeKey, n]));
    for (const s of acknowledged) {
      const n = byKey.get(s.nodeKey);
      assert.ok(n, `acknowledged node ${s.name} survived`);
      assert.deepEqual([n.id, n.name, n.ipv4, n.ipv6], [s.id, s.name, s.ipv4, s.ipv6]);
    }
    const used = (await coord.call('GET', '/api/v1/admin/authkeys')).body.authKeys[0].usedCount;
    assert.equal(used, nodes.length, 'every stored node counted one use of the key, no more, no fewer');
  });
});
