// Port mapping against real miniupnpd (Debian miniupnpd-nftables) on a site router with a
// symmetric NAT: three managed agents behind it, each forced to one protocol (PCP, NAT-PMP, UPnP
// IGD), ask for short leases. Checked per protocol: the mapping the agent reports is the one
// miniupnpd holds (`upnpc -l` lists every mapping, whoever made it), it is reported to the
// coordinator as an endpoint, the lease is renewed past its length, and after a miniupnpd restart
// (which deletes its rules) it comes back; stopping the agent deletes it. One more agent behind a
// second symmetric NAT (no port mapping) gets a direct path to a mapped agent — symmetric to
// symmetric, which without the mapping only a relay connects.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createLab, startCoturn, type Host, type Lab, type LabProcess, type Site, type StunServer } from '../../scripts/natlab/index.js';
import { startMiniupnpd, type Miniupnpd } from '../../scripts/natlab/miniupnpd.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { newLabRelayKey, relayCoordinatorArgs } from '../../scripts/tunnels/pinhole-relay.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import type { AgentStatus } from '../../agent/static/status.js';
import type { NetcheckReport } from '../../agent/netcheck/report.js';
import { formatNetcheck } from '../../agent/cli/netcheck-command.js';
import type { PortmapProtocol } from '../../agent/portmap/protocol-names.js';

const PROTOCOLS: PortmapProtocol[] = ['pcp', 'nat-pmp', 'upnp'];
const LEASE_S = 4;
const METRICS_PORT = 9464;

