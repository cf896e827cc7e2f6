// An exit node gives the internet, nothing more (docs/security-datapath.md). A client behind a
// NAT uses an approved exit node that also has a second LAN (never advertised) with a web server
// on it, a link carrying a fake cloud metadata address (169.254.169.254) and another address of
// its own: the internet works, those are refused with RST / ICMP "administratively prohibited"
// and counted (status --json and `pinhole status`), and once the LAN is advertised and approved
// as a subnet route it answers. Its own lab, so the throughput tests of exit-node.test.ts run
// on the plain topology.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab, type Site } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { ping } from '../helpers/transfer.js';
import { probe, probeUntilOk, startProbeServer, up, waitFor, type ProbeServer } from '../helpers/routing-lab.js';

describe('exit node: the internet only', { timeout: 300_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let office: Site;
  let intranet: Host;
  let exitHost: Host;
  let client: Host;
  let exit: ManagedAgent;
  let laptop: ManagedAgent;
  let wwwIp: string;
  const servers: ProbeServer[] = [];
  const EXIT_OWN = '198.51.100.250'; // an address of the exit node that is not its endpoint
  const METADATA = '169.254.169.254';

  before(async () => {
    lab = await createLab({ name: 'exitonly' });
    coord = await startCoordinator(await lab.addPublicHost('coord'));
    const www = await lab.addPublicHost('www', { ips: 2 });
    wwwIp = www.ips[1]!;
    exitHost = await lab.addPublicHost('exit');
    office = await lab.addSite('office', { nat: 'port-restricted-cone' });
    intranet = await office.addHost('intranet');
    const leg = `v${id}x`;
    await exitHost.run(['ip', 'link', 'add', 'lan1', 'type', 'veth', 'peer', 'name', leg, 'netns', office.router.ns]);
    await office.router.run(['ip', 'link', 'set', leg, 'master', 'lan0', 'up']);
    await exitHost.run(['ip', 'addr', 'add', `${office.lan.replace(/\.0\/24$/, '.200')}/24`, 'dev', 'lan1']);
    await exitHost.run(['ip', 'link', 'set', 'lan1', 'up']);
    // (This kernel has no dummy links: a veth pair with both ends in the namespace stands in.)
    await exitHost.run(['ip', 'link', 'add', 'meta0', 'type', 'veth', 'peer', 'name', 'meta1']);
    await exitHost.run(['ip', 'link', 'set', 'meta1', 'up']);
    await exitHost.run(['ip', 'addr', 'add', `${METADATA}/32`, 'dev', 'meta0']);
    await exitHost.run(['ip', 'link', 'set', 'meta0', 'up']);
    // On the loopback: an address the exit node does not report as an endpoint, so clients do not
    // keep it out of the tunnel (they would reach it directly over the lab internet otherwise).
    await exitHost.run(['ip', 'addr', 'add', `${EXIT_OWN}/32`, 'dev', 'lo']);
    const home = await lab.addSite('home', { nat: 'symmetric' });
    client = await home.addHost('laptop');

    exit = await startManagedAgent(exitHost, { tun: `xo${id}e` });
    laptop = await startManagedAgent(client, { tun: `xo${id}c` });
    const key = await coord.createAuthKey({ reusable: true });
    await up(exit, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'exit', '--advertise-exit-node']);
    await up(laptop, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'laptop']);
    assert.equal((await coord.adminCli(['routes', 'approve', 'exit', '0.0.0.0/0', '::/0'])).code, 0);
    await waitFor('the approval to reach laptop', async () => (await laptop.cli(['up', '--exit-node', 'exit'])).code === 0);
    servers.push(await startProbeServer(www, 'udp', wwwIp, 7001));
    servers.push(await startProbeServer(intranet, 'tcp', intranet.ip, 8080));
    servers.push(await startProbeServer(exitHost, 'tcp', METADATA, 80));
    servers.push(await startProbeServer(exitHost, 'tcp', EXIT_OWN, 7003));
    await probeUntilOk(client, 'udp', wwwIp, 7001);
  });

  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    for (const a of [laptop, exit]) await a?.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('the internet only: own addresses, an unadvertised LAN and metadata are refused and counted; approved as a subnet route, the LAN is reachable', async () => {
    const [, intranetWeb, metadataWeb, ownWeb] = servers;
    const natOf = async () => {
      const r = (await exit.status()).routing!.nat!;
      return { policy: r.exitPolicy.refused, nat: r.nat as { drops: Record<string, number>; unreachableSent: number } };
    };
    const before = await natOf();
    // TCP: a RST from the exit node (the client sees "connection refused" at once).
    assert.match(await probe(client, 'tcp', intranet.ip, 8080), /^fail ECONNREFUSED/);
    assert.match(await probe(client, 'tcp', EXIT_OWN, 7003), /^fail ECONNREFUSED/);
    assert.match(await probe(client, 'tcp', METADATA, 80), /^fail ECONNREFUSED/);
    // UDP and ping: ICMP administratively prohibited ("Packet filtered" to ping).
    assert.match(await probe(client, 'udp', intranet.ip, 8080, 1000), /^fail/);
    for (const ip of [intranet.ip, EXIT_OWN, METADATA]) {
      const p = await ping(client, ip, 1, 2);
      assert.equal(p.ok, false);
      assert.match(p.output, /Packet filtered/, p.output);
    }
    for (const srv of [intranetWeb!, metadataWeb!, ownWeb!]) assert.deepEqual(srv.peers(), [], 'no connection reached a refused server');
    const after = await natOf();
    assert.ok(after.policy.connectedNetwork - before.policy.connectedNetwork >= 3, JSON.stringify(after.policy));
    assert.ok(after.policy.ownAddress - before.policy.ownAddress >= 2, JSON.stringify(after.policy));
    assert.ok(after.nat.drops['forbidden-destination']! - before.nat.drops['forbidden-destination']! >= 2, 'metadata: link-local');
    assert.ok(after.nat.unreachableSent - before.nat.unreachableSent >= 4, 'ICMP sent for the UDP probe and the pings');
    assert.match((await exit.cli(['status'])).stdout, /refused as not the internet: ownAddress=\d+ connectedNetwork=\d+/);
    // The internet is still there.
    await probeUntilOk(client, 'udp', wwwIp, 7001);

    // Advertised and approved as a subnet route, the LAN is reachable (the rest stays refused).
    await up(exit, ['--advertise-exit-node', '--advertise-routes', office.lan]);
    assert.equal((await coord.adminCli(['routes', 'approve', 'exit', office.lan])).code, 0);
    await waitFor('exit to serve the LAN', async () => (await exit.status()).routing?.servedRoutes.includes(office.lan));
    await probeUntilOk(client, 'tcp', intranet.ip, 8080);
    assert.ok(intranetWeb!.peers().length > 0);
    assert.match(await probe(client, 'tcp', EXIT_OWN, 7003), /^fail ECONNREFUSED/);
    assert.equal((await exit.status()).routing!.servedRoutes.includes('0.0.0.0/0'), true, 'still an exit node');
  });
});
