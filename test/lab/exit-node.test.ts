// An exit node as users meet it: a client behind a symmetric NAT sends all its traffic through a
// peer that offers itself with `--advertise-exit-node` and was approved by an admin. The lab's
// "internet" server (192.0.2.x) sees the exit node's address; an HTTP download arrives intact
// (sha256), iperf3 TCP and UDP run, a UDP request gets its answer, ping works. The exit node
// does it all in its userspace NAT: its namespace has no nftables ruleset and forwarding off.
// The agent's own sockets (UDP, coordinator) carry the socket mark and one fwmark rule keeps them
// outside the tunnel; no address ever becomes a rule, so a member that reports a web server as its
// "endpoint" does not steer the client around its exit node. A daemon killed with -9 leaves rules
// that the next start sweeps; --exit-node-allow-lan-access keeps the LAN direct; `down` takes
// every route and rule away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab, type Site } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { LabProcess } from '../../scripts/natlab/index.js';
import { DEFAULT_SOCKET_MARK, formatSocketMark } from '../../agent/routing/socket-mark.js';
import { ping } from '../helpers/transfer.js';
import { PROBE, probe, probeUntilOk, startProbeServer, up, waitFor, type ProbeServer } from '../helpers/routing-lab.js';

const DOWNLOAD_BYTES = 4 * 1024 * 1024;
const LIAR = join(REPO_ROOT, 'dist', 'test', 'helpers', 'lying-member.js');
const MARK = formatSocketMark(DEFAULT_SOCKET_MARK);
const MARK_VALUE = MARK.split('/')[0]!;
const MARK_RULE = new RegExp(`^5210:\\s+from all fwmark ${MARK} lookup main\\s*$`, 'm');
const esc = (ip: string): string => ip.replace(/\./g, '\\.');

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
  let malloryHost: Host;
  let liar: LabProcess | undefined;
  let authKey: string;
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
    malloryHost = await lab.addPublicHost('mallory');
    home = await lab.addSite('home', { nat: 'symmetric' });
    client = await home.addHost('laptop');
    lanHost = await home.addHost('printer');
    exit = await startManagedAgent(exitHost, { tun: `ex${id}e` });
    laptop = await startManagedAgent(client, { tun });
    const key = authKey = await coord.createAuthKey({ reusable: true });
    await up(exit, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'exit', '--advertise-exit-node']);
    await up(laptop, ['--coordinator', coord.url, '--auth-key', key, '--hostname', 'laptop']);
    await waitFor('both to see each other', async () => (await laptop.status()).peers.length === 1 && (await exit.status()).peers.length === 1);
    servers.push(await startProbeServer(www, 'udp', wwwIp, 7001));
    servers.push(await startProbeServer(lanHost, 'tcp', lanHost.ip, 7002));
  });

  after(async () => {
    if (liar?.running) await liar.kill('SIGKILL', 100);
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

  test('approved, it carries the client\'s traffic; the agent\'s own marked sockets stay outside', async () => {
    const approve = await coord.adminCli(['routes', 'approve', 'exit', '0.0.0.0/0', '::/0']);
    assert.equal(approve.code, 0, approve.stderr);
    // The approval reaches the client's netmap by a delta; until then `up` refuses as above.
    const out = await waitFor('the approval to reach laptop', async () => {
      const r = await laptop.cli(['up', '--exit-node', 'exit']);
      return r.code === 0 ? r.stdout : false;
    });
    assert.match(out, /^exit node: exit \(active\)$/m);
    await waitFor('exit to serve the default routes', async () => (await exit.status()).routing?.servedRoutes.includes('0.0.0.0/0'));
    // Kernel state on the client: our table and lookup rule, one fwmark rule, no rule naming an address.
    await waitFor('routes installed', async () => (await routeDev(client, wwwIp)) === tun);
    const rules = await client.run(['ip', 'rule', 'show']);
    assert.match(rules, /^5270:\s+from all lookup 5270/m);
    assert.match(rules, MARK_RULE);
    assert.match(await client.run(['ip', '-6', 'rule', 'show']), MARK_RULE);
    assert.doesNotMatch(rules, /^52\d\d:.* to /m, 'no per-address rule');
    assert.equal(await routeDev(client, coord.host.ip), tun, 'unmarked traffic to the coordinator\'s host goes through the exit node');
    for (const ip of [coord.host.ip, exitHost.ip]) {
      const r = await client.run(['ip', 'route', 'get', ip, 'mark', MARK_VALUE]);
      assert.match(r, /\bdev eth0\b/, `marked packets to ${ip} stay outside: ${r}`);
    }
    assert.equal(await routeDev(client, lanHost.ip), tun, 'without allow-lan-access the LAN goes through the exit node too');
    // The agent's UDP socket and its control connection carry the mark (ss shows it to root).
    const udp = await client.run(['ss', '-uaneH']);
    assert.match(udp, new RegExp(`fwmark:${MARK_VALUE}\\b`), udp);
    const tcp = await client.run(['ss', '-tneH', 'dst', coord.host.ip]);
    assert.match(tcp, new RegExp(`fwmark:${MARK_VALUE}\\b`), tcp);

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

  test('a member reporting a web server as its endpoint does not steer the client around its exit node', async () => {
    // mallory, a registered member, says the web server's address is its endpoint.
    liar = malloryHost.spawn(['node', LIAR, coord.url, authKey, 'mallory', `${wwwIp}:8000`]);
    await liar.waitForOutput(/^reported$/m, 20_000);
    await waitFor('laptop to learn mallory\'s endpoint', async () =>
      (await laptop.status()).peers.some((p) => p.name?.split('.')[0] === 'mallory'));
    await new Promise((r) => setTimeout(r, 1500)); // a kernel pass follows every netmap change
    const rules = await client.run(['ip', 'rule', 'show']);
    assert.doesNotMatch(rules, new RegExp(`\\b${esc(wwwIp)}\\b`), `no rule names the reported address:\n${rules}`);
    assert.equal(await routeDev(client, wwwIp), tun);
    // TCP and UDP to that server still leave through the exit node.
    const srv = www.spawn(['node', PROBE, 'serve-http', wwwIp, '8000', '65536']);
    try {
      const [, sha] = (await srv.waitForOutput(/^listening ([0-9a-f]{64})$/m, 10_000))!;
      const r = await client.exec(['node', PROBE, 'http-get', `http://${wwwIp}:8000/`, '20000'], { timeoutMs: 30_000 });
      if (r.stdout.trim() !== `got 65536 ${sha}`) {
        const diag = [srv.stdout, await client.run(['ss', '-tnie']), JSON.stringify((await laptop.status()).peers), JSON.stringify((await exit.status()).routing?.nat)];
        assert.fail(`http-get: ${r.stdout.trim()} ${r.stderr}\n${diag.join('\n')}`);
      }
      const from = [...srv.stdout.matchAll(/^peer (?:::ffff:)?(\S+):\d+$/gm)].map((m) => m[1]);
      assert.ok(from.length > 0 && from.every((ip) => ip === exitHost.ip), `the web server saw ${from.join(' ')}, not only ${exitHost.ip}`);
    } finally {
      await srv.kill('SIGKILL', 100);
    }
    const before = servers[0]!.peers().length;
    await probeUntilOk(client, 'udp', wwwIp, 7001);
    const seen = servers[0]!.peers().slice(before);
    assert.ok(seen.length > 0 && seen.every((p) => p.startsWith(`${exitHost.ip}:`)), `udp sources: ${seen.join(' ')}`);
  });

  test('a daemon killed with -9: the next start sweeps stale rules and reconnects with marked sockets', async () => {
    // Leftovers at our priorities (an old per-address rule, a rule with another mark) go in the sweep.
    await client.run(['ip', 'rule', 'add', 'pref', '5210', 'to', wwwIp, 'lookup', 'main']);
    await client.run(['ip', 'rule', 'add', 'pref', '5230', 'fwmark', '0x1234', 'lookup', 'main']);
    await laptop.restart({ hard: true });
    await waitFor('laptop back on its exit node', async () => {
      const s = await laptop.status();
      return s.self?.connected === true && s.routing?.exitNode?.state === 'active' && (await routeDev(client, wwwIp)) === tun;
    });
    const ours = (await client.run(['ip', 'rule', 'show'])).split('\n').filter((l) => /^52\d\d:/.test(l));
    assert.equal(ours.length, 2, ours.join('\n'));
    assert.match(ours.join('\n'), MARK_RULE);
    assert.match(ours.join('\n'), /^5270:\s+from all lookup 5270/m);
    await probeUntilOk(client, 'udp', wwwIp, 7001);
    // The coordinator sees the new control connection from the home NAT; the one connection from
    // the exit node's address is the exit node's own (through it, the laptop's would be a second).
    const conns = await coord.host.run(['ss', '-tnH', 'state', 'established', 'sport', '=', ':8080']);
    const from = (ip: string): number => conns.split('\n').filter((l) => new RegExp(`\\s${esc(ip)}:\\d+\\s*$`).test(l)).length;
    assert.equal(from(home.wanIp), 1, conns);
    assert.equal(from(exitHost.ip), 1, conns);
  });

  test('HTTP download through the exit node arrives intact', async () => {
    const srv = www.spawn(['node', PROBE, 'serve-http', wwwIp, '8000', String(DOWNLOAD_BYTES)]);
    try {
      const [, sha] = (await srv.waitForOutput(/^listening ([0-9a-f]{64})$/m, 10_000))!;
      const r = await client.exec(['node', PROBE, 'http-get', `http://${wwwIp}:8000/`, '60000'], { timeoutMs: 90_000 });
      if (r.stdout.trim() !== `got ${DOWNLOAD_BYTES} ${sha}`) {
        // Both ends of the spliced flow (the client's socket, the exit node's host socket) and
        // what each agent and the exit node's NAT made of it.
        const [ls, es] = [await laptop.status().catch(() => null), await exit.status().catch(() => null)];
        const diag = [
          `server:\n${srv.stdout}`,
          `laptop ss:\n${await client.run(['ss', '-tnie'])}`,
          `exit ss:\n${await exitHost.run(['ss', '-tnie'])}`,
          `laptop peers: ${JSON.stringify(ls?.peers)}`,
          `exit peers: ${JSON.stringify(es?.peers)}`,
          `exit nat: ${JSON.stringify(es?.routing?.nat)}`,
        ];
        assert.fail(`http-get: ${r.stdout.trim()} ${r.stderr}\n${diag.join('\n')}`);
      }
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
      // The exit node's NAT runs every packet through JavaScript: busy, it turned TurboFan on
      // (started without it: agent/daemon/optimizer-on-load.ts) and moved its bulk crypto from the
      // addon's libsodium to sodium-native's (agent/tun/addon-sodium.ts), which it then maps.
      const exitLog = await readFile(join(exit.dir, 'agent.log'), 'utf8');
      assert.match(exitLog, /busy \(\d+ packet batches in \d+ ms at \d+% of a core\): V8's optimizing compiler on, bulk crypto on sodium-native/);
      assert.match(await readFile(`/proc/${exit.proc.pid}/maps`, 'utf8'), /sodium-native/);
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
    // `up` registers again while the exit node is in use: over a marked connection, straight to the coordinator.
    assert.doesNotMatch(await up(laptop, ['--exit-node', '']), /coordinator is unreachable/);
    await waitFor('exit routes gone', async () => (await routeDev(client, wwwIp)) === 'eth0');
    assert.doesNotMatch(await client.run(['ip', 'rule', 'show']), /^52[0-9]{2}:/m);
    // Direct again: the server now sees the home NAT's address.
    const before = servers[0]!.peers().length;
    await probeUntilOk(client, 'udp', wwwIp, 7001);
    assert.ok(servers[0]!.peers().slice(before).every((p) => p.startsWith(`${home.wanIp}:`)));
  });
});
