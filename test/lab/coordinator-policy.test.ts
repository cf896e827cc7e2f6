// The access policy as nodes see it: a netmap holds only the peers a node may reach or be reached
// by, plus the packet filter it enforces; a change reaches only nodes that can see the changed
// node; a bad policy is refused with a reason and changes nothing; auto-approvers approve routes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode, type StreamClient } from '../helpers/coordinator-node.js';
import type { SelfNode } from '../../proto/control/schemas.js';

const POLICY = {
  tags: { 'tag:web': [], 'tag:db': [], 'tag:laptop': [], 'tag:router': [] },
  hosts: { office: '10.9.0.0/16' },
  acls: [
    { action: 'accept', src: ['tag:laptop'], dst: ['tag:web:80,443'] },
    { action: 'accept', src: ['tag:web'], dst: ['tag:db:5432'], proto: ['tcp'] },
    { action: 'accept', src: ['tag:laptop'], dst: ['office:22'] },
  ],
  autoApprovers: { routes: { '10.9.0.0/16': ['tag:router'] } },
};

describe('coordinator access policy', () => {
  let coord: CoordinatorProcess;
  const selves: Record<string, SelfNode> = {};
  const streams: Record<string, StreamClient> = {};
  const peerNames = (name: string): string[] => [...streams[name]!.peers.values()].map((p) => p.name).sort();
  const settle = () => new Promise((r) => setTimeout(r, 400));

  before(async () => {
    coord = await CoordinatorProcess.start();
    for (const [name, tags, routes] of [['web', ['tag:web']], ['db', ['tag:db']], ['laptop', ['tag:laptop']], ['stranger', []], ['router', ['tag:router'], ['10.9.1.0/24']]] as [string, string[], string[]?][]) {
      const key = await coord.createAuthKey({ tags });
      const node = new SimulatedNode();
      selves[name] = await node.join(coord.url, { authKey: key, hostname: name, advertiseRoutes: routes ?? [] });
      streams[name] = await node.connect(coord.url);
    }
    for (const s of Object.values(streams)) await s.waitFor('netmap', () => s.netmap !== null);
  });
  after(async () => {
    for (const s of Object.values(streams)) s.terminate();
    await coord.destroy();
  });

  test('without a policy every node sees every node and has no filter', async () => {
    for (const s of Object.values(streams)) await s.waitFor('all peers', () => s.peers.size === 4);
    assert.deepEqual(peerNames('stranger'), ['db', 'laptop', 'router', 'web']);
    assert.equal(streams.web!.packetFilter, null);
  });

  test('setting the policy narrows every netmap by deltas and sends each node its filter', async () => {
    const r = await coord.call('PUT', '/api/v1/admin/policy', POLICY);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const expected: Record<string, string[]> = { web: ['db', 'laptop'], db: ['web'], laptop: ['router', 'web'], stranger: [], router: ['laptop'] };
    for (const [name, peers] of Object.entries(expected)) {
      await streams[name]!.waitFor(`${name}'s peers`, () => JSON.stringify(peerNames(name)) === JSON.stringify(peers));
    }
    const w = selves.web!;
    const l = selves.laptop!;
    await streams.web!.waitFor('web filter', () => streams.web!.packetFilter !== null);
    assert.deepEqual(streams.web!.packetFilter, [{ srcIps: [l.ipv4, l.ipv6], dst: [{ cidr: `${w.ipv4}/32`, ports: '80,443' }, { cidr: `${w.ipv6}/128`, ports: '80,443' }], protocols: [] }]);
    assert.deepEqual(streams.db!.packetFilter, [{ srcIps: [w.ipv4, w.ipv6], dst: [{ cidr: `${selves.db!.ipv4}/32`, ports: '5432' }, { cidr: `${selves.db!.ipv6}/128`, ports: '5432' }], protocols: [6] }]);
    assert.deepEqual(streams.laptop!.packetFilter, []);
    // The router's advertised 10.9.1.0/24 was auto-approved, and it enforces office:22 for it.
    assert.deepEqual(streams.laptop!.peerNamed('router')!.routes, ['10.9.1.0/24']);
    assert.deepEqual(streams.router!.packetFilter![0]!.dst, [{ cidr: '10.9.1.0/24', ports: '22' }]);
    for (const s of Object.values(streams)) assert.deepEqual(s.violations, []);
  });

  test('a change reaches only the nodes that can see the changed node', async () => {
    await settle();
    const counts = Object.fromEntries(Object.entries(streams).map(([n, s]) => [n, s.deltas.length]));
    streams.db!.sendEndpoints(['192.0.2.50:41641']);
    await streams.web!.waitFor('web hears db', () => streams.web!.peerNamed('db')!.endpoints[0] === '192.0.2.50:41641');
    await settle();
    assert.equal(streams.laptop!.deltas.length, counts.laptop);
    assert.equal(streams.stranger!.deltas.length, counts.stranger);
    assert.equal(streams.router!.deltas.length, counts.router);
  });

  test('a new laptop appears at web (peer and filter), and nowhere else', async () => {
    await settle();
    const counts = Object.fromEntries(Object.entries(streams).map(([n, s]) => [n, s.deltas.length]));
    const key = await coord.createAuthKey({ tags: ['tag:laptop'] });
    const l2 = await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'laptop2' });
    await streams.web!.waitFor('laptop2 at web', () => streams.web!.peers.has(l2.id));
    await streams.web!.waitFor('web filter has laptop2', () => streams.web!.packetFilter![0]!.srcIps.includes(l2.ipv4));
    await streams.router!.waitFor('laptop2 at router', () => streams.router!.peers.has(l2.id));
    await settle();
    assert.equal(streams.db!.deltas.length, counts.db);
    assert.equal(streams.stranger!.deltas.length, counts.stranger);
    assert.equal(streams.laptop!.deltas.length, counts.laptop);
  });

  test('a bad policy is refused with a reason, and nothing changes', async () => {
    const before = await coord.dump();
    const current = (await coord.call('GET', '/api/v1/admin/policy')).body;
    const bad: [unknown, RegExp][] = [
      [{ ...POLICY, acls: [{ action: 'accept', src: ['tag:nope'], dst: ['*:*'] }] }, /tag:nope is not declared/],
      [{ ...POLICY, acls: [{ action: 'accept', src: ['*'], dst: ['tag:web:99999'] }] }, /"tag:web:99999": port out of range \(0-65535\): 99999/],
      [{ ...POLICY, acls: [{ action: 'deny', src: ['*'], dst: ['*:*'] }] }, /action/],
      [{ ...POLICY, acls: [{ action: 'accept', src: ['group:x'], dst: ['*:*'] }] }, /group:x is not defined/],
      [{ ...POLICY, hosts: { office: 'not-an-ip' } }, /not an IP address or CIDR/],
      [{ ...POLICY, owners: {} }, /unrecognized key/i],
      [{ acls: 'all' }, /acls/],
      [null, /expected an object/],
    ];
    for (const [policy, reason] of bad) {
      const r = await coord.call('PUT', '/api/v1/admin/policy', policy);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error, reason);
      assert.ok(!r.body.error.includes('\n'));
    }
    assert.deepEqual((await coord.call('GET', '/api/v1/admin/policy')).body, current);
    assert.deepEqual(await coord.dump(), before);
  });

  test('removing the policy brings back everyone-sees-everyone and a null filter', async () => {
    const r = await coord.call('DELETE', '/api/v1/admin/policy');
    assert.equal(r.status, 200);
    assert.equal(r.body.policy, null);
    await streams.stranger!.waitFor('stranger sees all', () => streams.stranger!.peers.size === 5);
    await streams.web!.waitFor('web filter null', () => streams.web!.packetFilter === null);
    for (const s of Object.values(streams)) assert.deepEqual(s.violations, []);
  });

  test('policy identities: user: and node: follow the node through a rename; a squatter on the old name gets nothing', async () => {
    const alice = new SimulatedNode();
    const aliceSelf = await alice.join(coord.url, { authKey: await coord.createAuthKey({ user: 'Alice' }), hostname: 'alice-laptop', advertiseExitNode: true });
    const local: StreamClient[] = [];
    try {
      // A bare hostname is refused, every one of them, each with the node that holds it now.
      const named = { tags: { 'tag:web': [] }, acls: [{ action: 'accept', src: ['alice-laptop'], dst: ['web:22'] }] };
      const refused = await coord.call('PUT', '/api/v1/admin/policy', named);
      assert.equal(refused.status, 400);
      const hint = 'is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID';
      assert.equal(refused.body.error, `policy: acls.0.src.0: "alice-laptop" ${hint} (alice-laptop is node:${aliceSelf.id}); acls.0.dst.0: "web" ${hint} (web is node:${selves.web!.id})`);
      assert.equal((await coord.call('GET', '/api/v1/admin/policy')).body.policy, null);

      const policy = {
        tags: { 'tag:web': [] },
        acls: [{ action: 'accept', src: ['user:alice'], dst: ['tag:web:22'] }, { action: 'accept', src: [`node:${selves.laptop!.id}`], dst: ['tag:web:23'] }],
        autoApprovers: { exitNode: ['user:alice'] },
      };
      const set = await coord.call('PUT', '/api/v1/admin/policy', policy);
      assert.equal(set.status, 200, JSON.stringify(set.body));
      const srcOf = (port: string): string[] => (streams.web!.packetFilter ?? []).filter((r) => r.dst[0]!.ports === port).flatMap((r) => r.srcIps);
      await streams.web!.waitFor('alice in web\'s filter', () => srcOf('22').includes(aliceSelf.ipv4));
      assert.deepEqual(srcOf('23'), [selves.laptop!.ipv4, selves.laptop!.ipv6]);
      const info = async (id: number): Promise<{ name: string; user: string | null; routes: string[] }> =>
        (await coord.call('GET', '/api/v1/admin/nodes')).body.nodes.find((n: { id: number }) => n.id === id);
      const a = await info(aliceSelf.id);
      assert.deepEqual([a.name, a.user, a.routes], ['alice-laptop', 'alice', ['0.0.0.0/0', '::/0']], 'auto-approved as user:alice');

      // Alice renames (same node key, no auth key): same id, same user, still in.
      const renamed = await alice.join(coord.url, { hostname: 'alice-work', advertiseExitNode: true });
      assert.deepEqual([renamed.id, renamed.name], [aliceSelf.id, 'alice-work']);
      assert.equal((await info(aliceSelf.id)).user, 'alice');
      // Mallory takes the free name: she gets it, and nothing that came with it.
      const mallory = new SimulatedNode();
      const mSelf = await mallory.join(coord.url, { authKey: await coord.createAuthKey({ user: 'mallory' }), hostname: 'alice-laptop', advertiseExitNode: true });
      local.push(await mallory.connect(coord.url));
      assert.equal(mSelf.name, 'alice-laptop');
      const m = await info(mSelf.id);
      assert.deepEqual([m.user, m.routes], ['mallory', []], 'not auto-approved as an exit node');
      await local[0]!.waitFor('mallory\'s netmap', () => local[0]!.netmap !== null);
      assert.equal(local[0]!.peers.size, 0, 'mallory sees nobody');
      assert.ok(!streams.web!.peers.has(mSelf.id));
      assert.ok(srcOf('22').includes(aliceSelf.ipv4) && !srcOf('22').includes(mSelf.ipv4));
      // While a name is held, a newcomer asking for it gets a suffix.
      const late = await new SimulatedNode().join(coord.url, { authKey: await coord.createAuthKey(), hostname: 'alice-work' });
      assert.equal(late.name, 'alice-work-1');
      for (const s of [...Object.values(streams), ...local]) assert.deepEqual(s.violations, []);
    } finally {
      for (const s of local) s.terminate();
      await coord.call('DELETE', '/api/v1/admin/policy');
    }
  });
});
