// Names in DNS (MagicDNS) with real `dig` in lab namespaces: two managed agents (a points its
// resolv.conf at MagicDNS, b runs with --accept-dns=false), a coordinator with a split-DNS route,
// and two tiny upstream resolvers on documentation addresses. Each agent namespace has its own
// resolv.conf under /etc/netns/NS/ (ip netns exec mounts it over /etc/resolv.conf).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, type Lab, type LabProcess, type PublicHost } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';

const UPSTREAM = join(REPO_ROOT, 'dist', 'test', 'helpers', 'upstream-dns.js');
const DOMAIN = 'pinhole.internal';
const MAGIC = '100.100.100.100';

describe('MagicDNS: names of peers in DNS, answered by the agent on 100.100.100.100', { timeout: 180_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let up: PublicHost;
  let a: ManagedAgent;
  let b: ManagedAgent;
  const ha = `dnsa${id}`.slice(0, 20);
  const hb = `dnsb${id}`.slice(0, 20);
  const netnsDirs: string[] = [];
  const upstreams: LabProcess[] = [];
  let originalA = '';
  let originalB = '';
  let bAddr = { ipv4: '', ipv6: '' };

  const resolvConfOf = (agent: ManagedAgent): string => join('/etc/netns', agent.host.ns, 'resolv.conf');
  const dig = async (agent: ManagedAgent, args: string[]): Promise<string> => {
    const r = await agent.host.exec(['dig', '+time=3', '+tries=1', ...args], { timeoutMs: 15_000 });
    return r.stdout;
  };
  const digShort = async (agent: ManagedAgent, args: string[]): Promise<string[]> =>
    (await dig(agent, ['+short', ...args])).trim().split('\n').filter((l) => l !== '');

  before(async () => {
    lab = await createLab({ name: 'magicdns' });
    const coordHost = await lab.addPublicHost('coord');
    up = await lab.addPublicHost('upstream');
    const hostA = await lab.addPublicHost('a');
    const hostB = await lab.addPublicHost('b');
    for (const [p, answer] of [['53', '198.51.100.53'], ['5353', '198.51.100.54']] as const) {
      const proc = up.spawn(['node', UPSTREAM, up.ip, p, answer]);
      await proc.waitForOutput(/upstream dns on/);
      upstreams.push(proc);
    }
    coord = await startCoordinator(coordHost, { extraArgs: ['--dns-route', `corp.example=${up.ip}:5353`] });
    originalA = `# the host's own resolvers (lab)\nnameserver ${up.ip}\nsearch lab.example\noptions edns0\n`;
    originalB = `nameserver ${up.ip}\n`;
    for (const [h, text] of [[hostA, originalA], [hostB, originalB]] as const) {
      const dir = join('/etc/netns', h.ns);
      await mkdir(dir, { recursive: true });
      netnsDirs.push(dir);
      await writeFile(join(dir, 'resolv.conf'), text);
    }
    // The default path: inside the namespace it is the file under /etc/netns/NS/.
    a = await startManagedAgent(hostA, { tun: `pda${id}`.slice(0, 15), resolvConf: '/etc/resolv.conf' });
    b = await startManagedAgent(hostB, { tun: `pdb${id}`.slice(0, 15), resolvConf: '/etc/resolv.conf' });
    const key = await coord.createAuthKey({ reusable: true });
    const ua = await a.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', ha]);
    assert.equal(ua.code, 0, ua.stderr);
    const ub = await b.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', hb, '--accept-dns=false']);
    assert.equal(ub.code, 0, ub.stderr);
    const sb = await b.status();
    bAddr = { ipv4: sb.self!.ipv4!, ipv6: sb.self!.ipv6! };
    const deadline = Date.now() + 15_000;
    while (!(await a.status()).peers.some((p) => p.overlayIp === bAddr.ipv4)) {
      if (Date.now() > deadline) throw new Error('a never saw b in its netmap');
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    await a?.stop().catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    for (const p of upstreams) await p.kill().catch(() => undefined);
    await lab?.destroy();
    for (const d of netnsDirs) await rm(d, { recursive: true, force: true });
  });

  it('answers A and AAAA for HOST.DOMAIN (a peer and the node itself)', async () => {
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, `${hb}.${DOMAIN}`, 'A']), [bAddr.ipv4]);
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, `${hb}.${DOMAIN}`, 'AAAA']), [bAddr.ipv6]);
    const self = (await a.status()).self!;
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, `${ha.toUpperCase()}.${DOMAIN}`, 'A']), [self.ipv4]);
    // Over TCP too.
    assert.deepEqual(await digShort(a, ['+tcp', `@${MAGIC}`, `${hb}.${DOMAIN}`, 'A']), [bAddr.ipv4]);
  });

  it('rewrites resolv.conf (nameserver 100.100.100.100, search DOMAIN) so HOST alone resolves', async () => {
    const text = await readFile(resolvConfOf(a), 'utf8');
    assert.match(text, /^nameserver 100\.100\.100\.100$/m);
    assert.match(text, new RegExp(`^search ${DOMAIN} lab\\.example$`, 'm'));
    assert.match(text, /^options edns0$/m);
    assert.deepEqual(await digShort(a, ['+search', hb]), [bAddr.ipv4]);
    assert.equal((await a.status()).dns?.os, 'resolv.conf');
  });

  it('answers reverse lookups (PTR) for overlay IPv4 and IPv6, NXDOMAIN for unknown names in the domain', async () => {
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, '-x', bAddr.ipv4]), [`${hb}.${DOMAIN}.`]);
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, '-x', bAddr.ipv6]), [`${hb}.${DOMAIN}.`]);
    assert.match(await dig(a, [`@${MAGIC}`, `nobody.${DOMAIN}`, 'A']), /status: NXDOMAIN/);
    assert.match(await dig(a, [`@${MAGIC}`, '-x', '100.127.1.2']), /status: NXDOMAIN/);
  });

  it('forwards other names to the host\'s original resolvers, and split-DNS suffixes to their resolver', async () => {
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, 'www.lab.example', 'A']), ['198.51.100.53']);
    assert.deepEqual(await digShort(a, ['www.lab.example', 'A']), ['198.51.100.53']); // through resolv.conf
    assert.match(await dig(a, [`@${MAGIC}`, 'nx.lab.example', 'A']), /status: NXDOMAIN/);
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, 'wiki.corp.example', 'A']), ['198.51.100.54']);
    assert.equal((await a.status()).dns?.upstreams.join(','), up.ip);
  });

  it('truncates a large answer over UDP (TC bit) and serves it whole over TCP', async () => {
    const udp = await dig(a, [`@${MAGIC}`, '+ignore', '+bufsize=1232', 'big.lab.example', 'TXT']);
    assert.match(udp, /flags: [a-z ]*\btc\b/);
    assert.match(udp, /ANSWER: 0/);
    const tcp = await dig(a, ['+tcp', `@${MAGIC}`, 'big.lab.example', 'TXT']);
    assert.match(tcp, /ANSWER: 1,/);
    assert.match(tcp, /MSG SIZE {2}rcvd: 3\d\d\d/);
    const fallback = await dig(a, [`@${MAGIC}`, '+bufsize=1232', 'big.lab.example', 'TXT']);
    assert.match(fallback, /Truncated, retrying in TCP mode/);
    assert.match(fallback, /ANSWER: 1,/);
  });

  it('drops malformed queries, counts them, and keeps answering', async () => {
    const before = (await a.status()).dns!.counters.malformed;
    const script = `const d=require('node:dgram');const s=d.createSocket('udp4');let n=0;const go=()=>{if(n===50){s.close();return;}` +
      `const b=require('node:crypto').randomBytes(4+(n*7)%300);if(n%5===0)b.writeUInt16BE(0x8180,2);n++;s.send(b,53,'${MAGIC}',go);};go();`;
    const r = await a.host.exec(['node', '-e', script]);
    assert.equal(r.code, 0, r.stderr);
    await new Promise((res) => setTimeout(res, 300));
    const after = (await a.status()).dns!.counters.malformed;
    assert.ok(after - before >= 45, `malformed counted: ${after - before} of 50`);
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, `${hb}.${DOMAIN}`, 'A']), [bAddr.ipv4]);
  });

  it('--accept-dns=false leaves resolv.conf alone (the server still answers on 100.100.100.100)', async () => {
    assert.equal(await readFile(resolvConfOf(b), 'utf8'), originalB);
    assert.equal((await b.status()).dns?.os, 'off');
    assert.deepEqual(await digShort(b, [`@${MAGIC}`, `${ha}.${DOMAIN}`, 'A']), [(await a.status()).self!.ipv4]);
  });

  it('restores resolv.conf on down, and after kill -9 on the next start', async () => {
    const down = await a.cli(['down']);
    assert.equal(down.code, 0, down.stderr);
    assert.equal(await readFile(resolvConfOf(a), 'utf8'), originalA);
    assert.equal((await a.cli(['up'])).code, 0);
    assert.match(await readFile(resolvConfOf(a), 'utf8'), /^nameserver 100\.100\.100\.100$/m);
    await a.restart({ hard: true });
    // The new daemon put the original back, then (the node being up) pointed it at MagicDNS again.
    assert.match(await readFile(join(a.dir, 'agent.log'), 'utf8'), /restored \S+ from the backup a previous run left/);
    assert.match(await readFile(resolvConfOf(a), 'utf8'), /^search pinhole\.internal lab\.example$/m);
    assert.equal((await a.cli(['down'])).code, 0);
    assert.equal(await readFile(resolvConfOf(a), 'utf8'), originalA);
    assert.equal((await a.cli(['up'])).code, 0);
  });

  it('keeps resolving names from the last netmap, and forwarding, with the coordinator stopped (also after a restart)', async () => {
    await coord.kill9();
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, `${hb}.${DOMAIN}`, 'A']), [bAddr.ipv4]);
    await a.restart();
    assert.deepEqual(await digShort(a, ['+search', hb]), [bAddr.ipv4]);
    assert.deepEqual(await digShort(a, ['www.lab.example']), ['198.51.100.53']);
    assert.deepEqual(await digShort(a, [`@${MAGIC}`, 'wiki.corp.example', 'A']), ['198.51.100.54']);
    // Latency figure for the README (not asserted: timing depends on the machine).
    const names = Array.from({ length: 100 }, () => `${hb}.${DOMAIN}`);
    const out = await dig(a, [`@${MAGIC}`, ...names]);
    const times = [...out.matchAll(/Query time: (\d+) msec/g)].map((m) => Number(m[1])).sort((x, y) => x - y);
    console.log(`MagicDNS: median dig query time over ${times.length} queries: ${times[Math.floor(times.length / 2)]} ms`);
  });

  it('gives the original resolv.conf back when the agent exits', async () => {
    await a.proc.kill('SIGTERM', 3000);
    assert.equal(await readFile(resolvConfOf(a), 'utf8'), originalA);
  });
});
