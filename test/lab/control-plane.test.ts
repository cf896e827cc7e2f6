// The control plane as users meet it: a real coordinator process and real managed agents on the
// lab's public segment, driven through the real `pinhole` CLI. Nodes join with auth keys, reach
// each other by overlay IP, survive a coordinator killed with -9, keep their identity across
// restarts; single-use, bad and ephemeral keys behave; status/ip/down/up/logout do what they say.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { sanitizeHostname } from '../../agent/daemon/hostname.js';
import type { AgentStatus, PeerStatusJson } from '../../agent/static/status.js';
import { ping } from '../helpers/transfer.js';
import { waitFor as waitForEvery } from '../../scripts/tunnels/wait-for.js';

const OVERLAY_V4 = /^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d{1,3}\.\d{1,3}$/;
const OVERLAY_V6 = /^fd[0-9a-f]{2}:[0-9a-f:]+$/;

const waitFor = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> => waitForEvery(what, fn, ms, 250);

const exists = (p: string): Promise<boolean> => access(p).then(() => true, () => false);
const oneLine = (s: string): boolean => s.trim().length > 0 && s.trim().split('\n').length === 1;

describe('control plane: coordinator + managed agents on a shared segment', { timeout: 420_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  const hosts: Record<string, Host> = {};
  const agents: Record<string, ManagedAgent> = {};
  let reusableKey: string;

  async function agent(name: string): Promise<ManagedAgent> {
    hosts[name] ??= await lab.addPublicHost(name);
    const a = await startManagedAgent(hosts[name]!, { tun: `cp${id}${name[0]}` });
    agents[name] = a;
    return a;
  }
  const st = (name: string): Promise<AgentStatus> => agents[name]!.status();
  const selfIp = async (name: string): Promise<string> => (await st(name)).self!.ipv4!;
  const peerNamed = (s: AgentStatus, name: string): PeerStatusJson | undefined => s.peers.find((p) => p.name === name);

  async function pingsBothWays(x: string, y: string): Promise<void> {
    const [ipX, ipY] = [await selfIp(x), await selfIp(y)];
    const there = await ping(hosts[x]!, ipY, 3, 5);
    assert.ok(there.ok, `${x} -> ${y} (${ipY}):\n${there.output}`);
    const back = await ping(hosts[y]!, ipX, 3, 5);
    assert.ok(back.ok, `${y} -> ${x} (${ipX}):\n${back.output}`);
  }

  before(async () => {
    lab = await createLab({ name: 'cp' });
    hosts.coord = await lab.addPublicHost('coord');
    coord = await startCoordinator(hosts.coord, { ephemeralTimeout: '2s' });
    reusableKey = await coord.createAuthKey({ reusable: true });
  });

  after(async () => {
    for (const a of Object.values(agents)) await a.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('three agents join with one reusable key through `pinhole up`, and every pair pings by overlay IP', async () => {
    for (const [i, name] of ['alpha', 'beta', 'gamma'].entries()) {
      const a = await agent(name);
      const r = await a.cli(['up', '--coordinator', coord.url, '--auth-key', reusableKey, '--hostname', name]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], `registering with ${coord.url}…`);
      const ip = r.stdout.match(/^address assigned (\S+) \((\S+)\), name (\S+)$/m);
      assert.ok(ip, r.stdout);
      assert.match(ip[1]!, OVERLAY_V4);
      assert.match(ip[2]!, OVERLAY_V6);
      assert.equal(ip[3], name);
      assert.match(r.stdout, new RegExp(`^${i} peers?$`, 'm'), 'the earlier nodes are its peers');
      assert.match(r.stdout, new RegExp(`^up: cp${id}${name[0]} is ${ip[1]!.replace(/\./g, '\\.')}$`, 'm'));
    }
    for (const name of ['alpha', 'beta', 'gamma']) {
      await waitFor(`${name} to see 2 peers`, async () => (await st(name)).peers.length === 2);
    }
    const ips = await Promise.all(['alpha', 'beta', 'gamma'].map(selfIp));
    assert.equal(new Set(ips).size, 3, 'distinct addresses');
    await pingsBothWays('alpha', 'beta');
    await pingsBothWays('alpha', 'gamma');
    await pingsBothWays('beta', 'gamma');
    // Their handshakes, disco and control protocol ran on libsodium through the addon
    // (proto/sodium.ts, agent/tun/addon-sodium.ts): sodium-native, a second copy, is never loaded.
    for (const name of ['alpha', 'beta', 'gamma']) {
      const maps = await readFile(`/proc/${agents[name]!.proc.pid}/maps`, 'utf8');
      assert.match(maps, /libsodium\.so/, `${name}: the addon's libsodium is mapped`);
      assert.doesNotMatch(maps, /sodium-native/, `${name}: sodium-native is not loaded`);
    }
  });

  test('status --json shows the node, its coordinator and each peer with path, endpoint, bytes and handshake', async () => {
    const r = await agents.alpha!.cli(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as AgentStatus;
    assert.equal(s.mode, 'managed');
    assert.ok(s.self);
    assert.equal(s.self.state, 'up');
    assert.equal(s.self.connected, true);
    assert.equal(s.self.coordinator, coord.url);
    assert.equal(s.self.name, 'alpha');
    assert.match(s.self.ipv4!, OVERLAY_V4);
    assert.match(s.self.ipv6!, OVERLAY_V6);
    assert.equal(s.interface.name, `cp${id}a`);
    assert.deepEqual(s.interface.addresses, [`${s.self.ipv4}/32`, `${s.self.ipv6}/128`]);
    assert.equal(s.interface.publicKey, s.self.nodeKey);
    assert.ok(s.interface.listenPort > 0);
    assert.equal(s.peers.length, 2);
    for (const name of ['beta', 'gamma']) {
      const p = peerNamed(s, name);
      assert.ok(p, `peer ${name} listed`);
      assert.equal(p.overlayIp, await selfIp(name));
      assert.equal(p.overlayIpv6, (await st(name)).self!.ipv6);
      assert.equal(p.publicKey, (await st(name)).self!.nodeKey);
      assert.equal(p.path, 'direct');
      assert.equal(p.endpoint, `${hosts[name]!.ip}:${(await st(name)).interface.listenPort}`);
      assert.equal(p.relay, null, 'no relay map on this coordinator');
      assert.ok(typeof p.latencyMs === 'number' && p.latencyMs >= 0 && p.latencyMs < 1000, `disco measured the direct path: ${p.latencyMs}`);
      assert.ok(p.rxBytes > 0 && p.txBytes > 0, `${name} carried traffic`);
      assert.ok(p.lastHandshake && Date.now() - Date.parse(p.lastHandshake) < 120_000);
      assert.equal(p.online, true);
    }
    for (const [k, v] of Object.entries(s.drops)) assert.equal(typeof v, 'number', k);
    // No policy, no routes served: the pings on direct paths ran in the native data path.
    assert.equal(s.dataPath.native, true);
    assert.ok(s.dataPath.nativeTx > 0 && s.dataPath.nativeRx > 0, `native data path used: ${JSON.stringify(s.dataPath)}`);
    assert.equal(s.control!.malformed, 0);
    assert.deepEqual(s.control!.endpoints, [`${hosts.alpha!.ip}:${s.interface.listenPort}`]);

    // The human form says the same in words.
    const text = (await agents.alpha!.cli(['status'])).stdout;
    assert.match(text, new RegExp(`^node: alpha \\(${s.self.ipv4!.replace(/\./g, '\\.')}, `, 'm'));
    assert.match(text, /coordinator: .* \(connected\)/);
    assert.match(text, /^peer: beta \(/m);

    // The TUN carries the addresses and the overlay routes.
    const addr = await hosts.alpha!.run(['ip', 'addr', 'show', 'dev', `cp${id}a`]);
    assert.match(addr, new RegExp(`inet ${s.self.ipv4!.replace(/\./g, '\\.')}/32`));
    assert.match(addr, new RegExp(`inet6 ${s.self.ipv6}/128`));
    const routes = await hosts.alpha!.run(['ip', 'route', 'show', 'dev', `cp${id}a`]);
    assert.match(routes, /^100\.64\.0\.0\/10 /m);
    const routes6 = await hosts.alpha!.run(['ip', '-6', 'route', 'show', 'dev', `cp${id}a`]);
    assert.match(routes6, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/48 /m);
  });

  test('`pinhole ip` prints the overlay addresses; -4 and -6 one each', async () => {
    const s = (await st('alpha')).self!;
    const both = await agents.alpha!.cli(['ip']);
    assert.equal(both.code, 0, both.stderr);
    assert.equal(both.stdout, `${s.ipv4}\n${s.ipv6}\n`);
    assert.equal((await agents.alpha!.cli(['ip', '-4'])).stdout, `${s.ipv4}\n`);
    assert.equal((await agents.alpha!.cli(['ip', '-6'])).stdout, `${s.ipv6}\n`);
  });

  test('the coordinator killed with -9: pings keep flowing, a restarted agent comes back from its last netmap', async () => {
    const ipBeta = await selfIp('beta');
    const pinger = hosts.alpha!.spawn(['ping', '-n', '-i', '0.2', '-c', '25', '-W', '1', ipBeta]);
    await new Promise((r) => setTimeout(r, 1000));
    await coord.kill9();
    const done = await pinger.wait(30_000);
    assert.equal(done.code, 0, pinger.output);
    assert.match(pinger.stdout, /25 packets transmitted, 25 received/);
    for (const name of ['alpha', 'beta', 'gamma']) {
      await waitFor(`${name} to notice the coordinator is gone`, async () => !(await st(name)).self!.connected, 60_000);
    }

    // An agent restarted while the coordinator is away: same identity, tunnel up from disk at once.
    const before = (await st('alpha')).self!;
    await agents.alpha!.restart();
    const after = (await st('alpha')).self!;
    assert.equal(after.nodeKey, before.nodeKey);
    assert.equal(after.ipv4, before.ipv4);
    assert.equal(after.ipv6, before.ipv6);
    assert.equal(after.state, 'up');
    assert.equal(after.connected, false);
    assert.equal((await st('alpha')).peers.length, 2, 'peers from the last netmap');
    await pingsBothWays('alpha', 'beta');
    await pingsBothWays('alpha', 'gamma');

    // down and up again, still without a coordinator: the registration and netmap on file suffice.
    assert.equal((await agents.alpha!.cli(['down'])).code, 0);
    const up = await agents.alpha!.cli(['up']);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /^the coordinator is unreachable: using the registration on file$/m);
    assert.match(up.stdout, new RegExp(`^address assigned ${before.ipv4!.replace(/\./g, '\\.')} `, 'm'));
    assert.match(up.stdout, /^2 peers$/m);
    assert.match(up.stdout, /from the last netmap; the coordinator has not answered yet/);
    await pingsBothWays('alpha', 'beta');
  });

  test('after the coordinator restarts the agents resync, state is intact, and a 4th node becomes reachable', async () => {
    const before = await Promise.all(['alpha', 'beta', 'gamma'].map(async (n) => (await st(n)).self!));
    await coord.start();
    for (const name of ['alpha', 'beta', 'gamma']) {
      await waitFor(`${name} to reconnect`, async () => (await st(name)).self!.connected, 60_000);
    }
    const nodes = await coord.nodes();
    for (const s of before) {
      const n = nodes.find((x) => x.nodeKey === s.nodeKey);
      assert.ok(n, `${s.name} still registered`);
      assert.equal(n.ipv4, s.ipv4);
      assert.equal(n.ipv6, s.ipv6);
      assert.equal(n.name, s.name);
    }

    // The 4th node asks for no name: it gets this machine's hostname, sanitized (suffixed if taken).
    const d = await agent('delta');
    const r = await d.cli(['up', '--coordinator', coord.url, '--auth-key', reusableKey]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^3 peers$/m);
    const dSelf = (await st('delta')).self!;
    assert.ok(dSelf.name!.startsWith(sanitizeHostname(hostname())), dSelf.name!);
    for (const name of ['alpha', 'beta', 'gamma']) {
      await waitFor(`${name} to learn about the 4th node`, async () => (await st(name)).peers.some((p) => p.publicKey === dSelf.nodeKey));
      await pingsBothWays('delta', name);
    }
  });

  test('an agent killed with -9 and restarted keeps its node key and IP and reconnects', async () => {
    const before = (await st('beta')).self!;
    await agents.beta!.restart({ hard: true });
    const after = await waitFor('beta to reconnect', async () => {
      const s = (await st('beta')).self!;
      return s.connected ? s : undefined;
    });
    assert.equal(after.nodeKey, before.nodeKey);
    assert.equal(after.ipv4, before.ipv4);
    assert.equal(after.id, before.id);
    await pingsBothWays('beta', 'gamma');
  });

  test('a single-use key works once; the second `up` with it is refused in one line and changes nothing', async () => {
    const key = await coord.createAuthKey({ reusable: false });
    const first = await agent('epsilon');
    const ok = await first.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', 'epsilon']);
    assert.equal(ok.code, 0, ok.stderr);

    const second = await agent('zeta');
    const nodesBefore = await coord.nodes();
    const refused = await second.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', 'zeta']);
    assert.notEqual(refused.code, 0);
    assert.ok(oneLine(refused.stderr), refused.stderr);
    assert.match(refused.stderr, /^pinhole: the coordinator refused: .+/);
    const s = await st('zeta');
    assert.equal(s.self!.state, 'logged-out');
    assert.equal(await exists(join(second.stateDir, 'registration.json')), false);
    assert.equal((await hosts.zeta!.exec(['ip', 'link', 'show', `cp${id}z`])).code !== 0, true, 'no TUN');
    assert.equal((await coord.nodes()).length, nodesBefore.length);
  });

  test('`up` with a bad key is refused in one line, exit non-zero, and nothing changes', async () => {
    const z = agents.zeta!;
    const keyBefore = (await st('zeta')).self!.nodeKey;
    const nodesBefore = await coord.nodes();
    const r = await z.cli(['up', '--coordinator', coord.url, '--auth-key', 'pinhole-auth-not-a-real-key', '--hostname', 'zeta']);
    assert.notEqual(r.code, 0);
    assert.ok(oneLine(r.stderr), r.stderr);
    assert.match(r.stderr, /^pinhole: malformed auth key \(expected phk_/, 'refused before anything is sent');
    // A well-formed key naming this coordinator, with a secret it never issued: the coordinator refuses.
    const forged = `${reusableKey.split('_').slice(0, 2).join('_')}_${'0'.repeat(64)}_${coord.fingerprint}`;
    const r1 = await z.cli(['up', '--coordinator', coord.url, '--auth-key', forged, '--hostname', 'zeta']);
    assert.notEqual(r1.code, 0);
    assert.ok(oneLine(r1.stderr), r1.stderr);
    assert.match(r1.stderr, /^pinhole: the coordinator refused: unknown auth key\n$/);
    const s = await st('zeta');
    assert.equal(s.self!.state, 'logged-out');
    assert.equal(s.self!.nodeKey, keyBefore);
    assert.equal(await exists(join(z.stateDir, 'registration.json')), false);
    assert.deepEqual((await coord.nodes()).map((n) => n.id), nodesBefore.map((n) => n.id));
    // Flags the CLI can judge itself are refused before anything is sent.
    const badName = await z.cli(['up', '--coordinator', coord.url, '--auth-key', reusableKey, '--hostname', 'bad_name']);
    assert.notEqual(badName.code, 0);
    assert.equal(badName.stdout, '');
    assert.match(badName.stderr, /^pinhole: --hostname: .+\n$/);
    const badUrl = await z.cli(['up', '--coordinator', 'ftp://203.0.113.10', '--auth-key', reusableKey]);
    assert.notEqual(badUrl.code, 0);
    assert.match(badUrl.stderr, /^pinhole: --coordinator: .+\n$/);
    assert.equal((await st('zeta')).self!.state, 'logged-out');
    // A registered node offered a bad key is not disturbed either.
    const alphaBefore = (await st('alpha')).self!;
    const r2 = await agents.alpha!.cli(['up', '--auth-key', 'pinhole-auth-not-a-real-key']);
    assert.notEqual(r2.code, 0);
    assert.ok(oneLine(r2.stderr), r2.stderr);
    const alphaAfter = (await st('alpha')).self!;
    assert.deepEqual({ ...alphaAfter, netmapSeq: null }, { ...alphaBefore, netmapSeq: null });
    await pingsBothWays('alpha', 'beta');
  });

  test('an ephemeral node disappears from the others\' netmaps after going offline', async () => {
    const key = await coord.createAuthKey({ ephemeral: true, reusable: false });
    const e = await agent('eta');
    const r = await e.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', 'eta']);
    assert.equal(r.code, 0, r.stderr);
    const etaKey = (await st('eta')).self!.nodeKey;
    await waitFor('alpha to see eta', async () => peerNamed(await st('alpha'), 'eta'));
    await pingsBothWays('alpha', 'eta');
    await e.stop();
    delete agents.eta;
    for (const name of ['alpha', 'beta']) {
      await waitFor(`eta to leave ${name}'s netmap`, async () => !(await st(name)).peers.some((p) => p.publicKey === etaKey), 30_000);
    }
    assert.equal((await coord.nodes()).some((n) => n.nodeKey === etaKey), false);
  });

  test('`down` removes the tunnel but keeps the registration; `up` without a key brings it back', async () => {
    const g = agents.gamma!;
    const before = (await st('gamma')).self!;
    const r = await g.cli(['down']);
    assert.equal(r.code, 0, r.stderr);
    const s = await st('gamma');
    assert.equal(s.self!.state, 'down');
    assert.equal(s.self!.ipv4, before.ipv4);
    assert.notEqual((await hosts.gamma!.exec(['ip', 'link', 'show', `cp${id}g`])).code, 0, 'TUN removed');
    assert.equal((await ping(hosts.alpha!, before.ipv4!, 1, 1)).ok, false, 'gamma unreachable while down');
    await waitFor('alpha to see gamma offline', async () => peerNamed(await st('alpha'), 'gamma')?.online === false);
    // A node that is down stays down across a daemon restart.
    await g.restart();
    assert.equal((await st('gamma')).self!.state, 'down');
    assert.notEqual((await hosts.gamma!.exec(['ip', 'link', 'show', `cp${id}g`])).code, 0, 'no TUN after the restart either');

    const up = await g.cli(['up']);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, new RegExp(`^address assigned ${before.ipv4!.replace(/\./g, '\\.')} `, 'm'));
    const again = (await st('gamma')).self!;
    assert.equal(again.state, 'up');
    assert.equal(again.connected, true);
    assert.equal(again.nodeKey, before.nodeKey);
    await pingsBothWays('alpha', 'gamma');
  });

  let logout: { out: string; err: string; nodeKey: string } | undefined;

  test('`logout` forgets the node locally: a new node key, no registration, no netmap, no TUN', async () => {
    const g = agents.gamma!;
    const before = (await st('gamma')).self!;
    const r = await g.cli(['logout']);
    assert.equal(r.code, 0, r.stderr);
    logout = { out: r.stdout, err: r.stderr, nodeKey: before.nodeKey };
    assert.match(r.stdout, /^logged out/m);
    const s = (await st('gamma')).self!;
    assert.equal(s.state, 'logged-out');
    assert.notEqual(s.nodeKey, before.nodeKey, 'a new identity');
    assert.equal(s.ipv4, null);
    assert.equal(await exists(join(g.stateDir, 'registration.json')), false);
    assert.equal(await exists(join(g.stateDir, 'netmap.json')), false);
    assert.notEqual((await hosts.gamma!.exec(['ip', 'link', 'show', `cp${id}g`])).code, 0, 'TUN removed');
    const ip = await g.cli(['ip']);
    assert.notEqual(ip.code, 0);
    assert.match(ip.stderr, /^pinhole: this node is not registered/);
  });

  test('`logout` deregisters with the coordinator: the node leaves the others\' netmaps', async () => {
    assert.ok(logout, 'logout ran');
    assert.equal(logout.err, '', 'no warning: the coordinator was told');
    assert.match(logout.out, /^logged out: the coordinator deleted this node/m);
    for (const name of ['alpha', 'beta']) {
      await waitFor(`gamma to leave ${name}'s netmap`, async () => !(await st(name)).peers.some((p) => p.publicKey === logout!.nodeKey));
    }
    assert.equal((await coord.nodes()).some((n) => n.nodeKey === logout!.nodeKey), false);
  });
});
