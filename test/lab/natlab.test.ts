// natlab self-test: every NAT behaviour classified by coturn's turnutils_natdiscovery, plus double
// NAT, a UDP-blocked site, port forwards, link impairment, mapping loss and a clean teardown.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createLab, discoverNat, formatSelftestTable, listNamespaces, startCoturn,
  type Host, type Lab, type NatBehaviour, type NatDiscovery, type PublicHost, type Site, type StunServer,
} from '../../scripts/natlab/index.js';

// What coturn must report for each behaviour (RFC 4787 terms).
const EXPECTED: Record<NatBehaviour, { mapping: string[]; filtering: string }> = {
  'none': { mapping: ['endpoint-independent'], filtering: 'endpoint-independent' },
  'full-cone': { mapping: ['endpoint-independent'], filtering: 'endpoint-independent' },
  'restricted-cone': { mapping: ['endpoint-independent'], filtering: 'address-dependent' },
  'port-restricted-cone': { mapping: ['endpoint-independent'], filtering: 'address-and-port-dependent' },
  'symmetric': { mapping: ['address-dependent', 'address-and-port-dependent'], filtering: 'address-and-port-dependent' },
};
const BEHAVIOURS = Object.keys(EXPECTED) as NatBehaviour[];

// A UDP+TCP echo server and a one-shot client, run with this very node binary inside namespaces.
const ECHO_SERVER = `
const [port] = process.argv.slice(1).map(Number);
const udp = require('node:dgram').createSocket('udp4');
udp.on('message', (m, r) => { console.log('udp ' + m + ' from ' + r.address + ':' + r.port); udp.send('echo:' + m, r.port, r.address); });
udp.bind(port, () => {
  require('node:net').createServer((s) => s.on('data', (d) => { console.log('tcp ' + d + ' from ' + s.remoteAddress); s.end('echo:' + d); }))
    .listen(port, '0.0.0.0', () => console.log('listening ' + port));
});`;
const ECHO_CLIENT = `
const [proto, host, port, msg] = process.argv.slice(1);
const fail = () => { console.log('no reply'); process.exit(1); };
setTimeout(fail, 1500);
if (proto === 'udp') {
  const s = require('node:dgram').createSocket('udp4');
  s.on('message', (m) => { console.log(String(m)); process.exit(0); });
  const send = () => s.send(msg, Number(port), host);
  send(); setInterval(send, 300);
} else {
  const c = require('node:net').connect(Number(port), host, () => c.write(msg));
  c.on('data', (d) => { console.log(String(d)); process.exit(0); });
  c.on('error', fail);
}`;

