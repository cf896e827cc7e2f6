// The Debian package as a user meets it: `bash scripts/package.sh` builds it, its contents and
// control fields are what the units and the program need, its units pass `systemd-analyze verify`,
// a real `dpkg -i` installs it, and the INSTALLED /usr/bin/pinhole runs a coordinator and two
// agents in lab namespaces (each under the user and capability set its unit gives it: setpriv
// stands in for systemd, which does not run here) that join a mesh and ping across it. Finally
// `dpkg --purge` leaves nothing behind.
//
// It installs the package on this machine for real, so it refuses to run when a package named
// pinhole is already installed, and purges what it installed on every exit path.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, lstat, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, type Host, type Lab, type LabProcess } from '../../scripts/natlab/index.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';
import { localApiCall } from '../../agent/localapi/client.js';
import { AuthKeyCreated } from '../../proto/control/schemas.js';
import type { AgentStatus } from '../../agent/static/status.js';
import { ping } from '../helpers/transfer.js';

const UNITS = ['pinhole-agent.service', 'pinhole-coordinator.service', 'pinhole-relay.service'];
const UNIT_DIR = '/lib/systemd/system';
const CONFFILES = ['/etc/pinhole/agent.env', '/etc/pinhole/coordinator.env', '/etc/pinhole/relay.env'];
const INSTALLED_BIN = '/usr/bin/pinhole';
const NOBODY = 65534;

interface Run { code: number; stdout: string; stderr: string }

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: REPO_ROOT, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(cmd: string, args: string[], timeoutMs?: number): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return r.stdout;
}

const installedVersion = async (): Promise<string | null> => {
  const r = await run('dpkg-query', ['-W', '-f', '${Status} ${Version}', 'pinhole']);
  return r.code === 0 && r.stdout.startsWith('install ok installed') ? r.stdout.split(' ').pop()! : null;
};

/** A unit's `Key=` values, one entry per line that sets it. */
function unitValues(text: string, key: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${key}=`)).map((l) => l.slice(key.length + 1).trim());
}

/** setpriv flags for a unit's capability set: "CAP_NET_ADMIN CAP_NET_RAW" -> "-all,+net_admin,+net_raw". */
function capsFlag(caps: string): string {
  const names = caps.split(/\s+/).filter(Boolean).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`);
  return ['-all', ...names].join(',');
}

