// Hostname squatting, tried with real agents: the policy binds to identities a node cannot pick
// (user: from `authkey create --user`, tag:, node:), so `policy set` refuses a bare hostname (with
// the hint, every one in one pass, nothing applied); alice reaches a service and serves bob as an
// exit node under autogroup:internet; she renames, mallory registers "alice-laptop" and is even
// approved as an exit node: mallory reaches nothing, alice keeps her access, bob keeps alice as
// his exit node (remembered by node key), and after alice logs out bob's traffic still does not
// go through mallory.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { probe, probeUntilOk, selfOf, startProbeServer, up, waitFor, type ProbeServer } from '../helpers/routing-lab.js';

const HINT = 'is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID';

describe('policy identities: a squatter on a hostname gains nothing', { timeout: 300_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let www: Host;
  let wwwIp: string;
  const hosts: Record<string, Host> = {};
  const agents: Record<string, ManagedAgent> = {};
  const servers: ProbeServer[] = [];
  const ip: Record<string, string> = {};
  const nodeId: Record<string, number> = {};
  let aliceKey = '';

  before(async () => {
    lab = await createLab({ name: 'ident' });
    coord = await startCoordinator(await lab.addPublicHost('coord'));
    www = await lab.addPublicHost('www', { ips: 2 });
    wwwIp = www.ips[1]!; // 192.0.2.x: a server on the (lab's) internet
    const keys: Record<string, string> = {
      alice: await coord.createAuthKey({ user: 'alice', reusable: true }),
      web: await coord.createAuthKey({ tags: ['tag:web'] }),
      bob: await coord.createAuthKey({ user: 'bob' }),
    };
    const hostnames: Record<string, string[]> = {
      alice: ['--hostname', 'alice-laptop', '--advertise-exit-node'], web: ['--hostname', 'web'], bob: ['--hostname', 'bob-laptop'],
    };
    aliceKey = keys.alice!;
    for (const name of ['alice', 'web', 'bob', 'mallory']) {
      hosts[name] = await lab.addPublicHost(name);
      agents[name] = await startManagedAgent(hosts[name]!, { tun: `pi${id}${name[0]}` });
      if (name === 'mallory') continue; // joins later, once the name is free
      await up(agents[name]!, ['--coordinator', coord.url, '--auth-key', keys[name]!, ...hostnames[name]!]);
      const self = await selfOf(agents[name]!);
      ip[name] = self.ipv4!;
      nodeId[name] = self.id!;
    }
    servers.push(await startProbeServer(hosts.web!, 'tcp', ip.web!, 7100));
    servers.push(await startProbeServer(www, 'udp', wwwIp, 7001));
  });

  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    for (const a of Object.values(agents)) await a.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('policy set with bare hostnames is refused: every one named by line with the node it is now, nothing applied', async () => {
    const file = join(coord.dir, 'by-name.json');
    await writeFile(file, JSON.stringify({
      tags: { 'tag:web': [] },
      acls: [
        { action: 'accept', src: ['alice-laptop'], dst: ['web:7100'] },
        { action: 'accept', src: ['user:bob'], dst: ['autogroup:internet:*'] },
      ],
      autoApprovers: { exitNode: ['alice-laptop'] },
    }, null, 2));
    const r = await coord.adminCli(['policy', 'set', file]);
    assert.notEqual(r.code, 0);
    assert.deepEqual(r.stderr.trim().split('\n').map((l) => l.replace(/^pinhole: \S*by-name\.json:/, '')), [
      `9: acls.0.src.0: "alice-laptop" ${HINT} (alice-laptop is node:${nodeId.alice})`,
      `12: acls.0.dst.0: "web" ${HINT} (web is node:${nodeId.web})`,
      `27: autoApprovers.exitNode.0: "alice-laptop" ${HINT} (alice-laptop is node:${nodeId.alice})`,
    ]);
    assert.match((await coord.adminCli(['policy', 'get'])).stdout, /no policy/);
    assert.equal((await agents.web!.status()).routing?.filter, null);
  });

  test('by identity: alice reaches web and is auto-approved as the exit node bob chose', async () => {
    const file = join(coord.dir, 'policy.json');
    await writeFile(file, JSON.stringify({
      tags: { 'tag:web': [] },
      acls: [
        { action: 'accept', src: ['user:alice'], dst: ['tag:web:7100'], proto: ['tcp'] },
        { action: 'accept', src: ['user:bob'], dst: ['autogroup:internet:*'] },
      ],
      autoApprovers: { exitNode: ['user:alice'] },
    }));
    const set = await coord.adminCli(['policy', 'set', file]);
    assert.equal(set.code, 0, set.stderr);
    assert.match((await coord.adminCli(['nodes', 'list'])).stdout, new RegExp(`^${nodeId.alice}\\s+alice-laptop\\s+alice\\s`, 'm'));
    await waitFor('alice auto-approved as an exit node', async () => (await agents.alice!.status()).routing?.servedRoutes.includes('0.0.0.0/0'));
    await probeUntilOk(hosts.alice!, 'tcp', ip.web!, 7100);
    const out = await waitFor('bob to see alice as an exit node', async () => {
      const r = await agents.bob!.cli(['up', '--exit-node', 'alice-laptop']);
      return r.code === 0 ? r.stdout : false;
    });
    assert.match(out, /^exit node: alice-laptop \(active\)$/m);
    await probeUntilOk(hosts.bob!, 'udp', wwwIp, 7001);
    const seen = servers[1]!.peers();
    assert.ok(seen.length > 0 && seen.every((p) => p.startsWith(`${hosts.alice!.ip}:`)), `www saw ${seen.join(' ')}`);
  });

  test('alice renames; mallory takes "alice-laptop", even approved as an exit node: she gets nothing', async () => {
    const aliceNodeKey = (await selfOf(agents.alice!)).nodeKey;
    await up(agents.alice!, ['--hostname', 'alice-work']);
    await waitFor('alice renamed', async () => (await selfOf(agents.alice!)).name === 'alice-work');
    assert.equal((await selfOf(agents.alice!)).id, nodeId.alice, 'same node');
    await up(agents.mallory!, ['--coordinator', coord.url, '--auth-key', await coord.createAuthKey({ user: 'mallory' }), '--hostname', 'alice-laptop', '--advertise-exit-node']);
    const mallory = await selfOf(agents.mallory!);
    assert.equal(mallory.name, 'alice-laptop', 'the name was free, so she got it');
    // The policy's autoApprovers named user:alice, so nothing is approved for her...
    assert.match((await coord.adminCli(['routes', 'list'])).stdout, new RegExp(`^alice-laptop\\s+${mallory.id}\\s+0\\.0\\.0\\.0/0 \\(exit\\)\\s+no$`, 'm'));
    // ...and even once an admin approves her as an exit node (bob may now see her as a peer),
    const approve = await coord.adminCli(['routes', 'approve', String(mallory.id), '0.0.0.0/0', '::/0']);
    assert.equal(approve.code, 0, approve.stderr);
    await waitFor('bob to see a peer "alice-laptop" that is mallory\'s exit node', async () =>
      (await agents.bob!.status()).peers.some((p) => p.name === 'alice-laptop' && p.publicKey === mallory.nodeKey));

    // bob still goes out through alice's node, by its key, under its new name.
    const bob = await agents.bob!.status();
    assert.deepEqual(bob.routing!.exitNode, { name: 'alice-work', nodeKey: aliceNodeKey, state: 'active' });
    const before = servers[1]!.peers().length;
    await probeUntilOk(hosts.bob!, 'udp', wwwIp, 7001);
    const seen = servers[1]!.peers().slice(before);
    assert.ok(seen.length > 0 && seen.every((p) => p.startsWith(`${hosts.alice!.ip}:`)), `www saw ${seen.join(' ')}`);

    // Mallory reaches nothing alice could; alice still does.
    assert.match(await probe(hosts.mallory!, 'tcp', ip.web!, 7100, 2000), /^fail/);
    assert.ok(!(await agents.web!.status()).peers.some((p) => p.publicKey === mallory.nodeKey), 'web does not even list mallory');
    assert.equal(await probe(hosts.alice!, 'tcp', ip.web!, 7100), 'ok');
    assert.ok(!servers[0]!.peers().some((p) => p.startsWith(`${mallory.ipv4}:`)));
  });

  test('alice logs out: bob\'s exit node is unavailable, and his traffic does not go through mallory', async () => {
    assert.equal((await agents.alice!.cli(['logout'])).code, 0);
    await waitFor('bob to lose alice', async () => (await agents.bob!.status()).routing?.exitNode?.state === 'unavailable');
    const before = servers[1]!.peers().length;
    assert.match(await probe(hosts.bob!, 'udp', wwwIp, 7001, 2000), /^fail/, 'fails closed');
    assert.equal(servers[1]!.peers().length, before, 'nothing reached www, through mallory or otherwise');
    // Alice comes back with a new node (new key, new id): user:alice still lets her in.
    await up(agents.alice!, ['--coordinator', coord.url, '--auth-key', aliceKey, '--hostname', 'alice-laptop']);
    const back = await waitFor('alice back', async () => { const s = await selfOf(agents.alice!); return s.id !== nodeId.alice && s; });
    assert.equal(back.name, 'alice-laptop-1', 'mallory holds the name; the newcomer gets a suffix');
    assert.notEqual(back.id, nodeId.alice);
    await probeUntilOk(hosts.alice!, 'tcp', ip.web!, 7100);
  });
});
