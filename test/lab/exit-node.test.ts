// An exit node as users meet it: a client behind a symmetric NAT sends all its traffic through a
// peer that offers itself with `--advertise-exit-node` and was approved by an admin. The lab's
// "internet" server (192.0.2.x) sees the exit node's address; an HTTP download arrives intact
// (sha256), iperf3 TCP and UDP run, a UDP request gets its answer, ping works. The exit node
// does it all in its userspace NAT: its namespace has no nftables ruleset and forwarding off.
// The coordinator and the exit node's endpoint stay outside the tunnel; --exit-node-allow-lan-
// access keeps the LAN direct; `down` takes every route and rule away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab, type Site } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { ping } from '../helpers/transfer.js';
import { PROBE, probe, probeUntilOk, startProbeServer, up, waitFor, type ProbeServer } from '../helpers/routing-lab.js';

const DOWNLOAD_BYTES = 4 * 1024 * 1024;

describe('exit node: a client behind NAT reaches the internet through a peer', { timeout: 600_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let home: Site;
  let www: Host;
  let exitHost: Host;
  let client: Host;
  let lanHost: Host;
  let exit: ManagedAgent;
  let laptop: ManagedAgent;
  let wwwIp: string;
  const servers: ProbeServer[] = [];
  const tun = `ex${id}c`;

  const routeDev = async (host: Host, ip: string): Promise<string> => {
    const r = await host.run(['ip', 'route', 'get', ip]);
    return /\bdev (\S+)/.exec(r)?.[1] ?? r;
  };

  before(async () => {
    lab = await createLab({ name: 'exit' });
    const coordHost = await lab.addPublicHost('coord');
    coord = await startCoordinator(coordHost);
    www = await lab.addPublicHost('www', { ips: 2 });
    wwwIp = www.ips[1]!; // 192.0.2.x: "a server on the internet"
    exitHost = await lab.addPublicHost('exit');
    home = await lab.addSite('home', { nat: 'symmetric' });
    client = await home.addHost('laptop');
    lanHost = await home.addHost('printer');
    exit = await startManagedAgent(exitHost, { tun: `ex${id}e` });
    laptop = await startManagedAgent(client, { tun });
    const key = await coord.createAuthKey({ reusable: true });
    await up(exit, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'exit', '--advertise-exit-node']);
    await up(laptop, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'laptop']);
    await waitFor('both to see each other', async () => (await laptop.status()).peers.length === 1 && (await exit.status()).peers.length === 1);
    servers.push(await startProbeServer(www, 'udp', wwwIp, 7001));
    servers.push(await startProbeServer(lanHost, 'tcp', lanHost.ip, 7002));
  });

  after(async () => {
    for (const s of servers) await s.stop().catch(() => undefined);
    for (const a of [laptop, exit]) await a?.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('an exit node is pending until approved; using an unapproved one is a one-line error', async () => {
    const list = await coord.adminCli(['routes', 'list']);
    assert.match(list.stdout, /exit\s+\d+\s+0\.0\.0\.0\/0 \(exit\)\s+no/);
    const r = await laptop.cli(['up', '--exit-node', 'exit']);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /--exit-node exit: exit is not an approved exit node/);
    const unknown = await laptop.cli(['up', '--exit-node', 'nosuchpeer']);
    assert.match(unknown.stderr, /--exit-node nosuchpeer: no peer by that name/);
    const bad = await laptop.cli(['up', '--advertise-routes', '198.18.1.7/24']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr.trim(), /^pinhole: --advertise-routes: 198\.18\.1\.7\/24 has host bits set: did you mean 198\.18\.1\.0\/24\?$/);
    assert.equal((await laptop.status()).routing?.exitNode, null, 'nothing was applied');
  });

  test('approved, it carries the client\'s traffic; the control plane and the exit endpoint stay outside', async () => {
    const approve = await coord.adminCli(['routes', 'approve', 'exit', '0.0.0.0/0', '::/0']);
    assert.equal(approve.code, 0, approve.stderr);
    // The approval reaches the client's netmap by a delta; until then `up` refuses as above.
    const out = await waitFor('the approval to reach laptop', async () => {
      const r = await laptop.cli(['up', '--exit-node', 'exit']);
      return r.code === 0 ? r.stdout : false;
    });
    assert.match(out, /^exit node: exit \(active\)$/m);
    await waitFor('exit to serve the default routes', async () => (await exit.status()).routing?.servedRoutes.includes('0.0.0.0/0'));
    // Kernel state on the client: our rule and table, bypass rules for the coordinator and the exit node.
    await waitFor('routes installed', async () => (await routeDev(client, wwwIp)) === tun);
    const rules = await client.run(['ip', 'rule', 'show']);
    assert.match(rules, /^5270:\s+from all lookup 5270/m);
    assert.match(rules, new RegExp(`^5210:\\s+from all to ${coord.host.ip.replace(/\./g, '\\.')} lookup main`, 'm'));
    assert.match(rules, new RegExp(`^5210:\\s+from all to ${exitHost.ip.replace(/\./g, '\\.')} lookup main`, 'm'));
    assert.equal(await routeDev(client, coord.host.ip), 'eth0');
    assert.equal(await routeDev(client, exitHost.ip), 'eth0');
    assert.equal(await routeDev(client, lanHost.ip), tun, 'without allow-lan-access the LAN goes through the exit node too');

    // UDP request/response: the server sees the exit node, not the client's NAT.
    await probeUntilOk(client, 'udp', wwwIp, 7001);
    const seen = servers[0]!.peers();
    assert.ok(seen.length > 0 && seen.every((p) => p.startsWith(`${exitHost.ip}:`)), `udp sources: ${seen.join(' ')}`);
    assert.ok(!seen.some((p) => p.startsWith(`${home.wanIp}:`)));

    // Ping through the exit node's ICMP socket.
    const p = await ping(client, wwwIp, 3, 5);
    assert.ok(p.ok, p.output);

    // The control plane is still reached directly.
    const s = await laptop.status();
    assert.equal(s.self!.connected, true);
    assert.equal(s.routing!.exitNode!.state, 'active');
  });

  test('HTTP download through the exit node arrives intact', async () => {
    const srv = www.spawn(['node', PROBE, 'serve-http', wwwIp, '8000', String(DOWNLOAD_BYTES)]);
    try {
      const [, sha] = (await srv.waitForOutput(/^listening ([0-9a-f]{64})$/m, 10_000))!;
      const r = await client.exec(['node', PROBE, 'http-get', `http://${wwwIp}:8000/`, '60000'], { timeoutMs: 90_000 });
      assert.equal(r.stdout.trim(), `got ${DOWNLOAD_BYTES} ${sha}`, r.stderr);
      assert.match(srv.stdout, new RegExp(`^peer (::ffff:)?${exitHost.ip.replace(/\./g, '\\.')}:\\d+$`, 'm'));
    } finally {
      await srv.kill('SIGKILL', 100);
    }
  });

  test('iperf3 TCP and UDP through the exit node', async () => {
    const srv = www.spawn(['iperf3', '-s', '-B', wwwIp, '-p', '5201', '--forceflush']);
    try {
      await srv.waitForOutput(/Server listening/, 10_000);
      const tcp = await client.exec(['iperf3', '-c', wwwIp, '-p', '5201', '-t', '3', '-J', '--connect-timeout', '5000'], { timeoutMs: 60_000 });
      assert.equal(tcp.code, 0, tcp.stdout.slice(-500) + tcp.stderr);
      const t = JSON.parse(tcp.stdout) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
      assert.ok(t.end.sum_received.bytes > 1_000_000, `TCP received ${t.end.sum_received.bytes} bytes`);
      const udp = await client.exec(['iperf3', '-c', wwwIp, '-p', '5201', '-u', '-b', '20M', '-t', '3', '-J', '--connect-timeout', '5000'], { timeoutMs: 60_000 });
      assert.equal(udp.code, 0, udp.stdout.slice(-500) + udp.stderr);
      const u = JSON.parse(udp.stdout) as { end: { sum: { packets: number; lost_percent: number } } };
      assert.ok(u.end.sum.packets > 1000, `UDP packets ${u.end.sum.packets}`);
      assert.ok(u.end.sum.lost_percent < 20, `UDP loss ${u.end.sum.lost_percent}%`);
    } finally {
      await srv.kill('SIGKILL', 100);
    }
  });

  test('the exit node needs no nftables rules and no kernel forwarding; its NAT counted the flows', async () => {
    const ruleset = await exitHost.run(['nft', 'list', 'ruleset']);
    assert.equal(ruleset.trim(), '', 'empty nftables ruleset');
    assert.equal((await exitHost.run(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '0');
    const s = await exit.status();
    const nat = s.routing!.nat!.nat as { tcp: { opened?: number }; udp: { mappings: number }; packetsIn: number; packetsOut: number };
    assert.ok(s.routing!.nat!.toNat > 0);
    assert.ok(nat.packetsIn > 0 && nat.packetsOut > 0, JSON.stringify(nat).slice(0, 300));
  });

  test('--exit-node-allow-lan-access keeps the LAN direct', async () => {
    assert.match(await probe(client, 'tcp', lanHost.ip, 7002), /^fail/, 'the exit node cannot reach the client\'s LAN');
    const out = await up(laptop, ['--exit-node-allow-lan-access']);
    assert.match(out, /exit node: exit \(active\), LAN stays direct/);
    await waitFor('LAN route direct', async () => (await routeDev(client, lanHost.ip)) === 'eth0');
    assert.equal(await probe(client, 'tcp', lanHost.ip, 7002), 'ok');
    assert.ok(servers[1]!.peers().some((p) => p.startsWith(`${client.ip}:`)));
    assert.equal(await routeDev(client, wwwIp), tun, 'the internet still goes through the exit node');
  });

  test('down removes every route and rule; --exit-node "" turns it off', async () => {
    assert.equal((await laptop.cli(['down'])).code, 0);
    const rules = await client.run(['ip', 'rule', 'show']);
    assert.doesNotMatch(rules, /^52[0-9]{2}:/m, rules);
    assert.equal((await client.run(['ip', 'route', 'show', 'table', '5270'])).trim(), '');
    assert.equal(await routeDev(client, wwwIp), 'eth0');
    // Back up: the exit node is remembered.
    await up(laptop, []);
    await waitFor('exit routes back', async () => (await routeDev(client, wwwIp)) === tun);
    await up(laptop, ['--exit-node', '']);
    await waitFor('exit routes gone', async () => (await routeDev(client, wwwIp)) === 'eth0');
    assert.doesNotMatch(await client.run(['ip', 'rule', 'show']), /^52[0-9]{2}:/m);
    // Direct again: the server now sees the home NAT's address.
    const before = servers[0]!.peers().length;
    await probeUntilOk(client, 'udp', wwwIp, 7001);
    assert.ok(servers[0]!.peers().slice(before).every((p) => p.startsWith(`${home.wanIp}:`)));
  });
});