describe('Debian package: build, contents, units, dpkg -i, the installed binary in the lab, purge', { timeout: 300_000 }, () => {
  const id = runId();
  let work: string;
  let deb: string;
  let weInstalled = false;
  let lab: Lab | undefined;
  const procs: LabProcess[] = [];
  const netnsDirs: string[] = [];
  const hosts: Record<string, Host> = {};
  const units: Record<string, string> = {};

  before(async () => {
    const existing = await installedVersion();
    if (existing !== null) throw new Error(`a pinhole package (${existing}) is already installed here; this test installs and purges its own: dpkg --purge pinhole first`);
    work = await mkdtemp(join(tmpdir(), 'pinhole-pkg-'));
    await chmod(work, 0o711); // the coordinator runs as nobody and needs to reach its directory inside
    const built = await run('bash', ['scripts/package.sh', '--no-build', '--out', work], 240_000);
    assert.equal(built.code, 0, `package.sh failed:\n${built.stderr}`);
    deb = built.stdout.trim().split('\n').pop()!;
    weInstalled = true; // from here on, after() purges whatever dpkg managed to install
    await must('dpkg', ['-i', deb], 120_000);
    for (const u of UNITS) units[u] = await readFile(join(UNIT_DIR, u), 'utf8');
  });

  after(async () => {
    for (const p of procs) if (p.running) await p.kill('SIGTERM', 3000).catch(() => undefined);
    await lab?.destroy();
    for (const dir of netnsDirs) await rm(dir, { recursive: true, force: true });
    if (weInstalled && (await installedVersion()) !== null) await run('dpkg', ['--purge', 'pinhole'], 120_000);
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('package.sh prints pinhole_VERSION_ARCH.deb; control fields, conffiles and file list are right', async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const arch = (await must('dpkg', ['--print-architecture'])).trim();
    assert.equal(deb, join(work, `pinhole_${pkg.version}_${arch}.deb`));

    const field = async (f: string): Promise<string> => (await must('dpkg-deb', ['-f', deb, f])).trim();
    assert.equal(await field('Package'), 'pinhole');
    assert.equal(await field('Version'), pkg.version);
    assert.equal(await field('Architecture'), arch);
    const depends = (await field('Depends')).split(/,\s*/);
    assert.ok(depends.includes('nodejs (>= 20)'), depends.join(', '));
    assert.ok(depends.includes('iproute2'), 'the agent runs ip');
    assert.ok(depends.some((d) => /^libsodium23 \(>= [\d.]+\)$/.test(d)), `the addon links libsodium: ${depends.join(', ')}`);
    assert.ok(depends.some((d) => /^libc6 \(>= [\d.]+\)$/.test(d)), depends.join(', '));

    const conffiles = await must('dpkg-deb', ['--info', deb, 'conffiles']);
    assert.deepEqual(conffiles.trim().split('\n').sort(), [...CONFFILES].sort());

    // `dpkg-deb -c`: "MODE OWNER/GROUP SIZE DATE TIME PATH [-> TARGET]"
    const listing = (await must('dpkg-deb', ['-c', deb])).trim().split('\n').map((l) => {
      const f = l.split(/\s+/);
      return { mode: f[0]!, owner: f[1]!, path: f[5]!.replace(/^\./, ''), target: f[7] };
    });
    const paths = new Set(listing.map((e) => e.path));
    for (const p of ['/usr/lib/pinhole/bin/pinhole', '/usr/lib/pinhole/package.json', '/usr/lib/pinhole/dist/agent/cli/main.js',
      '/usr/lib/pinhole/dist/coordinator/main.js', '/usr/lib/pinhole/dist/relay/main.js',
      '/usr/lib/pinhole/agent/tun/build/Release/pinhole_native.node', '/usr/lib/pinhole/node_modules/sodium-native/package.json',
      '/usr/lib/pinhole/node_modules/sqlite3/build/Release/node_sqlite3.node', '/usr/lib/pinhole/node_modules/ws/package.json',
      ...UNITS.map((u) => `${UNIT_DIR}/${u}`), ...CONFFILES]) {
      assert.ok(paths.has(p), `${p} is in the package`);
    }
    const bin = listing.find((e) => e.path === INSTALLED_BIN);
    assert.ok(bin && bin.mode.startsWith('l') && bin.target === '../lib/pinhole/bin/pinhole', `/usr/bin/pinhole links to the installed entry: ${JSON.stringify(bin)}`);
    // Only what runs: no object files, no tests or scripts, no devDependencies, no other platforms' builds.
    for (const { path } of listing) {
      assert.ok(!/\.(o|a)$/.test(path), `no object files: ${path}`);
      assert.ok(!/^\/usr\/lib\/pinhole\/dist\/.*\.map$/.test(path), `no source maps of ours: ${path}`);
      assert.ok(!/\/obj(\.target)?\//.test(path), `no compiler output: ${path}`);
      assert.ok(!path.startsWith('/usr/lib/pinhole/dist/test/') && !path.startsWith('/usr/lib/pinhole/dist/scripts/'), `no tests or lab scripts: ${path}`);
      assert.ok(!/\/node_modules\/(typescript|fast-check|@types)\//.test(path), `no devDependencies: ${path}`);
      assert.ok(!/\/prebuilds\/(?!linux-)[^/]+/.test(path), `no other platforms' prebuilds: ${path}`);
    }
    for (const e of listing) {
      assert.equal(e.owner, 'root/root', `${e.path} owned by root`);
      if (e.mode.startsWith('l')) continue;
      assert.ok(['drwxr-xr-x', '-rw-r--r--', '-rwxr-xr-x'].includes(e.mode), `${e.path}: mode ${e.mode}`);
    }
  });

  test('the units pass systemd-analyze verify; hardening fits each service', async () => {
    const v = await run('systemd-analyze', ['verify', ...UNITS.map((u) => join(UNIT_DIR, u))]);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stderr.trim(), '', 'no warnings (an unknown key is only a warning)');

    const agent = units['pinhole-agent.service']!;
    assert.deepEqual(unitValues(agent, 'ExecStart'), [`${INSTALLED_BIN} --socket /run/pinhole/pinhole.sock agent --state-dir /var/lib/pinhole $PINHOLE_AGENT_ARGS`]);
    assert.deepEqual(unitValues(agent, 'EnvironmentFile'), ['-/etc/pinhole/agent.env']);
    assert.deepEqual(unitValues(agent, 'StateDirectory'), ['pinhole']);
    assert.deepEqual(unitValues(agent, 'RuntimeDirectory'), ['pinhole']);
    assert.deepEqual(unitValues(agent, 'DeviceAllow'), ['/dev/net/tun rw']);
    assert.deepEqual(unitValues(agent, 'CapabilityBoundingSet'), ['CAP_NET_ADMIN CAP_NET_RAW CAP_CHOWN CAP_NET_BIND_SERVICE']);
    assert.deepEqual(unitValues(agent, 'ReadWritePaths'), ['-/etc/resolv.conf'], 'MagicDNS may rewrite resolv.conf, nothing else under /etc');
    assert.deepEqual(unitValues(agent, 'User'), [], 'the agent runs as root (with only its capabilities)');
    for (const name of ['pinhole-coordinator.service', 'pinhole-relay.service']) {
      const u = units[name]!;
      assert.deepEqual(unitValues(u, 'DynamicUser'), ['yes'], `${name} runs without root`);
      assert.deepEqual(unitValues(u, 'ProtectSystem'), ['strict'], name);
      assert.equal(unitValues(u, 'StateDirectory').length, 1, name);
    }
    assert.deepEqual(unitValues(units['pinhole-coordinator.service']!, 'CapabilityBoundingSet'), ['']);
    assert.deepEqual(unitValues(units['pinhole-relay.service']!, 'CapabilityBoundingSet'), ['CAP_NET_BIND_SERVICE']);
    assert.deepEqual(unitValues(units['pinhole-relay.service']!, 'AmbientCapabilities'), ['CAP_NET_BIND_SERVICE']);
    for (const u of UNITS) assert.deepEqual(unitValues(units[u]!, 'SystemCallFilter'), ['@system-service'], u);

    // systemd's own exposure score (0 = locked down, 10 = unprotected), read offline.
    const sec = await run('systemd-analyze', ['security', '--offline=true', '--no-pager', ...UNITS.map((u) => join(UNIT_DIR, u))]);
    const score = (u: string): number => Number(new RegExp(`exposure level for ${u.replace('.', '\\.')}: ([\\d.]+)`).exec(sec.stdout + sec.stderr)?.[1]);
    assert.ok(score('pinhole-agent.service') <= 3.5, `agent exposure ${score('pinhole-agent.service')}`);
    assert.ok(score('pinhole-coordinator.service') <= 2.5, `coordinator exposure ${score('pinhole-coordinator.service')}`);
    assert.ok(score('pinhole-relay.service') <= 2.5, `relay exposure ${score('pinhole-relay.service')}`);
  });

  test('dpkg -i installed every file root-owned 0644/0755, the flag files and a 0600 admin token', async () => {
    assert.equal(await installedVersion(), JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')).version);
    const files = (await must('dpkg', ['-L', 'pinhole'])).trim().split('\n').filter((p) => p.includes('pinhole'));
    assert.ok(files.length > 100, `dpkg -L lists the tree (${files.length})`);
    for (const p of files) {
      const st = await lstat(p);
      assert.equal(st.uid, 0, `${p} uid`);
      assert.equal(st.gid, 0, `${p} gid`);
      if (st.isSymbolicLink()) continue;
      const mode = st.mode & 0o7777;
      assert.ok(st.isDirectory() ? mode === 0o755 : mode === 0o644 || mode === 0o755, `${p}: ${mode.toString(8)}`);
    }
    const token = await lstat('/etc/pinhole/admin.token');
    assert.equal(token.mode & 0o777, 0o600);
    assert.match((await readFile('/etc/pinhole/admin.token', 'utf8')).trim(), /^\S{40,}$/);
    const version = await run(INSTALLED_BIN, ['--help']);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout, /peer-to-peer mesh VPN/);
  });

  test('the installed binary: relay and coordinator as nobody, two agents with the unit\'s capabilities, join and ping', async () => {
    lab = await createLab({ name: 'pkg' });
    for (const n of ['coord', 'alpha', 'beta']) hosts[n] = await lab.addPublicHost(n);

    const nobodyDir = async (name: string): Promise<string> => {
      const dir = join(work, name);
      await must('install', ['-d', '-m', '0700', '-o', String(NOBODY), '-g', String(NOBODY), dir]);
      return dir;
    };
    const asNobody = (unit: string): string[] => {
      const caps = unitValues(units[unit]!, 'CapabilityBoundingSet')[0]!;
      const ambient = unitValues(units[unit]!, 'AmbientCapabilities')[0] ?? '';
      return ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--no-new-privs',
        `--bounding-set=${capsFlag(caps)}`, `--inh-caps=${capsFlag(ambient)}`, `--ambient-caps=${capsFlag(ambient)}`];
    };
    const uidOf = async (pid: number): Promise<string> => (await run('grep', ['^Uid:', `/proc/${pid}/status`])).stdout;
    const ip = hosts.coord!.ip;

    // The relay as its unit runs it: an unprivileged user whose only capability binds port 443.
    // With the coordinator's (empty) set the same command cannot bind 443: the emulation restricts.
    const relayDir = await nobodyDir('relay');
    const relayArgs = [INSTALLED_BIN, 'relay', '--listen', `${ip}:443`, '--stun', `${ip}:3478`, '--open', '--key-file', join(relayDir, 'relay.key')];
    const refused = await hosts.coord!.exec([...asNobody('pinhole-coordinator.service'), ...relayArgs], { timeoutMs: 20_000 });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /cannot listen on .*:443: permission denied/);
    const relay = hosts.coord!.spawn([...asNobody('pinhole-relay.service'), ...relayArgs], { logFile: join(work, 'relay.log') });
    procs.push(relay);
    const relayKey = (await relay.waitForOutput(/pinhole relay key (\S+)/, 30_000))[1]!;
    assert.match(await uidOf(relay.pid), new RegExp(`^Uid:\\s+${NOBODY}\\s`));

    // The coordinator as its unit runs it: an unprivileged user, no capabilities, the admin token
    // as a private copy (systemd's LoadCredential), the database in its own state directory.
    const coordDir = await nobodyDir('coordinator');
    const tokenCopy = join(coordDir, 'admin.token');
    await writeFile(tokenCopy, await readFile('/etc/pinhole/admin.token'));
    await chown(tokenCopy, NOBODY, NOBODY);
    await chmod(tokenCopy, 0o400);
    const url = `http://${ip}:8080`;
    const coord = hosts.coord!.spawn([...asNobody('pinhole-coordinator.service'), INSTALLED_BIN, 'coordinator',
      '--listen', `${ip}:8080`, '--db', join(coordDir, 'coordinator.db'), '--admin-token-file', tokenCopy,
      '--relay', `lab=ws://${ip}:443/relay`, '--relay-key', `lab=${relayKey}`, '--relay-stun', `lab=${ip}:3478`],
    { logFile: join(work, 'coordinator.log') });
    procs.push(coord);
    const fp = (await coord.waitForOutput(/pinhole coordinator key ([0-9a-f]{32})/, 30_000))[1]!;
    assert.match(await uidOf(coord.pid), new RegExp(`^Uid:\\s+${NOBODY}\\s`), 'the coordinator runs as nobody');

    // An auth key through the installed admin CLI, with the token the package made.
    const created = await hosts.coord!.exec([INSTALLED_BIN, 'admin', '--coordinator', url, '--coordinator-key', fp,
      '--token-file', '/etc/pinhole/admin.token', 'authkey', 'create', '--reusable', '--json']);
    assert.equal(created.code, 0, created.stderr);
    const key = AuthKeyCreated.parse(JSON.parse(created.stdout)).key;

    // Agents as their unit runs them: root, but only the unit's bounding set of capabilities. Each
    // namespace gets its own resolv.conf (ip netns exec mounts /etc/netns/NS/resolv.conf over
    // /etc/resolv.conf), so MagicDNS rewrites that one, as it would the host's.
    const hostResolvConf = '# the lab host\'s own resolver\nnameserver 192.0.2.53\n';
    for (const n of ['alpha', 'beta']) {
      const dir = join('/etc/netns', hosts[n]!.ns);
      netnsDirs.push(dir);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'resolv.conf'), hostResolvConf);
    }
    const agentCaps = capsFlag(unitValues(units['pinhole-agent.service']!, 'CapabilityBoundingSet')[0]!);
    const sockets: Record<string, string> = {};
    for (const [i, n] of ['alpha', 'beta'].entries()) {
      const dir = join(work, n);
      sockets[n] = join(dir, 'run', 'pinhole.sock');
      const agent = hosts[n]!.spawn(['setpriv', '--no-new-privs', `--bounding-set=${agentCaps}`, '--inh-caps=-all',
        INSTALLED_BIN, '--socket', sockets[n]!, 'agent', '--state-dir', join(dir, 'state'), '--tun', `pk${id}${i}`],
      { logFile: join(work, `${n}.log`) });
      procs.push(agent);
      await waitFor(`${n}'s local API`, async () => localApiCall<AgentStatus>(sockets[n]!, 'GET', '/v0/status').then(() => true, () => {
        if (!agent.running) throw new Error(`agent ${n} exited: ${agent.output.slice(-400)}`);
        return false;
      }), 20_000);
      const capEff = (await run('grep', ['^CapBnd:', `/proc/${agent.pid}/status`])).stdout;
      assert.match(capEff, /^CapBnd:\s+0000000000003401$/m, `bounding set is NET_ADMIN|NET_RAW|CHOWN|NET_BIND_SERVICE: ${capEff}`);
      const up = await hosts[n]!.exec([INSTALLED_BIN, '--socket', sockets[n]!, 'up', '--coordinator', url, '--auth-key', key, '--hostname', n], { timeoutMs: 30_000 });
      assert.equal(up.code, 0, `${n} up: ${up.stderr}`);
      assert.match(up.stdout, /^address assigned 100\./m);
    }
    const ipOf = async (n: string): Promise<string> => (await localApiCall<AgentStatus>(sockets[n]!, 'GET', '/v0/status')).self!.ipv4!;
    await waitFor('alpha to see beta', async () => (await localApiCall<AgentStatus>(sockets.alpha!, 'GET', '/v0/status')).peers.length === 1, 30_000);
    const there = await ping(hosts.alpha!, await ipOf('beta'), 3, 5);
    assert.ok(there.ok, there.output);
    const back = await ping(hosts.beta!, await ipOf('alpha'), 3, 5);
    assert.ok(back.ok, back.output);
    // MagicDNS of the installed agent: port 53 under the unit's capabilities, the OS resolver pointed at it.
    const dig = await hosts.alpha!.exec(['dig', '+short', '+time=2', '+tries=2', '@100.100.100.100', 'beta.pinhole.internal', 'A']);
    assert.equal(dig.code, 0, dig.stderr);
    assert.equal(dig.stdout.trim(), await ipOf('beta'));
    const rewritten = await readFile(join('/etc/netns', hosts.alpha!.ns, 'resolv.conf'), 'utf8');
    assert.match(rewritten, /^nameserver 100\.100\.100\.100$/m);
    // Both agents reached the relay the coordinator announced.
    for (const n of ['alpha', 'beta']) {
      await waitFor(`${n} connected to the relay`, async () =>
        (await localApiCall<AgentStatus>(sockets[n]!, 'GET', '/v0/status')).relays?.some((r) => r.name === 'lab' && r.connected && r.refused === null), 20_000);
    }
  });

  test('dpkg --purge removes every file, the flag files, the token and the enablement', async () => {
    for (const p of procs) if (p.running) await p.kill('SIGTERM', 3000);
    const files = (await must('dpkg', ['-L', 'pinhole'])).trim().split('\n').filter((p) => p.includes('pinhole'));
    await must('systemctl', ['enable', 'pinhole-agent.service']);
    assert.ok(existsSync('/etc/systemd/system/multi-user.target.wants/pinhole-agent.service'));
    await must('dpkg', ['--purge', 'pinhole'], 120_000);
    assert.equal(await installedVersion(), null);
    for (const p of files) assert.ok(!existsSync(p), `${p} removed`);
    assert.ok(!existsSync('/etc/pinhole'), '/etc/pinhole removed on purge');
    assert.ok(!existsSync('/etc/systemd/system/multi-user.target.wants/pinhole-agent.service'), 'the enablement symlink removed');
  });
});