// A UDP socket on PORT that prints what it receives and sends each stdin line "IP PORT MSG".
const UDP_PEER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m, r) => console.log('recv ' + m + ' from ' + r.address + ':' + r.port));
s.bind(Number(process.argv[1]), () => console.log('bound ' + process.argv[1]));
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const [ip, port, msg] = l.split(' '); s.send(msg, Number(port), ip);
});`;

// A TCP sink that prints how many bytes each connection delivered, and a sender of N bytes.
const TCP_SINK = `
require('node:net').createServer((c) => { let n = 0; c.on('data', (d) => { n += d.length; }); c.on('end', () => { console.log('received ' + n + ' bytes'); c.end(); }); })
  .listen(Number(process.argv[1]), '0.0.0.0', () => console.log('listening ' + process.argv[1]));`;
const TCP_SEND = `
const [host, port, n] = process.argv.slice(1);
const c = require('node:net').connect(Number(port), host, () => c.end(Buffer.alloc(Number(n), 7)));
c.on('close', (err) => process.exit(err ? 1 : 0)); c.resume();`;

function echo(from: Host, proto: 'udp' | 'tcp', to: string, port: number, msg: string) {
  return from.exec([process.execPath, '-e', ECHO_CLIENT, proto, to, String(port), msg], { timeoutMs: 5000 });
}

/** Average RTT in ms of `count` pings, or null when none came back. */
async function pingRtt(from: Host, to: string, count = 4): Promise<number | null> {
  const r = await from.exec(['ping', '-n', '-c', String(count), '-i', '0.2', '-W', '1', to], { timeoutMs: 15_000 });
  const m = r.stdout.match(/= [\d.]+\/([\d.]+)\//);
  return m ? Number(m[1]) : null;
}

let lab: Lab;
let relay: PublicHost;
let stun: StunServer;

before(async () => {
  lab = await createLab({ name: 'selftest' });
  relay = await lab.addPublicHost('relay', { ips: 2 });
  stun = await startCoturn(relay);
});

after(() => lab.destroy());

describe('NAT behaviours as classified by coturn turnutils_natdiscovery', () => {
  const hosts = new Map<NatBehaviour, { site: Site; host: Host }>();
  const found = new Map<NatBehaviour, NatDiscovery>();

  before(async () => {
    for (const nat of BEHAVIOURS) {
      const site = await lab.addSite(`nat-${nat}`, { nat });
      hosts.set(nat, { site, host: await site.addHost('h1') });
    }
    // one natdiscovery run per site, all at once: each waits out STUN timeouts, not CPU
    await Promise.all(BEHAVIOURS.map(async (nat) => found.set(nat, await discoverNat(hosts.get(nat)!.host, stun))));
    const rows = BEHAVIOURS.map((nat) => {
      const d = found.get(nat)!;
      const { site, host } = hosts.get(nat)!;
      const seenAs = [...new Set(d.reflexive.map((a) => a.split(':')[0]!))];
      const expectedIp = nat === 'none' ? host.ip : site.wanIp;
      const pass = EXPECTED[nat].mapping.includes(d.mapping ?? '') && d.filtering === EXPECTED[nat].filtering
        && seenAs.length === 1 && seenAs[0] === expectedIp;
      return { nat, hostIp: host.ip, expectedIp, mapping: d.mapping, filtering: d.filtering, seenAs, pass, raw: d.raw };
    });
    console.log(`\n${formatSelftestTable(rows)}\n`);
  });

  for (const nat of BEHAVIOURS) {
    it(`${nat}: ${EXPECTED[nat].mapping.join(' or ')} mapping, ${EXPECTED[nat].filtering} filtering`, () => {
      const d = found.get(nat)!;
      const { site, host } = hosts.get(nat)!;
      assert.ok(d.mapping && EXPECTED[nat].mapping.includes(d.mapping), `mapping ${d.mapping}\n${d.raw}`);
      assert.equal(d.filtering, EXPECTED[nat].filtering, d.raw);
      // coturn must see the host as itself (no NAT) or as the site's WAN address
      const seenAs = new Set(d.reflexive.map((a) => a.split(':')[0]));
      assert.ok(d.reflexive.length >= 2, d.raw);
      assert.deepEqual([...seenAs], [nat === 'none' ? host.ip : site.wanIp]);
    });
  }
});

describe('site shapes', () => {
  let echoServer: ReturnType<PublicHost['spawn']>;
  const ECHO_PORT = 7000;

  before(async () => {
    echoServer = relay.spawn([process.execPath, '-e', ECHO_SERVER, String(ECHO_PORT)]);
    await echoServer.waitForOutput(`listening ${ECHO_PORT}`);
  });

  it('gateway MACs stay put while sites and hosts are added (a bridge would take its lowest port MAC)', async () => {
    const mac = async (ns: string, dev: string) => (await lab.internet.host.run(['ip', '-n', ns, '-br', 'link', 'show', dev])).trim().split(/\s+/)[2];
    const inet0 = await mac(lab.inetNs, lab.internet.bridge);
    const site = await lab.addSite('macs', { nat: 'none' });
    await site.addHost('m1');
    const lan0 = await mac(site.router.ns, 'lan0');
    // Ports with the lowest possible MAC: a bridge that picks its own address would take it.
    const run = (ns: string, ...argv: string[]) => lab.internet.host.run(['ip', '-n', ns, ...argv]);
    for (const [ns, br] of [[lab.inetNs, lab.internet.bridge], [site.router.ns, 'lan0']] as const) {
      await run(ns, 'link', 'add', 'lowmac0', 'address', '00:00:00:00:00:01', 'type', 'veth', 'peer', 'name', 'lowmac1');
      await run(ns, 'link', 'set', 'lowmac0', 'master', br);
      await run(ns, 'link', 'set', 'lowmac0', 'up');
    }
    await lab.addSite('macs2', { nat: 'full-cone' });
    await site.addHost('m2');
    assert.equal(await mac(lab.inetNs, lab.internet.bridge), inet0, 'the internet gateway kept its MAC');
    assert.equal(await mac(site.router.ns, 'lan0'), lan0, 'the site gateway kept its MAC');
    assert.match(inet0!, /^02:70:68:/);
  });

  it('double NAT: the host reaches the internet and appears as the CGN address', async () => {
    const site = await lab.addSite('double', { nat: 'port-restricted-cone', doubleNat: true });
    const h = await site.addHost('h1');
    assert.ok(site.cgn, 'site has a CGN');
    assert.match(site.router.ip, /^198\.18\.\d+\.2$/, 'home router WAN is on a 198.18.x CGN segment');
    assert.notEqual(await pingRtt(h, relay.ip, 2), null, 'ping through two NATs');
    const r = await echo(h, 'udp', relay.ip, ECHO_PORT, 'via-cgn');
    assert.equal(r.stdout.trim(), 'echo:via-cgn');
    await echoServer.waitForOutput(`udp via-cgn from ${site.wanIp}:`);
  });

  it('UDP-blocked site: UDP to a public host fails, TCP works', async () => {
    const open = await lab.addSite('udpopen', { nat: 'port-restricted-cone' });
    const blocked = await lab.addSite('udpblocked', { nat: 'port-restricted-cone', udpBlocked: true });
    const hOpen = await open.addHost('h1');
    const hBlocked = await blocked.addHost('h1');
    assert.equal((await echo(hOpen, 'udp', relay.ip, ECHO_PORT, 'u1')).stdout.trim(), 'echo:u1', 'UDP works from a normal site');
    const udp = await echo(hBlocked, 'udp', relay.ip, ECHO_PORT, 'u2');
    assert.notEqual(udp.code, 0);
    assert.equal(udp.stdout.trim(), 'no reply');
    assert.ok(!echoServer.stdout.includes('udp u2 '), 'blocked datagram never reached the relay');
    assert.equal((await echo(hBlocked, 'tcp', relay.ip, ECHO_PORT, 't2')).stdout.trim(), 'echo:t2');
  });

  it('port forward: unsolicited UDP and TCP to wanIp:port reach the inside host behind a symmetric NAT', async () => {
    const site = await lab.addSite('fwd', { nat: 'symmetric' });
    const h = await site.addHost('h1');
    await site.addForward({ proto: 'udp', port: 51820, to: h });
    await site.addForward({ proto: 'tcp', port: 8080, to: h, toPort: 9090 });
    const inUdp = h.spawn([process.execPath, '-e', ECHO_SERVER, '51820']);
    const inTcp = h.spawn([process.execPath, '-e', ECHO_SERVER, '9090']);
    await inUdp.waitForOutput('listening 51820');
    await inTcp.waitForOutput('listening 9090');
    assert.equal((await echo(relay, 'udp', site.wanIp, 51820, 'knock')).stdout.trim(), 'echo:knock');
    await inUdp.waitForOutput(`udp knock from ${relay.ip}:`);
    assert.equal((await echo(relay, 'tcp', site.wanIp, 8080, 'door')).stdout.trim(), 'echo:door');
    await inTcp.waitForOutput(`tcp door from ${relay.ip}`);
    // ports that are not forwarded stay closed
    assert.equal((await echo(relay, 'udp', site.wanIp, 51821, 'nope')).stdout.trim(), 'no reply');
  });

  it('port forward given at creation goes to the first inside host by default', async () => {
    const site = await lab.addSite('fwd2', { nat: 'port-restricted-cone', forwards: [{ proto: 'udp', port: 40000 }] });
    const h = await site.addHost('h1');
    const srv = h.spawn([process.execPath, '-e', ECHO_SERVER, '40000']);
    await srv.waitForOutput('listening 40000');
    assert.equal((await echo(relay, 'udp', site.wanIp, 40000, 'early')).stdout.trim(), 'echo:early');
    await srv.waitForOutput(`udp early from ${relay.ip}:`);
  });

  it('netem: delay raises ping RTT, 100% loss stops it, clearing restores it', async () => {
    const site = await lab.addSite('slow', { nat: 'full-cone', netem: { delayMs: 25 } });
    const h = await site.addHost('h1');
    const slow = await pingRtt(h, relay.ip);
    assert.ok(slow !== null && slow >= 50 && slow < 500, `RTT with 25 ms each way: ${slow}`);
    // bulk TCP (64 KiB GSO frames on veth) crosses the impaired link intact
    const sink = relay.spawn([process.execPath, '-e', TCP_SINK, '5299']);
    await sink.waitForOutput('listening 5299');
    const sent = await h.exec([process.execPath, '-e', TCP_SEND, relay.ip, '5299', String(20 << 20)], { timeoutMs: 30_000 });
    assert.equal(sent.code, 0, sent.stderr);
    await sink.waitForOutput(`received ${20 << 20} bytes`);
    await site.setNetem({ lossPct: 100 });
    assert.equal(await pingRtt(h, relay.ip, 3), null, 'no reply at 100% loss');
    await site.setNetem(null);
    const fast = await pingRtt(h, relay.ip);
    assert.ok(fast !== null && fast < 10, `RTT without impairment: ${fast}`);
    await relay.setNetem({ delayMs: 40 });
    const viaRelayLink = await pingRtt(h, relay.ip);
    await relay.setNetem(null);
    assert.ok(viaRelayLink !== null && viaRelayLink >= 80, `RTT with the relay's link delayed 40 ms: ${viaRelayLink}`);
  });

  it("flushConntrack: the router forgets the mapping; the peer's next packet is dropped", async () => {
    const site = await lab.addSite('flush', { nat: 'port-restricted-cone' });
    const h = await site.addHost('h1');
    const peer = relay.spawn([process.execPath, '-e', UDP_PEER, '46000'], { stdin: 'pipe' });
    const inside = h.spawn([process.execPath, '-e', UDP_PEER, '45000'], { stdin: 'pipe' });
    await peer.waitForOutput('bound 46000');
    await inside.waitForOutput('bound 45000');
    inside.stdin!.write(`${relay.ip} 46000 open\n`);
    const [, ip, port] = await peer.waitForOutput(/recv open from ([\d.]+):(\d+)/);
    assert.equal(ip, site.wanIp);
    peer.stdin!.write(`${ip} ${port} before\n`);
    await inside.waitForOutput('recv before from');
    await site.flushConntrack();
    peer.stdin!.write(`${ip} ${port} after\n`);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!inside.stdout.includes('recv after'), 'the packet after the flush was dropped');
    // the host's next packet opens a fresh mapping that works again
    inside.stdin!.write(`${relay.ip} 46000 reopen\n`);
    const [, , port2] = await peer.waitForOutput(/recv reopen from ([\d.]+):(\d+)/);
    peer.stdin!.write(`${ip} ${port2} back\n`);
    await inside.waitForOutput('recv back from');
  });
});

describe('teardown', () => {
  it('destroy() kills spawned processes and leaves no namespace with the run id', async () => {
    const proc = relay.spawn(['sleep', '300']);
    assert.ok(proc.running);
    assert.ok((await listNamespaces()).some((ns) => ns.includes(lab.id)));
    await lab.destroy();
    assert.equal(proc.running, false, 'sleep was killed');
    const left = (await listNamespaces()).filter((ns) => ns.includes(lab.id));
    assert.deepEqual(left, []);
    await lab.destroy(); // idempotent
    assert.throws(() => relay.spawn(['true']), /destroyed/);
  });
});
