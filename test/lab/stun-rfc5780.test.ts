// Our RFC 5780 STUN responder, judged by a client nobody here wrote: coturn's
// turnutils_natdiscovery classifies every NAT behaviour of the lab the same way against
// `pinhole relay --stun IP1:3478 --stun IP2:3478` as against coturn's own turnserver.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createLab, discoverNat, EXPECTED_CLASSIFICATION, startCoturn,
  type Host, type Lab, type LabProcess, type NatBehaviour, type NatDiscovery, type PublicHost, type Site, type StunServer,
} from '../../scripts/natlab/index.js';
import { PINHOLE_BIN, REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { join } from 'node:path';

// Our own STUN client (agent/netcheck) run inside a site: three Binding requests from one socket —
// to the primary, to the primary with CHANGE-REQUEST (ip+port; before we ever sent to the other
// address, so a filtering NAT drops the answer), then to the other address.
const PROBE = `
const { StunClient } = await import(process.argv[1]);
const [ip, port, otherIp, otherPort] = process.argv.slice(2);
const sock = (await import('node:dgram')).createSocket('udp4');
await new Promise((r) => sock.bind(0, r));
const c = new StunClient({ send: (p, po, a) => sock.send(p, po, a), timeoutMs: 1500 });
sock.on('message', (m, r) => c.handlePacket(m, r));
const show = (r) => r.mapped.address + ':' + r.mapped.port;
const primary = await c.request({ address: ip, port: Number(port) });
const changed = await c.request({ address: ip, port: Number(port) }, { changeIp: true, changePort: true }).then((r) => 'answered from ' + r.from.address + ':' + r.from.port, (e) => e.name);
const other = await c.request({ address: otherIp, port: Number(otherPort) });
console.log(JSON.stringify({ primary: show(primary), other: show(other), otherAddress: primary.otherAddress, changed }));
sock.close();`;

const BEHAVIOURS: NatBehaviour[] = ['none', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric'];

let lab: Lab;
let relayHost: PublicHost;
let relay: LabProcess;
let coturn: StunServer;
const sites = new Map<NatBehaviour, { site: Site; host: Host; ours: NatDiscovery; theirs: NatDiscovery }>();

before(async () => {
  lab = await createLab({ name: 'stun5780' });
  relayHost = await lab.addPublicHost('relay', { ips: 2 });
  const coturnHost = await lab.addPublicHost('coturn', { ips: 2 });
  const [ip1, ip2] = relayHost.ips;
  relay = relayHost.spawn([process.execPath, PINHOLE_BIN, 'relay', '--open', '--listen', `${ip1}:8443`, '--stun', `${ip1}:3478`, '--stun', `${ip2}:3478`], { env: { PINHOLE_LOG_LEVEL: 'warn' } });
  await relay.waitForOutput(/listening ws:\/\/\S+ stun=\S+/);
  coturn = await startCoturn(coturnHost);
  const added = [];
  for (const nat of BEHAVIOURS) {
    const site = await lab.addSite(`r-${nat}`, { nat });
    added.push({ nat, site, host: await site.addHost('h1') });
  }
  // Sites run at once (each waits out STUN timeouts, not CPU); per site, ours then coturn's.
  await Promise.all(added.map(async ({ nat, site, host }) => {
    const ours = await discoverNat(host, ip1!);
    const theirs = await discoverNat(host, coturn);
    sites.set(nat, { site, host, ours, theirs });
  }));
  const row = (cells: string[]) => cells.map((c, i) => c.padEnd([22, 28, 28, 28, 28][i]!)).join(' ');
  console.log(['', row(['behaviour', 'mapping (pinhole)', 'mapping (coturn)', 'filtering (pinhole)', 'filtering (coturn)']),
    ...BEHAVIOURS.map((nat) => {
      const s = sites.get(nat)!;
      return row([nat, s.ours.mapping ?? '-', s.theirs.mapping ?? '-', s.ours.filtering ?? '-', s.theirs.filtering ?? '-']);
    }), ''].join('\n'));
});

after(async () => {
  await lab?.destroy();
});

describe('turnutils_natdiscovery -m -f against pinhole\'s STUN responder', () => {
  for (const nat of BEHAVIOURS) {
    it(`${nat}: same mapping and filtering as against coturn`, () => {
      const { site, host, ours, theirs } = sites.get(nat)!;
      assert.ok(ours.mapping && ours.filtering, `natdiscovery could not classify against pinhole:\n${ours.raw}`);
      assert.equal(ours.mapping, theirs.mapping, `mapping\npinhole:\n${ours.raw}\ncoturn:\n${theirs.raw}`);
      assert.equal(ours.filtering, theirs.filtering, `filtering\npinhole:\n${ours.raw}\ncoturn:\n${theirs.raw}`);
      const want = EXPECTED_CLASSIFICATION[nat];
      assert.ok(want.mapping.includes(ours.mapping), `mapping ${ours.mapping}`);
      assert.equal(ours.filtering, want.filtering);
      // XOR-MAPPED-ADDRESS through the NAT: the site's public address (the host's own without NAT).
      assert.deepEqual([...new Set(ours.reflexive.map((a) => a.split(':')[0]))], [nat === 'none' ? host.ip : site.wanIp]);
    });
  }

  // Every site's filtering test asks for at least one answer from the other address and port.
  it('pinhole\'s own STUN client sees the same NAT: mapping per destination, filtering of the other address', async () => {
    const client = join(REPO_ROOT, 'dist', 'agent', 'netcheck', 'stun-client.js');
    const [ip1, ip2] = relayHost.ips;
    for (const nat of ['full-cone', 'port-restricted-cone', 'symmetric'] as const) {
      const { site, host } = sites.get(nat)!;
      const r = await host.exec([process.execPath, '--input-type=module', '-e', PROBE, client, ip1!, '3478', ip2!, '3479'], { timeoutMs: 15_000 });
      assert.equal(r.code, 0, r.stderr);
      const p = JSON.parse(r.stdout) as { primary: string; other: string; otherAddress: { address: string; port: number }; changed: string };
      assert.deepEqual(p.otherAddress, { family: 4, address: ip2, port: 3479 });
      assert.equal(p.primary.split(':')[0], site.wanIp);
      // Endpoint-independent mapping keeps the public port towards another address; symmetric does not.
      if (nat === 'symmetric') assert.notEqual(p.other, p.primary, nat);
      else assert.equal(p.other, p.primary, nat);
      // Only a full cone lets the answer from the address we never sent to (the CHANGE-REQUEST reply) in.
      assert.equal(p.changed, nat === 'full-cone' ? `answered from ${ip2}:3479` : 'StunTimeoutError', nat);
    }
  });

  it('the relay answered CHANGE-REQUESTs and is still running', async () => {
    assert.ok(relay.running, relay.output);
    const r = await relayHost.exec(['curl', '-s', `http://${relayHost.ips[0]}:8443/healthz`]);
    const h = JSON.parse(r.stdout) as { counters: { stun: { requests: number; changeRequests: number } }; stun: { otherAddress: { address: string; port: number } } };
    assert.deepEqual(h.stun.otherAddress, { address: relayHost.ips[1], port: 3479 });
    assert.ok(h.counters.stun.changeRequests >= BEHAVIOURS.length, JSON.stringify(h.counters.stun));
  });
});
