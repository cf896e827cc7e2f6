// The admin API: bearer-token gate (401 without or with a wrong token, 403 when no token file was
// given), auth keys, nodes (delete, which peers hear about), routes (approve only what is
// advertised), and malformed bodies refused with a reason while nothing changes.
import { channelCall } from '../helpers/control-client.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode, type StreamClient } from '../helpers/coordinator-node.js';

describe('coordinator admin API', () => {
  let coord: CoordinatorProcess;
  const streams: StreamClient[] = [];
  before(async () => { coord = await CoordinatorProcess.start(); });
  after(async () => {
    for (const s of streams) s.terminate();
    await coord.destroy();
  });

  test('without --admin-token-file every admin call is 403 with the way out', async () => {
    const bare = await CoordinatorProcess.start({ adminToken: false });
    try {
      for (const [method, path] of [['GET', '/api/v1/admin/nodes'], ['POST', '/api/v1/admin/authkeys'], ['PUT', '/api/v1/admin/policy']]) {
        const r = await bare.call(method!, path!, method === 'GET' ? undefined : {}, 'any-token');
        assert.equal(r.status, 403);
        assert.equal(r.body.error, 'admin API disabled: start the coordinator with --admin-token-file FILE');
      }
    } finally {
      await bare.destroy();
    }
  });

  test('a missing, malformed or wrong token is 401, and changes nothing', async () => {
    const before = await coord.dump();
    const noHeader = await coord.call('POST', '/api/v1/admin/authkeys', {}, null);
    assert.equal(noHeader.status, 401);
    assert.match(noHeader.body.error, /missing admin token/);
    for (const token of ['wrong', `${coord.token}x`, coord.token.slice(1)]) {
      const r = await coord.call('POST', '/api/v1/admin/authkeys', {}, token);
      assert.equal(r.status, 401);
      assert.equal(r.body.error, 'bad admin token');
    }
    const basic = await channelCall(coord.url, generatePrivateKey(), 'GET', '/api/v1/admin/nodes', { headers: { authorization: `Basic ${coord.token}` } });
    assert.equal(basic.status, 401);
    // Outside the control channel the API is not served at all, token or not (nothing in the clear).
    const plain = await fetch(`${coord.url}/api/v1/admin/nodes`, { headers: { authorization: `Bearer ${coord.token}` } });
    assert.equal(plain.status, 426);
    assert.match(((await plain.json()) as { error: string }).error, /only inside the encrypted control channel/);
    assert.deepEqual(await coord.dump(), before);
  });

  test('malformed admin bodies are 400 with a reason, and change nothing', async () => {
    const node = new SimulatedNode();
    const key = await coord.createAuthKey({ reusable: true });
    const self = await node.join(coord.url, { authKey: key, hostname: 'r1', advertiseRoutes: ['10.1.0.0/24'] });
    const before = await coord.dump();
    const cases: [string, string, unknown, number, RegExp][] = [
      ['POST', '/api/v1/admin/authkeys', { reusable: 'yes' }, 400, /^reusable:/],
      ['POST', '/api/v1/admin/authkeys', { expirySeconds: -5 }, 400, /^expirySeconds:/],
      ['POST', '/api/v1/admin/authkeys', { tags: ['server'] }, 400, /^tags\.0: a tag is tag:NAME/],
      ['POST', '/api/v1/admin/authkeys', { reusable: true, color: 'red' }, 400, /unrecognized key/i],
      ['POST', `/api/v1/admin/nodes/${self.id}/routes`, { routes: [] }, 400, /^routes:/],
      ['POST', `/api/v1/admin/nodes/${self.id}/routes`, { routes: ['10.1.0.0/33'] }, 400, /^routes:/],
      ['POST', `/api/v1/admin/nodes/${self.id}/routes`, { routes: ['10.2.0.0/24'] }, 409, /does not advertise 10\.2\.0\.0\/24/],
      ['POST', '/api/v1/admin/nodes/424242/routes', { routes: ['10.1.0.0/24'] }, 404, /no node with id 424242/],
      ['DELETE', '/api/v1/admin/nodes/424242', undefined, 404, /no node/],
      ['DELETE', '/api/v1/admin/authkeys/0', undefined, 400, /positive integer/],
      ['DELETE', '/api/v1/admin/authkeys/77', undefined, 404, /no auth key with id 77/],
      ['PATCH', '/api/v1/admin/nodes', {}, 405, /not allowed/],
    ];
    for (const [method, path, body, status, reason] of cases) {
      const r = await coord.call(method, path, body);
      assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(r.body)}`);
      assert.match(r.body.error, reason);
    }
    const notJson = await coord.call('POST', '/api/v1/admin/authkeys', undefined, coord.token, '{reusable');
    assert.equal(notJson.status, 400);
    assert.deepEqual(await coord.dump(), before);
  });

  test('auth keys: create shows the secret once, list never does, revoke is final', async () => {
    const created = await coord.call('POST', '/api/v1/admin/authkeys', { reusable: true, ephemeral: true, expirySeconds: 3600, tags: ['tag:ci'] });
    assert.equal(created.status, 201);
    assert.match(created.body.key, /^phk_[0-9a-f]{12}_[0-9a-f]{64}_[0-9a-f]{32}$/);
    assert.ok(created.body.key.startsWith(created.body.prefix));
    const listed = (await coord.call('GET', '/api/v1/admin/authkeys')).body.authKeys.find((k: any) => k.id === created.body.id);
    assert.equal(listed.key, undefined);
    assert.ok(!JSON.stringify(await coord.dump()).includes(created.body.key.slice(17)), 'the secret is not stored');
    assert.deepEqual([listed.reusable, listed.ephemeral, listed.tags, listed.revoked], [true, true, ['tag:ci'], false]);
    const revoked = await coord.call('DELETE', `/api/v1/admin/authkeys/${created.body.id}`);
    assert.equal(revoked.body.revoked, true);
    assert.equal((await new SimulatedNode().register(coord.url, { authKey: created.body.key, hostname: 'late' })).status, 403);
  });

  test('deleting a node removes it from its peers and closes its stream', async () => {
    const key = await coord.createAuthKey({ reusable: true });
    const a = new SimulatedNode();
    const b = new SimulatedNode();
    await a.join(coord.url, { authKey: key, hostname: 'keeper' });
    const bSelf = await b.join(coord.url, { authKey: key, hostname: 'goner' });
    const sa = await a.connect(coord.url);
    const sb = await b.connect(coord.url);
    streams.push(sa, sb);
    await sa.waitFor('goner online', () => sa.peers.get(bSelf.id)?.online === true);
    const r = await coord.call('DELETE', `/api/v1/admin/nodes/${bSelf.id}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.name, 'goner');
    await sa.waitFor('goner removed', () => !sa.peers.has(bSelf.id));
    await sb.waitFor('goner closed', () => sb.closed !== null);
    assert.equal(sb.closed!.code, 4003);
    assert.ok(!(await coord.dump()).nodes!.some((n: any) => n.id === bSelf.id));
    // Its key now belongs to nobody: registering again needs an auth key, and gives a new id.
    assert.equal((await b.register(coord.url, { hostname: 'goner' })).status, 401);
    const again = await b.join(coord.url, { authKey: key, hostname: 'goner' });
    assert.ok(again.id > bSelf.id, 'ids are never reused');
  });

  test('routes: listed as advertised, approved on request, then in peers\' netmaps', async () => {
    const key = await coord.createAuthKey({ reusable: true });
    const router = new SimulatedNode();
    const watcher = new SimulatedNode();
    const rSelf = await router.join(coord.url, { authKey: key, hostname: 'gateway', advertiseRoutes: ['192.168.7.0/24', '10.7.0.0/16'], advertiseExitNode: true });
    await watcher.join(coord.url, { authKey: key, hostname: 'user' });
    const sw = await watcher.connect(coord.url);
    streams.push(sw);
    await sw.waitFor('gateway visible', () => sw.peers.has(rSelf.id));
    assert.deepEqual(sw.peers.get(rSelf.id)!.routes, []);
    const listed = (await coord.call('GET', '/api/v1/admin/routes')).body.routes.filter((r: any) => r.nodeId === rSelf.id);
    assert.deepEqual(listed.map((r: any) => [r.route, r.approved, r.exitNode]), [['192.168.7.0/24', false, false], ['10.7.0.0/16', false, false], ['0.0.0.0/0', false, true], ['::/0', false, true]]);
    // Host bits set: refused with the reason `up` gives, nothing approved.
    const hostBits = await coord.call('POST', `/api/v1/admin/nodes/${rSelf.id}/routes`, { routes: ['192.168.7.9/24', '0.0.0.0/0', '::/0'] });
    assert.equal(hostBits.status, 400, JSON.stringify(hostBits.body));
    assert.match(hostBits.body.error, /192\.168\.7\.9\/24 has host bits set: did you mean 192\.168\.7\.0\/24\?/);
    assert.ok((await coord.call('GET', '/api/v1/admin/routes')).body.routes.every((x: any) => !x.approved), 'nothing approved');
    const r = await coord.call('POST', `/api/v1/admin/nodes/${rSelf.id}/routes`, { routes: ['192.168.7.0/24', '0.0.0.0/0', '::/0'] });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await sw.waitFor('routes approved', () => sw.peers.get(rSelf.id)!.routes.length === 3);
    assert.deepEqual(sw.peers.get(rSelf.id)!.routes, ['192.168.7.0/24', '0.0.0.0/0', '::/0']);
    assert.equal(sw.peers.get(rSelf.id)!.exitNode, true);
  });
});
