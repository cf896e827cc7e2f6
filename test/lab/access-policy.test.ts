// The access policy enforced by every agent on real traffic: a coordinator and three managed
// agents on the lab internet; `pinhole admin policy set` with a bad file names the line and
// changes nothing; with a good one, allowed TCP and UDP flows work, denied ones fail (real
// sockets), replies to flows a node opened pass its filter, drops are counted in status, and
// removing the policy opens everything again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { probe, probeUntilOk, selfOf, startProbeServer, up, waitFor, type ProbeServer } from '../helpers/routing-lab.js';

const POLICY = {
  tags: { 'tag:web': [], 'tag:laptop': [] },
  acls: [
    { action: 'accept', src: ['tag:laptop'], dst: ['tag:web:8080'], proto: ['tcp'] },
    { action: 'accept', src: ['tag:laptop'], dst: ['tag:web:5353'], proto: ['udp'] },
  ],
};

describe('access policy: every agent filters what peers send it', { timeout: 420_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  const hosts: Record<string, Host> = {};
  const agents: Record<string, ManagedAgent> = {};
  const servers: ProbeServer[] = [];
  const ip: Record<string, string> = {};

  before(async () => {
    lab = await createLab({ name: 'acl' });
    hosts.coord = await lab.addPublicHost('coord');
    coord = await startCoordinator(hosts.coord);
    for (const [name, tag] of [['web', 'tag:web'], ['laptop', 'tag:laptop'], ['other', null]] as const) {
      hosts[name] = await lab.addPublicHost(name);
      agents[name] = await startManagedAgent(hosts[name]!, { tun: `ac${id}${name[0]}` });
      const key = await coord.createAuthKey(tag ? { tags: [tag] } : {});
      await up(agents[name]!, ['--coordinator', coord.url, '--auth-key', key, '--hostname', name]);
      ip[name] = (await selfOf(agents[name]!)).ipv4!;
    }
    for (const a of Object.values(agents)) await waitFor(`${a.tun} to see 2 peers`, async () => (await a.status()).peers.length === 2);
    // Services on web (8080, 8081 TCP; 5353, 5354 UDP) and on laptop (9000 TCP, 9001 UDP), on the overlay address.
    for (const [proto, port] of [['tcp', 8080], ['tcp', 8081], ['udp', 5353], ['udp', 5354]] as const) servers.push(await startProbeServer(hosts.web!, proto, ip.web!, port));
    servers.push(await startProbeServer(hosts.laptop!, 'tcp', ip.laptop!, 9000));
    servers.push(await startProbeServer(hosts.laptop!, 'udp', ip.laptop!, 9001));
  });

  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    for (const a of Object.values(agents)) await a.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('without a policy every flow works and no filter is installed', async () => {
    await probeUntilOk(hosts.laptop!, 'tcp', ip.web!, 8081);
    await probeUntilOk(hosts.laptop!, 'udp', ip.web!, 5354);
    await probeUntilOk(hosts.web!, 'tcp', ip.laptop!, 9000);
    await probeUntilOk(hosts.other!, 'tcp', ip.web!, 8080);
    const s = await agents.web!.status();
    assert.equal(s.routing?.filter, null);
    assert.equal(s.drops.filtered, 0);
  });

  test('policy set with a bad file names each error by line and changes nothing', async () => {
    const bad = join(coord.dir, 'bad-policy.json');
    await writeFile(bad, [
      '{',
      '  "tags": { "tag:web": [] },',
      '  "acls": [',
      '    { "action": "accept", "src": ["tag:nope"], "dst": ["tag:web:80"] },',
      '    { "action": "accept", "src": ["*"], "dst": ["tag:web:99999"] }',
      '  ]',
      '}',
    ].join('\n'));
    const r = await coord.adminCli(['policy', 'set', bad]);
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0]!, /bad-policy\.json:4: acls\.0\.src\.0: tag:nope is not declared under "tags"$/);
    assert.match(lines[1]!, /bad-policy\.json:5: acls\.1\.dst\.0: "tag:web:99999": port out of range \(0-65535\): 99999$/);
    await writeFile(bad, '{\n  "acls": [\n    { "action": "accept" "src": ["*"] }\n  ]\n}\n');
    const syntax = await coord.adminCli(['policy', 'set', bad]);
    assert.notEqual(syntax.code, 0);
    assert.match(syntax.stderr.trim(), /^pinhole: \S*bad-policy\.json:3:\d+: not valid JSON: expected ',' or '}'/);
    assert.match((await coord.adminCli(['policy', 'get'])).stdout, /no policy/);
  });

  test('with the policy: allowed TCP and UDP flows work, denied ones fail, in both directions', async () => {
    const file = join(coord.dir, 'policy.json');
    await writeFile(file, JSON.stringify(POLICY, null, 2));
    const set = await coord.adminCli(['policy', 'set', file]);
    assert.equal(set.code, 0, set.stderr);
    await waitFor('web to get its filter', async () => (await agents.web!.status()).routing?.filter?.rules === 2);
    await waitFor('laptop to get its (empty) filter', async () => (await agents.laptop!.status()).routing?.filter?.rules === 0);

    // Allowed: laptop → web tcp/8080 and udp/5353 (and the replies, through laptop's own filter).
    await probeUntilOk(hosts.laptop!, 'tcp', ip.web!, 8080);
    await probeUntilOk(hosts.laptop!, 'udp', ip.web!, 5353);
    // Denied: other ports and protocols, the other direction, and a node outside the policy.
    const before = (await agents.web!.status()).drops.filtered;
    assert.match(await probe(hosts.laptop!, 'tcp', ip.web!, 8081), /^fail/);
    assert.match(await probe(hosts.laptop!, 'udp', ip.web!, 5354), /^fail/);
    assert.match(await probe(hosts.laptop!, 'udp', ip.web!, 8080), /^fail/, 'udp to the tcp-only port');
    assert.match(await probe(hosts.web!, 'tcp', ip.laptop!, 9000), /^fail/, 'web may not open connections to laptop');
    assert.match(await probe(hosts.web!, 'udp', ip.laptop!, 9001), /^fail/);
    assert.match(await probe(hosts.other!, 'tcp', ip.web!, 8080), /^fail/, 'other is not in the policy');
    // Allowed still works after the denials (nothing got wedged).
    assert.equal(await probe(hosts.laptop!, 'tcp', ip.web!, 8080), 'ok');
    assert.equal(await probe(hosts.laptop!, 'udp', ip.web!, 5353), 'ok');

    const web = await agents.web!.status();
    assert.ok(web.drops.filtered > before, `web counted its drops (${before} → ${web.drops.filtered})`);
    assert.ok(web.routing!.filter!.accepted.rule > 0);
    const laptop = await agents.laptop!.status();
    assert.ok(laptop.drops.filtered > 0, 'laptop dropped web\'s attempts');
    const replies = laptop.routing!.filter!.accepted;
    assert.ok(replies.flow + replies.nativeFlow > 0, `laptop let the replies to its own flows in: ${JSON.stringify(replies)}`);
    // The policy keeps the native data path: after a flow's first packet (JS decides by the rules),
    // its packets pass the filter in the addon, both ways, on both nodes.
    assert.equal(web.dataPath.native, true);
    assert.ok(web.routing!.filter!.accepted.nativeFlow > 0 && web.dataPath.nativeFlowIn > 0, `web let known flows in natively: ${JSON.stringify(web.dataPath)}`);
    assert.ok(web.dataPath.nativeFlowOut > 0, `web's replies left natively: ${JSON.stringify(web.dataPath)}`);
    assert.ok(laptop.dataPath.nativeFlowOut > 0, `laptop's flows left natively: ${JSON.stringify(laptop.dataPath)}`);
    // pinhole ping: disco pongs pass any policy, so the output says when the policy lets nothing in.
    const fromLaptop = await agents.laptop!.cli(['ping', 'web', '-c', '1']);
    assert.equal(fromLaptop.code, 0, fromLaptop.stderr);
    assert.match(fromLaptop.stdout, /^pong from web /m);
    assert.match(fromLaptop.stdout, /^note: the path works, but the access policy lets no traffic from web to this node/m);
    const fromWeb = await agents.web!.cli(['ping', 'laptop', '-c', '1']);
    assert.equal(fromWeb.code, 0, fromWeb.stderr);
    assert.match(fromWeb.stdout, /^pong from laptop /m);
    assert.doesNotMatch(fromWeb.stdout, /note:/, 'web accepts laptop\'s traffic: no note');
    // Only web and laptop see each other now.
    await waitFor('other to lose its peers', async () => (await agents.other!.status()).peers.length === 0);
    // The servers saw the allowed flows come from laptop's overlay address.
    const seen = servers[0]!.peers();
    assert.ok(seen.some((p) => p.startsWith(`${ip.laptop}:`)), seen.join(' '));
  });

  test('removing the policy lifts the filter', async () => {
    const r = await coord.request('DELETE', '/api/v1/admin/policy', undefined, true);
    assert.equal(r.status, 200);
    await waitFor('web filter gone', async () => (await agents.web!.status()).routing?.filter === null);
    await probeUntilOk(hosts.laptop!, 'tcp', ip.web!, 8081);
    await probeUntilOk(hosts.web!, 'tcp', ip.laptop!, 9000);
  });
});