async function until<T>(what: string, ms: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** `upnpc -l` rows: "external port -> internal ip:port" as miniupnpd holds them (no SSDP wait: -u gives the description). */
async function upnpcMappings(host: Host, igd: Miniupnpd): Promise<string[]> {
  const r = await host.exec(['upnpc', '-i', '-u', igd.descriptionUrl, '-l'], { timeoutMs: 10_000 });
  return [...r.stdout.matchAll(/^\s*\d+\s+UDP\s+(\d+)->(\d+\.\d+\.\d+\.\d+:\d+)\s/gm)].map((m) => `${m[1]}->${m[2]}`);
}

describe('port mapping by PCP, NAT-PMP and UPnP against miniupnpd', { timeout: 120_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let relay: LabProcess;
  let coturn: StunServer;
  let igd: Miniupnpd;
  let site: Site;
  let far: ManagedAgent;
  const agents = new Map<PortmapProtocol, ManagedAgent>();
  const all: ManagedAgent[] = [];

  const mappingOf = async (a: ManagedAgent) => (await a.status()).portmap?.mapping ?? null;

  before(async () => {
    lab = await createLab({ name: 'portmap' });
    const coordHost = await lab.addPublicHost('coord');
    const relayHost = await lab.addPublicHost('relay');
    const coturnHost = await lab.addPublicHost('coturn', { ips: 2 });
    const relayKey = newLabRelayKey();
    coord = await startCoordinator(coordHost, { extraArgs: [...relayCoordinatorArgs('lab', `ws://${relayHost.ip}:8443/relay`, relayKey), '--relay-stun', `lab=${relayHost.ip}:3478`] });
    await writeFile(join(coord.dir, 'relay.key'), `${relayKey.privateKey}\n`, { mode: 0o600 });
    relay = relayHost.spawn(['node', PINHOLE_BIN, 'relay', '--listen', `${relayHost.ip}:8443`, '--stun', `${relayHost.ip}:3478`,
      '--coordinator', coord.url, '--coordinator-key', coord.fingerprint, '--key-file', join(coord.dir, 'relay.key')], { env: { PINHOLE_LOG_LEVEL: 'warn' } });
    coturn = await startCoturn(coturnHost);
    site = await lab.addSite('igd', { nat: 'symmetric' });
    const farSite = await lab.addSite('far', { nat: 'symmetric' });
    const [, , authKey] = await Promise.all([
      relay.waitForOutput(/listening ws:\/\/\S+ stun=\S+/),
      startMiniupnpd(site, { stun: coturn }).then((m) => { igd = m; }),
      coord.createAuthKey({ reusable: true }),
    ]);

    const start = async (host: Host, name: string, extraArgs: string[]): Promise<ManagedAgent> => {
      const a = await startManagedAgent(host, { tun: `pm${id}${name}`.slice(0, 15), extraArgs });
      all.push(a);
      const up = await a.cli(['up', '--coordinator', coord.url, '--auth-key', authKey, '--hostname', `pm-${name}`]);
      assert.equal(up.code, 0, `${name}: pinhole up: ${up.stderr}`);
      return a;
    };
    await Promise.all([
      ...PROTOCOLS.map(async (p, i) => {
        const host = await site.addHost(`h${i + 1}`);
        agents.set(p, await start(host, p.replace('-', ''), ['--portmap-protocol', p, '--portmap-lease', String(LEASE_S), '--metrics-listen', `127.0.0.1:${METRICS_PORT}`]));
      }),
      (async () => { far = await start(await farSite.addHost('f1'), 'far', ['--no-portmap', '--metrics-listen', `127.0.0.1:${METRICS_PORT}`]); })(),
    ]);
  });

  after(async () => {
    for (const a of all) await a.stop().catch(() => undefined);
    await igd?.stop().catch(() => undefined);
    await coturn?.stop().catch(() => undefined);
    await relay?.kill().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  it('each agent holds a mapping by its protocol, as miniupnpd lists it, and reports it as an endpoint', async () => {
    for (const p of PROTOCOLS) {
      const a = agents.get(p)!;
      const m = await until(`${p} mapping`, 10_000, () => mappingOf(a));
      const st = await a.status();
      assert.equal(m.protocol, p);
      assert.equal(m.gateway, site.gateway);
      assert.equal(m.internalPort, st.interface.listenPort);
      assert.equal(m.external.split(':')[0], site.wanIp, `${p}: ${m.external}`);
      assert.ok(m.lifetimeSeconds > 0 && m.lifetimeSeconds <= LEASE_S, `${p}: lease ${m.lifetimeSeconds}`);
      const extPort = m.external.split(':')[1];
      await until(`${p} mapping in upnpc -l`, 5000, async () => (await upnpcMappings(a.host, igd)).includes(`${extPort}->${a.host.ip}:${m.internalPort}`));
      // One of the endpoints reported to the coordinator (the direct-path test below sees a peer use it).
      await until(`${p} mapping among the reported endpoints`, 5000, async () => (await a.status()).control?.endpoints.includes(m.external));
    }
  });

  it('`pinhole netcheck` says the gateway offers UPnP, NAT-PMP and PCP; `pinhole status` shows the mapping', async () => {
    const a = agents.get('pcp')!;
    const r = await a.cli(['netcheck', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as NetcheckReport;
    assert.deepEqual({ ...report.portmap, at: undefined }, { gateway: site.gateway, upnp: true, natPmp: true, pcp: true, at: undefined });
    // The text form of the same report (the CLI prints formatNetcheck's output).
    assert.match(formatNetcheck(report), /PortMapping:\s+UPnP, NAT-PMP, PCP \(gateway 198\.18\.\d+\.1\)/);
    const status = await a.cli(['status']);
    const m = (await mappingOf(a))!;
    assert.match(status.stdout, new RegExp(`port mapping: ${m.external.replace(/\./g, '\\.')} by pcp`), status.stdout);
  });

  it('the metric pinhole_portmap_active is 1 with a mapping, 0 with --no-portmap', async () => {
    const gauge = async (a: ManagedAgent): Promise<string | undefined> => {
      const r = await a.host.run(['curl', '-sf', `http://127.0.0.1:${METRICS_PORT}/metrics`]);
      return /^pinhole_portmap_active (\d+)$/m.exec(r)?.[1];
    };
    for (const p of PROTOCOLS) assert.equal(await gauge(agents.get(p)!), '1', p);
    assert.equal(await gauge(far), '0');
    assert.equal((await far.status()).portmap, null);
  });

  it('a short lease is renewed before it ends, past its length', async () => {
    const first = new Map<PortmapProtocol, { external: string; renewals: number }>();
    for (const p of PROTOCOLS) first.set(p, (await mappingOf(agents.get(p)!))!);
    // Over a lease length: without renewals miniupnpd would drop every mapping meanwhile.
    await new Promise((r) => setTimeout(r, 1.5 * LEASE_S * 1000));
    for (const p of PROTOCOLS) {
      const a = agents.get(p)!;
      const m = (await mappingOf(a))!;
      assert.ok(m, `${p}: mapping lost`);
      assert.ok(m.renewals >= first.get(p)!.renewals + 2, `${p}: ${m.renewals} renewals, ${first.get(p)!.renewals} before`);
      assert.ok(Date.now() - Date.parse(m.createdAt) > m.lifetimeSeconds * 1000, `${p}: created ${m.createdAt}`);
      assert.equal(m.external, first.get(p)!.external, `${p}: the renewal kept the external port`);
      assert.ok(Date.parse(m.expiresAt) > Date.now(), `${p}: expires ${m.expiresAt}`);
      // upnpc walks miniupnpd's table by index, and miniupnpd-nftables renews a rule by deleting and
      // re-adding it, so a listing taken during another agent's renewal can repeat one row and miss
      // another: a missing row counts only if fresh listings keep missing it past one renewal interval.
      let listed: string[] = [];
      const row = `${m.external.split(':')[1]}->${a.host.ip}:${m.internalPort}`;
      await until(`${p} mapping in upnpc -l`, (LEASE_S / 2) * 1000, async () => (listed = await upnpcMappings(a.host, igd)).includes(row))
        .catch(() => assert.fail(`${p}: ${row} not in ${listed.join(', ')}`));
    }
  });

  it('a peer behind another symmetric NAT reaches a mapped agent directly, at its mapped address', async () => {
    const a = agents.get('nat-pmp')!;
    const m = (await mappingOf(a))!;
    const aIp = (await a.status()).self!.ipv4!;
    const ping = await far.cli(['ping', aIp]);
    assert.equal(ping.code, 0, ping.stderr);
    const peer = await until('a direct path from the far agent', 25_000, async () => {
      await far.cli(['ping', aIp]);
      const p = (await far.status()).peers.find((x) => x.overlayIp === aIp);
      return p?.path === 'direct' ? p : null;
    });
    assert.equal(peer.endpoint, m.external);
  });

  it('after a router reboot (miniupnpd restarted as an IGD v1, its rules gone) every mapping comes back', async () => {
    const before = new Map<PortmapProtocol, number>();
    for (const p of PROTOCOLS) before.set(p, (await agents.get(p)!.status()).portmap!.counters.gatewayRestarts);
    assert.equal((await igd.rules()).length, PROTOCOLS.length, 'one DNAT rule per agent before the restart');
    assert.equal((await mappingOf(agents.get('upnp')!))!.upnpService, 'urn:schemas-upnp-org:service:WANIPConnection:2');
    // Like a reboot: miniupnpd's rules are gone while it is down, and it comes back with a new
    // epoch, on another HTTP port, and (a firmware change) as an IGD v1: AddPortMapping, no AddAnyPortMapping.
    await igd.restart({ igdV1: true, between: async () => { assert.deepEqual(await igd.rules(), []); } });
    for (const p of PROTOCOLS) {
      const a = agents.get(p)!;
      await until(`${p} mapping after the restart`, 15_000, async () => {
        const m = await mappingOf(a);
        return m && (await upnpcMappings(a.host, igd)).includes(`${m.external.split(':')[1]}->${a.host.ip}:${m.internalPort}`);
      });
      const st: AgentStatus = await a.status();
      assert.ok((await igd.rules()).some((r) => r.includes(`dnat ip to ${a.host.ip}:${st.portmap!.mapping!.internalPort}`)), `${p}: DNAT rule back`);
      if (p !== 'upnp') assert.ok(st.portmap!.counters.gatewayRestarts > before.get(p)!, `${p}: the epoch going back was noticed`);
      assert.ok(st.portmap!.counters.announcements >= 1, `${p}: miniupnpd's announcement on 224.0.0.1:5350 arrived`);
      if (p === 'upnp') assert.equal(st.portmap!.mapping!.upnpService, 'urn:schemas-upnp-org:service:WANIPConnection:1');
    }
  });

  it('stopping an agent deletes its mapping', async () => {
    await Promise.all(PROTOCOLS.map(async (p) => {
      const a = agents.get(p)!;
      const m = (await mappingOf(a))!;
      const row = `${m.external.split(':')[1]}->${a.host.ip}:${m.internalPort}`;
      await a.proc.kill('SIGTERM', 5000);
      assert.match(a.proc.output, new RegExp(`port mapping ${m.external.replace(/\./g, '\\.')} \\(${p}\\) deleted`), `${p}: no delete logged`);
      const left = await upnpcMappings(a.host, igd);
      assert.ok(!left.includes(row), `${p}: ${row} still listed after the agent stopped: ${left.join(', ')}`);
    }));
    assert.deepEqual(await igd.rules(), [], 'no DNAT rule left on the router');
  });
});
