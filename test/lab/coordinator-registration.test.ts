// Registration as a node meets it: an auth key and a proof get an identity (id, IPv4 from
// 100.64.0.0/10, IPv6 from fd7a:1e57:9a3c::/48, a unique name); the same node key gets the same
// identity back, before and after a restart; the database is private to its owner.
import { keyFingerprint } from '../../proto/control/coordinator-key.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode } from '../helpers/coordinator-node.js';

describe('coordinator registration', () => {
  let coord: CoordinatorProcess;
  let key: string;
  before(async () => {
    coord = await CoordinatorProcess.start();
    key = await coord.createAuthKey({ reusable: true });
  });
  after(async () => { await coord.destroy(); });

  test('a node with an auth key and a valid proof gets an id and addresses', async () => {
    const node = new SimulatedNode();
    const r = await node.register(coord.url, { authKey: key, hostname: 'alpha' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const self = r.body.node;
    assert.equal(self.name, 'alpha');
    assert.equal(self.nodeKey, node.nodeKey);
    assert.match(self.ipv4, /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/);
    assert.match(self.ipv6, /^fd7a:1e57:9a3c::/);
    assert.ok(Date.parse(self.keyExpiresAt) > Date.now() + 100 * 86400_000, 'default key expiry is 180 days');
  });

  test('the same node key registering again keeps its id and addresses, without an auth key', async () => {
    const node = new SimulatedNode();
    const first = await node.join(coord.url, { authKey: key, hostname: 'beta' });
    const again = await node.join(coord.url, { hostname: 'beta' });
    assert.deepEqual({ id: again.id, ipv4: again.ipv4, ipv6: again.ipv6, name: again.name }, { id: first.id, ipv4: first.ipv4, ipv6: first.ipv6, name: first.name });
    const renamed = await node.join(coord.url, { hostname: 'beta-renamed' });
    assert.equal(renamed.id, first.id);
    assert.equal(renamed.ipv4, first.ipv4);
    assert.equal(renamed.name, 'beta-renamed');
  });

  test('a clashing hostname gets a -1, -2 suffix; addresses are all distinct', async () => {
    const selves = [];
    for (let i = 0; i < 3; i++) selves.push(await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'Gamma' }));
    assert.deepEqual(selves.map((s) => s.name), ['gamma', 'gamma-1', 'gamma-2']);
    const nodes = (await coord.call('GET', '/api/v1/admin/nodes')).body.nodes as { ipv4: string; ipv6: string; name: string }[];
    assert.equal(new Set(nodes.map((n) => n.ipv4)).size, nodes.length);
    assert.equal(new Set(nodes.map((n) => n.ipv6)).size, nodes.length);
    assert.equal(new Set(nodes.map((n) => n.name)).size, nodes.length);
  });

  test('after a restart the same node gets the same identity, and the server key is the same', async () => {
    const node = new SimulatedNode();
    const first = await node.join(coord.url, { authKey: key, hostname: 'delta' });
    const serverKey = (await coord.call('GET', '/api/v1/server')).body.serverKey;
    await coord.stop();
    await coord.launch();
    assert.equal((await coord.call('GET', '/api/v1/server')).body.serverKey, serverKey);
    const again = await node.join(coord.url, { hostname: 'delta' });
    assert.deepEqual(again, first);
    // A newcomer after the restart gets a fresh address, not one already held.
    const other = await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'delta' });
    assert.equal(other.name, 'delta-1');
    const nodes = (await coord.call('GET', '/api/v1/admin/nodes')).body.nodes as { ipv4: string }[];
    assert.equal(new Set(nodes.map((n) => n.ipv4)).size, nodes.length);
  });

  test('the database and its WAL are readable by their owner only', async () => {
    for (const suffix of ['', '-wal']) {
      const st = await stat(`${coord.dbPath}${suffix}`);
      assert.equal(st.mode & 0o777, 0o600, `${coord.dbPath}${suffix}`);
    }
  });

  test('the public server info carries the coordinator key, whose fingerprint auth keys carry', async () => {
    const a = (await coord.call('GET', '/api/v1/server')).body;
    assert.deepEqual(Object.keys(a), ['serverKey']);
    const key = await coord.createAuthKey();
    assert.equal(key.split('_')[3], keyFingerprint(decodeKey(a.serverKey)));
    assert.equal(coord.fingerprint, keyFingerprint(decodeKey(a.serverKey)));
  });
});

describe('coordinator deregistration (logout)', () => {
  let coord: CoordinatorProcess;
  before(async () => { coord = await CoordinatorProcess.start(); });
  after(async () => { await coord.destroy(); });

  test('a node deletes itself with a proof; a forged or unknown deregistration changes nothing', async () => {
    const key = await coord.createAuthKey({ reusable: true });
    const watcher = new SimulatedNode();
    const leaver = new SimulatedNode();
    await watcher.join(coord.url, { authKey: key, hostname: 'stayer' });
    const self = await leaver.join(coord.url, { authKey: key, hostname: 'leaver' });
    const s = await watcher.connect(coord.url);
    try {
      await s.waitFor('leaver visible', () => s.peers.has(self.id));
      const before = await coord.dump();
      const { generatePrivateKey } = await import('../../proto/wireguard/keys.js');
      const forged = await leaver.deregister(coord.url, { proveWith: generatePrivateKey() });
      assert.equal(forged.status, 401);
      assert.match(forged.body.error, /not the key this control channel was opened with/);
      const unknown = await new SimulatedNode().deregister(coord.url);
      assert.equal(unknown.status, 404);
      const malformed = await coord.call('POST', '/api/v1/deregister', { nodeKey: 'short' }, null);
      assert.equal(malformed.status, 400);
      assert.deepEqual(await coord.dump(), before);

      const r = await leaver.deregister(coord.url);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, { deregistered: self.id });
      await s.waitFor('leaver removed', () => !s.peers.has(self.id));
      assert.ok(!(await coord.dump()).nodes!.some((n: any) => n.id === self.id));
      assert.equal((await leaver.register(coord.url, { hostname: 'leaver' })).status, 401, 'a new auth key is needed now');
    } finally {
      s.terminate();
    }
  });
});
