// Every way a registration is refused: bad auth keys (malformed, unknown, wrong secret, expired,
// revoked, single-use already used), a forged proof, a replayed or unknown challenge, malformed
// bodies. Each gets a 4xx with a one-line reason, and the database is byte-for-byte unchanged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { channelCall } from '../helpers/control-client.js';
import { SimulatedNode } from '../helpers/coordinator-node.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';

function assertRefused(r: { status: number; body: any }, status: number, reason: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(typeof r.body.error, 'string');
  assert.ok(!r.body.error.includes('\n'), 'one line');
  assert.match(r.body.error, reason);
}

describe('coordinator refusals', () => {
  let coord: CoordinatorProcess;
  before(async () => { coord = await CoordinatorProcess.start(); });
  after(async () => { await coord.destroy(); });

  test('a single-use key works once; a reusable key many times', async () => {
    const once = await coord.createAuthKey();
    await new SimulatedNode().join(coord.url, { authKey: once, hostname: 'once' });
    assertRefused(await new SimulatedNode().register(coord.url, { authKey: once, hostname: 'twice' }), 403, /single-use auth key already used/);
    const many = await coord.createAuthKey({ reusable: true });
    for (let i = 0; i < 5; i++) await new SimulatedNode().join(coord.url, { authKey: many, hostname: `many${i}` });
    const keys = (await coord.call('GET', '/api/v1/admin/authkeys')).body.authKeys as { usedCount: number; reusable: boolean }[];
    assert.deepEqual(keys.map((k) => [k.reusable, k.usedCount]), [[false, 1], [true, 5]]);
  });

  test('two concurrent registrations with one single-use key: exactly one gets in', async () => {
    const once = await coord.createAuthKey();
    const results = await Promise.all([0, 1, 2, 3].map((i) => new SimulatedNode().register(coord.url, { authKey: once, hostname: `race${i}` })));
    assert.deepEqual(results.map((r) => r.status).sort(), [200, 403, 403, 403]);
  });

  test('every refusal leaves the database unchanged', async () => {
    const used = await coord.createAuthKey();
    await new SimulatedNode().join(coord.url, { authKey: used, hostname: 'user' });
    const revoked = await coord.createAuthKey({ reusable: true });
    const revokedId = (await coord.call('GET', '/api/v1/admin/authkeys')).body.authKeys.at(-1).id;
    assert.equal((await coord.call('DELETE', `/api/v1/admin/authkeys/${revokedId}`)).status, 200);
    const expiring = await coord.createAuthKey({ reusable: true, expirySeconds: 1 });
    const good = await coord.createAuthKey({ reusable: true });
    await new Promise((r) => setTimeout(r, 1100));

    const before = await coord.dump({ liveness: true });
    const nodesBefore = (await coord.call('GET', '/api/v1/admin/nodes')).body;
    const keysBefore = (await coord.call('GET', '/api/v1/admin/authkeys')).body;
    const node = new SimulatedNode();
    const reg = (opts: Partial<Parameters<SimulatedNode['register']>[1]>) => node.register(coord.url, { hostname: 'intruder', ...opts });

    assertRefused(await reg({ authKey: 'hunter2' }), 401, /malformed auth key/);
    assertRefused(await reg({ authKey: `phk_000000000000_${'0'.repeat(64)}` }), 401, /unknown auth key/);
    assertRefused(await reg({ authKey: `${good.slice(0, 17)}${'f'.repeat(64)}` }), 401, /unknown auth key/);
    assertRefused(await reg({ authKey: expiring }), 403, /auth key expired/);
    assertRefused(await reg({ authKey: revoked }), 403, /auth key revoked/);
    assertRefused(await reg({ authKey: used }), 403, /already used/);
    assertRefused(await reg({}), 401, /auth key is required/);
    // A channel opened with another key cannot register this node key (the handshake is the proof).
    assertRefused(await reg({ authKey: good, proveWith: generatePrivateKey() }), 401, /not the key this control channel was opened with/);

    const valid = { nodeKey: node.nodeKey, discoKey: node.discoKey, hostname: 'intruder', authKey: good };
    const post = (raw: string) => channelCall(coord.url, node.privateKey, 'POST', '/api/v1/register', { rawBody: raw });
    assertRefused(await post('{"nodeKey": '), 400, /not valid JSON/);
    assertRefused(await post('[1,2]'), 400, /expected object/);
    assertRefused(await post(JSON.stringify({ ...valid, nodeKey: 'short' })), 400, /^nodeKey: a base64 32-byte key/);
    assertRefused(await post(JSON.stringify({ ...valid, hostname: 'bad_host!' })), 400, /^hostname:/);
    assertRefused(await post(JSON.stringify({ ...valid, extra: 1 })), 400, /unrecognized key/i);
    assertRefused(await post(JSON.stringify({ ...valid, advertiseExitNode: 'yes' })), 400, /^advertiseExitNode:/);
    assertRefused(await post(JSON.stringify({ ...valid, advertiseRoutes: ['10.0.0.0/99'] })), 400, /^advertiseRoutes:/);
    assertRefused(await post(JSON.stringify({ ...valid, authKey: 'x'.repeat(500) })), 400, /^authKey:/);
    assertRefused(await post(JSON.stringify({ ...valid, pad: 'x'.repeat(2 * 1024 * 1024) })), 413, /body larger than/);
    assertRefused(await coord.call('PUT', '/api/v1/register', valid, null), 405, /not allowed/);
    assertRefused(await coord.call('GET', '/api/v1/nowhere', undefined, null), 404, /no such API path/);

    assert.deepEqual(await coord.dump({ liveness: true }), before);
    assert.deepEqual((await coord.call('GET', '/api/v1/admin/nodes')).body, nodesBefore);
    assert.deepEqual((await coord.call('GET', '/api/v1/admin/authkeys')).body, keysBefore);
    // And the good key still works for this very node afterwards.
    await node.join(coord.url, { authKey: good, hostname: 'intruder' });
  });
});
