// `pinhole netcheck` behind every NAT behaviour of the lab, judged by a classifier nobody here
// wrote: one site per behaviour with a real managed agent, a real coordinator handing out the
// relay map (`--relay`, `--relay-stun`), a real relay with an RFC 5780 STUN responder on two
// addresses that admits only nodes the coordinator knows, and coturn's `turnutils_natdiscovery
// -m -f` run from the same host against coturn's own server on two other addresses. Mapping and
// filtering must be the same for every behaviour.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  createLab, discoverNat, EXPECTED_CLASSIFICATION, startCoturn,
  type Host, type Lab, type LabProcess, type NatBehaviour, type NatDiscovery, type PublicHost, type Site, type StunServer,
} from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { newLabRelayKey, relayCoordinatorArgs } from '../../scripts/tunnels/pinhole-relay.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import type { NetcheckReport } from '../../agent/netcheck/report.js';

const BEHAVIOURS: NatBehaviour[] = ['none', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric'];

interface SiteRun {
  site: Site;
  host: Host;
  agent: ManagedAgent;
  ours: NetcheckReport;
  theirs: NatDiscovery;
}

describe('pinhole netcheck against coturn\'s turnutils_natdiscovery, per NAT behaviour', { timeout: 600_000 }, () => {
  const id = runId();
  let lab: Lab;
  let relayHost: PublicHost;
  let coord: LabCoordinator;
  let relay: LabProcess;
  let coturn: StunServer;
  const agents: ManagedAgent[] = [];
  const runs = new Map<NatBehaviour, SiteRun>();

  before(async () => {
    lab = await createLab({ name: 'netcheck' });
    const coordHost = await lab.addPublicHost('coord');
    relayHost = await lab.addPublicHost('relay', { ips: 2 });
    const coturnHost = await lab.addPublicHost('coturn', { ips: 2 });
    const [ip1, ip2] = relayHost.ips;
    const relayKey = newLabRelayKey();
    coord = await startCoordinator(coordHost, { extraArgs: [...relayCoordinatorArgs('lab', `ws://${ip1}:8443/relay`, relayKey), '--relay-stun', `lab=${ip1}:3478`] });
    await writeFile(join(coord.dir, 'relay.key'), `${relayKey.privateKey}\n`, { mode: 0o600 });
    relay = relayHost.spawn(['node', PINHOLE_BIN, 'relay', '--listen', `${ip1}:8443`, '--stun', `${ip1}:3478`, '--stun', `${ip2}:3478`,
      '--coordinator', coord.url, '--coordinator-key', coord.fingerprint, '--key-file', join(coord.dir, 'relay.key')], { env: { PINHOLE_LOG_LEVEL: 'warn' } });
    await relay.waitForOutput(/listening ws:\/\/\S+ stun=\S+/);
    coturn = await startCoturn(coturnHost);
    const authKey = await coord.createAuthKey({ reusable: true });

    const sites = await Promise.all(BEHAVIOURS.map(async (nat, i) => {
      const site = await lab.addSite(`nc-${nat}`, { nat });
      const host = await site.addHost('h1');
      const agent = await startManagedAgent(host, { tun: `nc${id}${i}` });
      agents.push(agent);
      const up = await agent.cli(['up', '--coordinator', coord.url, '--auth-key', authKey, '--hostname', `nc-${i}`]);
      assert.equal(up.code, 0, `${nat}: pinhole up: ${up.stderr}`);
      return { nat, site, host, agent };
    }));
    // Per site: ours first, then coturn's (its own sockets; the NAT keys its state per socket).
    await Promise.all(sites.map(async ({ nat, site, host, agent }) => {
      const r = await agent.cli(['netcheck', '--json']);
      assert.equal(r.code, 0, `${nat}: pinhole netcheck: ${r.stderr}`);
      const ours = JSON.parse(r.stdout) as NetcheckReport;
      const theirs = await discoverNat(host, coturn);
      runs.set(nat, { site, host, agent, ours, theirs });
    }));

    const row = (cells: string[]) => cells.map((c, i) => c.padEnd([22, 28, 28, 28, 28, 8, 8][i]!)).join(' ');
    console.log(['', row(['behaviour', 'mapping (netcheck)', 'mapping (coturn)', 'filtering (netcheck)', 'filtering (coturn)', 'hairpin', 'took']),
      ...BEHAVIOURS.map((nat) => {
        const s = runs.get(nat)!;
        return row([nat, s.ours.mapping ?? '-', s.theirs.mapping ?? '-', s.ours.filtering ?? '-', s.theirs.filtering ?? '-',
          String(s.ours.hairpinning), `${Math.round(s.ours.durationMs)} ms`]);
      }), ''].join('\n'));
  });

  after(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    await coturn?.stop().catch(() => undefined);
    await relay?.kill().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  for (const nat of BEHAVIOURS) {
    it(`${nat}: same mapping and filtering as turnutils_natdiscovery; public address, relay latency`, () => {
      const { site, host, ours, theirs } = runs.get(nat)!;
      const want = EXPECTED_CLASSIFICATION[nat];
      assert.ok(theirs.mapping && theirs.filtering, `coturn could not classify:\n${theirs.raw}`);
      assert.equal(ours.mapping, theirs.mapping, `mapping; netcheck: ${JSON.stringify(ours.tests)}\ncoturn:\n${theirs.raw}`);
      assert.equal(ours.filtering, theirs.filtering, `filtering; netcheck: ${JSON.stringify(ours.tests)}\ncoturn:\n${theirs.raw}`);
      assert.ok(want.mapping.includes(ours.mapping!), `mapping ${ours.mapping}`);
      assert.equal(ours.filtering, want.filtering);

      assert.equal(ours.udp, true);
      assert.equal(ours.ipv4!.split(':')[0], nat === 'none' ? host.ip : site.wanIp);
      assert.equal(ours.behindNat, nat !== 'none');
      assert.equal(ours.tests!.server, `${relayHost.ips[0]}:3478`);
      assert.equal(ours.tests!.otherAddress, `${relayHost.ips[1]}:3479`);
      assert.equal(ours.tests!.filtering.fromCache, false, 'the first run measures');
      // The lab's routers do not hairpin; without NAT the packet to our own address is local.
      assert.equal(ours.hairpinning, nat === 'none');
      assert.equal(ours.mappingVariesByDestIp, nat === 'symmetric');

      assert.equal(ours.relays.length, 1);
      assert.ok(typeof ours.relays[0]!.latencyMs === 'number' && ours.relays[0]!.latencyMs < 1000, JSON.stringify(ours.relays));
      assert.equal(ours.preferredRelay, 'lab');
      assert.ok(ours.durationMs < 8000, `took ${ours.durationMs} ms`);
    });
  }

  it('a second run behind a port-restricted cone reuses the first measurement (the first run opened the NAT to the other address)', async () => {
    const { agent } = runs.get('port-restricted-cone')!;
    const first = runs.get('port-restricted-cone')!.ours;
    const r = await agent.cli(['netcheck', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const again = JSON.parse(r.stdout) as NetcheckReport;
    assert.equal(again.filtering, 'address-and-port-dependent');
    assert.deepEqual(again.tests!.filtering, { ...first.tests!.filtering, fromCache: true });
    assert.equal(again.mapping, 'endpoint-independent');

    // down + up: a new socket (on the listen port kept in the state dir) behind a NAT that still
    // holds the old flows: filtering must still read port-restricted, not the opened door.
    assert.equal((await agent.cli(['down'])).code, 0);
    const up = await agent.cli(['up']);
    assert.equal(up.code, 0, up.stderr);
    const third = await agent.cli(['netcheck', '--json']);
    assert.equal(third.code, 0, third.stderr);
    const afterUp = JSON.parse(third.stdout) as NetcheckReport;
    assert.equal(afterUp.filtering, 'address-and-port-dependent', JSON.stringify(afterUp.tests));
    console.log(`after down/up: public ${afterUp.ipv4} (was ${first.ipv4}), filtering fromCache=${afterUp.tests!.filtering.fromCache}`);
  });

  it('human output names the behaviours and marks the preferred relay', async () => {
    const { agent, ours } = runs.get('symmetric')!;
    const r = await agent.cli(['netcheck']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ {2}\* UDP: +true$/m);
    assert.match(r.stdout, new RegExp(`^ {2}\\* IPv4: +${ours.ipv4!.split(':')[0]!.replace(/\./g, '\\.')}:\\d+$`, 'm'));
    assert.match(r.stdout, new RegExp(`^ {2}\\* Mapping: +${ours.mapping}$`, 'm'));
    assert.match(r.stdout, /^ {2}\* Filtering: +address-and-port-dependent( \(measured \d+ s ago\))?$/m);
    assert.match(r.stdout, /^ {6}- lab +\d+(\.\d)? ms {2}\(preferred\)$/m);
  });

  it('errors: a node that is down, an agent that is not running — one line on stderr, non-zero exit', async () => {
    const { agent } = runs.get('none')!;
    assert.equal((await agent.cli(['down'])).code, 0);
    const down = await agent.cli(['netcheck']);
    assert.notEqual(down.code, 0);
    assert.equal(down.stderr.trim().split('\n').length, 1, down.stderr);
    assert.match(down.stderr, /^pinhole: .*down/);
    assert.equal(down.stdout, '');
    const none = await agent.host.exec(['node', PINHOLE_BIN, '--socket', join(agent.dir, 'nobody.sock'), 'netcheck', '--json']);
    assert.notEqual(none.code, 0);
    assert.equal(none.stderr.trim(), `pinhole: cannot reach the pinhole agent at ${join(agent.dir, 'nobody.sock')}: is the agent running?`);
  });
});
