// `--metrics-listen` as an operator uses it: a real Prometheus server (Debian's `prometheus`)
// scrapes a coordinator, a relay and two managed agents in the lab every second, and its HTTP
// query API answers what a dashboard would ask: the peer's path kind, relay clients, nodes online,
// bytes growing after a ping, the time-to-direct histogram, the NAT type after a netcheck. The
// listener itself answers 404 off /metrics and 405 to anything but GET.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, type Host, type Lab, type LabProcess } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { startLabRelay, type LabRelay } from '../../scripts/tunnels/pinhole-relay.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';
import { ping } from '../helpers/transfer.js';

const METRICS_PORT = 9464;
const PROM_PORT = 9090;

interface Sample { metric: Record<string, string>; value: [number, string] }

describe('Prometheus scrapes agent, coordinator and relay', { timeout: 120_000 }, () => {
  const id = runId();
  let lab: Lab;
  let promHost: Host;
  let coord: LabCoordinator;
  let relay: LabRelay;
  let prom: LabProcess | null = null;
  let promDir = '';
  const hosts: Record<string, Host> = {};
  const agents: Record<string, ManagedAgent> = {};
  const metricsAt = (h: Host): string => `${h.ip}:${METRICS_PORT}`;

  /** GET through curl inside the Prometheus namespace (the test process is outside the lab). */
  async function curl(args: string[]): Promise<{ code: string; body: string }> {
    const r = await promHost.exec(['curl', '-sS', '--max-time', '5', '-o', '-', '-w', '\n%{http_code}', ...args]);
    assert.equal(r.code, 0, `curl ${args.join(' ')}: ${r.stderr}`);
    const at = r.stdout.lastIndexOf('\n');
    return { body: r.stdout.slice(0, at), code: r.stdout.slice(at + 1) };
  }

  async function query(expr: string): Promise<Sample[]> {
    const r = await curl(['-G', `http://${promHost.ip}:${PROM_PORT}/api/v1/query`, '--data-urlencode', `query=${expr}`]);
    assert.equal(r.code, '200', `${expr}: ${r.body}`);
    const reply = JSON.parse(r.body) as { status: string; data: { resultType: string; result: Sample[] } };
    assert.equal(reply.status, 'success', r.body);
    assert.equal(reply.data.resultType, 'vector', r.body);
    return reply.data.result;
  }

  /** The single value of an instant query, or undefined while it has none. */
  async function value(expr: string): Promise<number | undefined> {
    const result = await query(expr);
    assert.ok(result.length <= 1, `${expr}: one series expected, got ${JSON.stringify(result)}`);
    return result[0] ? Number(result[0].value[1]) : undefined;
  }

  const eventually = (what: string, expr: string, ok: (v: number) => boolean, ms = 15_000): Promise<number> =>
    waitFor(what, async () => {
      const v = await value(expr);
      return v !== undefined && ok(v) ? v : undefined;
    }, ms, 250);

  before(async () => {
    lab = await createLab({ name: 'prom' });
    promHost = await lab.addPublicHost('prom');
    hosts.relay = await lab.addPublicHost('relay', { ips: 2 });
    hosts.coord = await lab.addPublicHost('coord');
    relay = await startLabRelay(hosts.relay, { extraArgs: ['--metrics-listen', metricsAt(hosts.relay)] });
    coord = await startCoordinator(hosts.coord, { extraArgs: [...relay.coordinatorArgs('lab'), '--metrics-listen', metricsAt(hosts.coord)] });
    const key = await coord.createAuthKey({ reusable: true });
    for (const name of ['alpha', 'beta']) hosts[name] = await lab.addPublicHost(name);
    await Promise.all(['alpha', 'beta'].map(async (name) => {
      agents[name] = await startManagedAgent(hosts[name]!, { tun: `pm${id}${name[0]}`, extraArgs: ['--metrics-listen', metricsAt(hosts[name]!)] });
      const r = await agents[name]!.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', name]);
      assert.equal(r.code, 0, r.stderr);
    }));

    promDir = await mkdtemp(join(tmpdir(), `pinhole-prom-${id}-`));
    const target = (job: string, hs: Host[]) => ({ job_name: job, static_configs: [{ targets: hs.map(metricsAt) }] });
    // JSON is YAML: Prometheus reads it as is.
    const config = {
      global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
      scrape_configs: [target('agent', [hosts.alpha!, hosts.beta!]), target('coordinator', [hosts.coord]), target('relay', [hosts.relay])],
    };
    await writeFile(join(promDir, 'prometheus.yml'), JSON.stringify(config, null, 2));
    prom = promHost.spawn(['prometheus', `--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
      `--web.listen-address=${promHost.ip}:${PROM_PORT}`, '--log.level=warn'], { logFile: join(promDir, 'prometheus.log') });
  });

  after(async () => {
    if (prom?.running) await prom.kill('SIGTERM', 5000);
    for (const a of Object.values(agents)) await a.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await relay?.stop().catch(() => undefined);
    await lab?.destroy();
    if (promDir) await rm(promDir, { recursive: true, force: true });
  });

  test('every target is up in Prometheus', async () => {
    const targets = await waitFor('all five targets up', async () => {
      const r = await curl([`http://${promHost.ip}:${PROM_PORT}/api/v1/targets`]).catch(() => null);
      if (!r || r.code !== '200') return undefined;
      const active = (JSON.parse(r.body) as { data: { activeTargets: { scrapeUrl: string; health: string; labels: { job: string }; lastError: string }[] } }).data.activeTargets;
      return active.length === 4 && active.every((t) => t.health === 'up') ? active : undefined;
    }, 30_000, 250);
    assert.deepEqual(targets.map((t) => t.labels.job).sort(), ['agent', 'agent', 'coordinator', 'relay']);
    for (const t of targets) assert.equal(t.lastError, '', t.scrapeUrl);
  });

  test('the path kind of each agent\'s peer: direct (both are on the public segment)', async () => {
    // The agents find the direct path once traffic flows; a ping starts it.
    const betaIp = (await agents.beta!.status()).self!.ipv4!;
    const alphaIp = (await agents.alpha!.status()).self!.ipv4!;
    assert.ok((await ping(hosts.alpha!, betaIp, 3, 5)).ok);
    await eventually('alpha sees beta direct', `pinhole_peer_path{job="agent",instance="${metricsAt(hosts.alpha!)}",peer="beta",path="direct"}`, (v) => v === 1);
    assert.equal(await value(`pinhole_peer_path{instance="${metricsAt(hosts.alpha!)}",peer="beta",path="relay"}`), 0);
    assert.equal(await value(`pinhole_peer_path{instance="${metricsAt(hosts.alpha!)}",peer="beta",path="none"}`), 0);
    // The overlay address is a label, the key never is.
    const series = await query(`pinhole_peer_path{instance="${metricsAt(hosts.alpha!)}",peer="beta",path="direct"}`);
    assert.equal(series[0]!.metric.ip, betaIp);
    await eventually('beta sees alpha direct', `pinhole_peer_path{instance="${metricsAt(hosts.beta!)}",peer="alpha",ip="${alphaIp}",path="direct"}`, (v) => v === 1);
    // Observed once per peer when it went direct.
    await eventually('time to direct observed on alpha', `pinhole_peer_time_to_direct_seconds_count{instance="${metricsAt(hosts.alpha!)}"}`, (v) => v === 1);
    await eventually('time to first packet observed on alpha', `pinhole_peer_time_to_first_packet_seconds_count{instance="${metricsAt(hosts.alpha!)}"}`, (v) => v === 1);
    const handshakeAge = await eventually('handshake age', `pinhole_peer_last_handshake_age_seconds{instance="${metricsAt(hosts.alpha!)}",peer="beta"}`, (v) => v >= 0);
    assert.ok(handshakeAge < 60, `handshake age ${handshakeAge}`);
  });

  test('relay clients, coordinator nodes online and registrations', async () => {
    // Each agent keeps a connection to its home relay.
    await eventually('two relay clients', 'pinhole_relay_clients{job="relay"}', (v) => v === 2);
    await eventually('agents see their relay connected', 'sum(pinhole_agent_relay_connected{job="agent",relay="lab"})', (v) => v === 2);
    assert.equal(await value('pinhole_coordinator_nodes_online'), 2);
    assert.equal(await value('pinhole_coordinator_nodes'), 2);
    assert.equal(await value('pinhole_coordinator_streams'), 2);
    assert.equal(await value('pinhole_coordinator_registrations_total{outcome="created"}'), 2);
    // The nodes joined one after the other: at least one delta went out, and its fan-out was timed.
    assert.ok((await value('pinhole_coordinator_netmap_fanout_seconds_count'))! >= 1);
    // Process metrics come with every target.
    for (const job of ['agent', 'coordinator', 'relay']) {
      const cpu = await query(`process_cpu_seconds_total{job="${job}"}`);
      assert.ok(cpu.length >= 1 && cpu.every((s) => Number(s.value[1]) > 0), `${job} CPU: ${JSON.stringify(cpu)}`);
    }
  });

  test('bytes to a peer grow after a ping', async () => {
    const expr = `pinhole_peer_tx_bytes_total{instance="${metricsAt(hosts.alpha!)}",peer="beta"}`;
    const rxExpr = `pinhole_peer_rx_bytes_total{instance="${metricsAt(hosts.beta!)}",peer="alpha"}`;
    const before = (await value(expr))!;
    const rxBefore = (await value(rxExpr))!;
    const betaIp = (await agents.beta!.status()).self!.ipv4!;
    assert.ok((await ping(hosts.alpha!, betaIp, 5, 5)).ok);
    // 5 ICMP echoes of 84 bytes, each in a WireGuard transport message of 32 bytes more, at least.
    const after = await eventually('alpha tx bytes grow', expr, (v) => v >= before + 5 * 84);
    const rxAfter = await eventually('beta rx bytes grow', rxExpr, (v) => v >= rxBefore + 5 * 84);
    assert.ok(after > before && rxAfter > rxBefore);
  });

  test('NAT type: unknown until a netcheck, then the behaviour it measured (no NAT here)', async () => {
    const at = `instance="${metricsAt(hosts.alpha!)}"`;
    assert.equal(await value(`pinhole_nat_type{${at},mapping="unknown",filtering="unknown"}`), 1);
    const r = await agents.alpha!.cli(['netcheck', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { mapping: string | null; filtering: string | null };
    const mapping = report.mapping ?? 'unknown';
    const filtering = report.filtering ?? 'unknown';
    // The relay has two addresses: RFC 5780 tests classify an unNATed host as endpoint-independent.
    assert.equal(mapping, 'endpoint-independent');
    await eventually('nat type after netcheck', `pinhole_nat_type{${at},mapping="${mapping}",filtering="${filtering}"}`, (v) => v === 1);
    assert.equal(await value(`pinhole_portmap_active{${at}}`), 0);
  });

  test('the metrics listener: 404 off /metrics, 405 for POST, Prometheus text on GET', async () => {
    const base = `http://${metricsAt(hosts.coord)}`;
    assert.equal((await curl([`${base}/`])).code, '404');
    assert.equal((await curl([`${base}/metrics/x`])).code, '404');
    assert.equal((await curl(['-X', 'POST', `${base}/metrics`])).code, '405');
    const ok = await curl([`${base}/metrics`]);
    assert.equal(ok.code, '200');
    assert.match(ok.body, /^# TYPE pinhole_coordinator_nodes_online gauge$/m);
    // No secret in any label or value: the admin token and the relay's key never appear.
    for (const h of [hosts.coord, hosts.relay, hosts.alpha!]) {
      const text = (await curl([`http://${metricsAt(h)}/metrics`])).body;
      assert.ok(!text.includes(coord.token), 'admin token absent');
      assert.ok(!text.includes(relay.key.publicKey) && !text.includes(relay.key.privateKey), 'relay key absent');
      const self = (await agents.alpha!.status()).self!;
      assert.ok(!text.includes(self.nodeKey) && !text.includes(self.discoKey), 'node keys absent');
    }
  });
});
