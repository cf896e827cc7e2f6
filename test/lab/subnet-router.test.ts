// A subnet router as users meet it: a node with a leg on an office LAN (198.18.x) advertises that
// LAN with `--advertise-routes`; until an admin approves it, clients with `--accept-routes` do not
// use it (no kernel route, not in the router's allowed IPs, the router does not serve it); once
// approved, a client behind another NAT reaches a host on the LAN over TCP, UDP and ping, and
// that host sees the router's LAN address as the source (the router's userspace NAT, no
// forwarding, no nftables). `--no-accept-routes` and withdrawing the route take it away again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab, type Site } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { ping } from '../helpers/transfer.js';
import { probe, probeUntilOk, startProbeServer, up, waitFor, type ProbeServer } from '../helpers/routing-lab.js';

describe('subnet router: a client reaches a LAN behind a peer', { timeout: 600_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let office: Site;
  let routerHost: Host;
  let db: Host;
  let client: Host;
  let router: ManagedAgent;
  let laptop: ManagedAgent;
  let lan: string;
  let routerLanIp: string;
  const servers: ProbeServer[] = [];
  const tun = `sr${id}c`;

  const routeDev = async (host: Host, ip: string): Promise<string> => {
    const r = await host.exec(['ip', 'route', 'get', ip]);
    return /\bdev (\S+)/.exec(r.stdout)?.[1] ?? (r.stderr.trim() || r.stdout.trim());
  };
  const routerAllowedAtClient = async (): Promise<string[]> => {
    const s = await laptop.status();
    return s.peers.find((p) => p.name === 'router')?.allowedIps ?? [];
  };

  before(async () => {
    lab = await createLab({ name: 'subnet' });
    coord = await startCoordinator(await lab.addPublicHost('coord'));
    // The office: a NATed LAN nobody outside reaches; the router is on the internet and on that LAN.
    office = await lab.addSite('office', { nat: 'port-restricted-cone' });
    db = await office.addHost('db');
    lan = office.lan;
    routerLanIp = lan.replace(/\.0\/24$/, '.200');
    routerHost = await lab.addPublicHost('router');
    const port = `v${id}r`;
    await routerHost.run(['ip', 'link', 'add', 'lan1', 'type', 'veth', 'peer', 'name', port, 'netns', office.router.ns]);
    await office.router.run(['ip', 'link', 'set', port, 'master', 'lan0', 'up']);
    await routerHost.run(['ip', 'addr', 'add', `${routerLanIp}/24`, 'dev', 'lan1']);
    await routerHost.run(['ip', 'link', 'set', 'lan1', 'up']);
    const home = await lab.addSite('home', { nat: 'symmetric' });
    client = await home.addHost('laptop');

    router = await startManagedAgent(routerHost, { tun: `sr${id}r` });
    laptop = await startManagedAgent(client, { tun });
    const key = await coord.createAuthKey({ reusable: true });
    await up(router, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'router', '--advertise-routes', lan]);
    await up(laptop, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'laptop', '--accept-routes']);
    await waitFor('both to see each other', async () => (await laptop.status()).peers.length === 1 && (await router.status()).peers.length === 1);
    servers.push(await startProbeServer(db, 'tcp', db.ip, 7200));
    servers.push(await startProbeServer(db, 'udp', db.ip, 7201));
  });

  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    for (const a of [laptop, router]) await a?.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('an unapproved route is not used: no kernel route, not in allowed IPs, not served', async () => {
    const list = await coord.adminCli(['routes', 'list']);
    assert.match(list.stdout, new RegExp(`router\\s+\\d+\\s+${lan.replace(/\./g, '\\.')}\\s+no`));
    const s = await laptop.status();
    assert.deepEqual(s.routing!.acceptRoutes, true);
    assert.deepEqual(s.routing!.acceptedRoutes, []);
    assert.ok(!(await routerAllowedAtClient()).includes(lan));
    assert.notEqual(await routeDev(client, db.ip), tun);
    assert.deepEqual((await router.status()).routing!.servedRoutes, []);
    assert.match(await probe(client, 'tcp', db.ip, 7200, 2000), /^fail/);
    assert.equal(servers[0]!.peers().length, 0, 'nothing reached the LAN host');
  });

  test('approved, the client reaches the LAN host, which sees the router\'s LAN address', async () => {
    const r = await coord.adminCli(['routes', 'approve', 'router', lan]);
    assert.equal(r.code, 0, r.stderr);
    await waitFor('the router to serve the route', async () => (await router.status()).routing!.servedRoutes.includes(lan));
    await waitFor('the client to accept it', async () => (await laptop.status()).routing!.acceptedRoutes.includes(lan));
    await waitFor('the kernel route', async () => (await routeDev(client, db.ip)) === tun);
    assert.ok((await routerAllowedAtClient()).includes(lan), 'the route is in the router\'s allowed IPs');

    await probeUntilOk(client, 'tcp', db.ip, 7200);
    await probeUntilOk(client, 'udp', db.ip, 7201);
    const p = await ping(client, db.ip, 3, 5);
    assert.ok(p.ok, p.output);
    for (const s of servers) {
      const seen = s.peers();
      assert.ok(seen.length > 0 && seen.every((x) => x.startsWith(`${routerLanIp}:`) || x.startsWith(`::ffff:${routerLanIp}:`)), `sources: ${seen.join(' ')}`);
    }
    // The router did it in userspace.
    assert.equal((await routerHost.run(['nft', 'list', 'ruleset'])).trim(), '');
    assert.equal((await routerHost.run(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '0');
    assert.ok((await router.status()).routing!.nat!.toNat > 0);
    // The coordinator is still reached directly.
    assert.equal(await routeDev(client, coord.host.ip), 'eth0');
  });

  test('--no-accept-routes stops using it; accepting again brings it back', async () => {
    await up(laptop, ['--no-accept-routes']);
    await waitFor('route gone', async () => (await routeDev(client, db.ip)) !== tun);
    assert.ok(!(await routerAllowedAtClient()).includes(lan));
    assert.match(await probe(client, 'tcp', db.ip, 7200, 2000), /^fail/);
    await up(laptop, ['--accept-routes']);
    await waitFor('route back', async () => (await routeDev(client, db.ip)) === tun);
    await probeUntilOk(client, 'tcp', db.ip, 7200);
  });

  test('the access policy applies to routed traffic: the router filters what reaches the LAN', async () => {
    const laptopId = (await laptop.status()).self!.id;
    const policy = { acls: [{ action: 'accept', src: [`node:${laptopId}`], dst: [`${lan}:7200`], proto: ['tcp'] }] };
    const set = await coord.request('PUT', '/api/v1/admin/policy', policy, true);
    assert.equal(set.status, 200, JSON.stringify(set.body));
    await waitFor('the router to get its filter', async () => (await router.status()).routing!.filter?.rules === 1);
    const before = (await router.status()).drops.filtered;
    await probeUntilOk(client, 'tcp', db.ip, 7200);
    assert.match(await probe(client, 'udp', db.ip, 7201, 2000), /^fail/);
    assert.ok((await router.status()).drops.filtered > before, 'the router dropped the UDP probe');
    const cleared = await coord.request('DELETE', '/api/v1/admin/policy', undefined, true);
    assert.equal(cleared.status, 200);
    await waitFor('filter gone', async () => (await router.status()).routing!.filter === null);
    await probeUntilOk(client, 'udp', db.ip, 7201);
  });

  test('withdrawing the route (--advertise-routes "") takes it out of the client\'s routing', async () => {
    await up(router, ['--advertise-routes', '']);
    await waitFor('router stops serving', async () => (await router.status()).routing!.servedRoutes.length === 0);
    await waitFor('client drops the route', async () => (await routeDev(client, db.ip)) !== tun);
    assert.deepEqual((await laptop.status()).routing!.acceptedRoutes, []);
    assert.match(await probe(client, 'tcp', db.ip, 7200, 2000), /^fail/);
  });
});
