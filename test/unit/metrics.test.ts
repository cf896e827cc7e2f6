// The metrics of agent, coordinator and relay: docs/metrics.md lists exactly the metrics each
// registry holds (name, type, labels), every name is a valid Prometheus name with its process's
// prefix, collectors report what the counters hold, and the --metrics-listen server answers GET
// /metrics only, with a bound on connections.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import fc from 'fast-check';
import type { Registry } from 'prom-client';
import { createAgentMetrics } from '../../agent/metrics.js';
import { buildManagedStatus } from '../../agent/daemon/managed-status.js';
import type { AgentStatus } from '../../agent/static/status.js';
import type { Peer as NetmapPeer } from '../../proto/control/schemas.js';
import { createCoordinatorMetrics, type CoordinatorMetricsSource } from '../../coordinator/metrics.js';
import { createRelayCounters } from '../../relay/counters.js';
import { createRelayMetrics } from '../../relay/metrics.js';
import { MAX_METRICS_CONNECTIONS, MetricsListenError, parseMetricsListen, startMetricsServer } from '../../metrics/http-server.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';

interface DocRow { name: string; type: string; labels: string[] }

/** The metric tables of docs/metrics.md, by section ("Agent", "Coordinator", "Relay", "Every process"). */
function docTables(): Map<string, DocRow[]> {
  const text = readFileSync(join(REPO_ROOT, 'docs', 'metrics.md'), 'utf8');
  const out = new Map<string, DocRow[]>();
  let section = '';
  for (const line of text.split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) { section = h[1]!.trim(); continue; }
    const cells = /^\|(.*)\|$/.exec(line.trim())?.[1]!.split('|').map((c) => c.trim());
    if (!cells || cells[0] === 'name' || /^-+$/.test(cells[0]!)) continue;
    const [name, type, labels] = cells;
    const rows = out.get(section) ?? [];
    rows.push({ name: name!, type: type!, labels: labels ? labels.split(',').map((l) => l.trim()).sort() : [] });
    out.set(section, rows);
  }
  return out;
}

const unused = (): never => { throw new Error('not read in this test'); };

function registries(): Record<string, Registry> {
  return {
    Agent: createAgentMetrics({ status: unused, netcheck: unused }).registry,
    Coordinator: createCoordinatorMetrics({} as CoordinatorMetricsSource).registry,
    Relay: createRelayMetrics({ counters: createRelayCounters(), queue: unused }),
  };
}

function rowsOf(r: Registry): DocRow[] {
  return r.getMetricsAsArray().map((m) => {
    const metric = m as unknown as { name: string; type: string; labelNames?: string[] };
    return { name: metric.name, type: metric.type, labels: [...(metric.labelNames ?? [])].sort() };
  });
}

const byName = (rows: DocRow[]) => new Map(rows.map((r) => [r.name, r]));

describe('metric names and docs/metrics.md', () => {
  const docs = docTables();
  const common = docs.get('Every process') ?? [];

  test('the docs have a table for each process and one for the process metrics', () => {
    for (const s of ['Agent', 'Coordinator', 'Relay', 'Every process']) assert.ok((docs.get(s) ?? []).length > 0, `section ${s}`);
  });

  for (const [section, registry] of Object.entries(registries())) {
    test(`${section}: every metric is documented with its type and labels, and every documented one exists`, () => {
      const actual = byName(rowsOf(registry));
      const documented = byName([...(docs.get(section) ?? []), ...common]);
      assert.deepEqual([...actual.keys()].filter((n) => !documented.has(n)), [], 'in code, missing from docs/metrics.md');
      assert.deepEqual([...documented.keys()].filter((n) => !actual.has(n)), [], 'in docs/metrics.md, missing from code');
      for (const [name, row] of actual) assert.deepEqual(documented.get(name), row, name);
    });

    test(`${section}: names are valid, prefixed by their process, counters end in _total, no label can hold a secret`, () => {
      for (const row of rowsOf(registry)) {
        assert.match(row.name, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/, row.name);
        for (const l of row.labels) {
          assert.match(l, /^[a-zA-Z_][a-zA-Z0-9_]*$/, `${row.name} label ${l}`);
          assert.doesNotMatch(l, /key|token|secret|auth/i, `${row.name} label ${l}`);
        }
        if (row.type === 'counter') assert.match(row.name, /_total$/, row.name);
        if (row.name.startsWith('process_') || row.name.startsWith('nodejs_')) continue;
        const prefix = section === 'Agent' ? 'pinhole_' : `pinhole_${section.toLowerCase()}_`;
        assert.ok(row.name.startsWith(prefix), `${row.name} starts with ${prefix}`);
        if (section === 'Agent') assert.doesNotMatch(row.name, /^pinhole_(relay|coordinator)_/, `${row.name}: the other processes' prefixes`);
      }
    });
  }
});

/** The value of one sample line in the text format, e.g. line(text, 'pinhole_relay_clients'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('collectors read the counters at scrape time', () => {
  test('relay: clients, bytes, drops and queue depth as the counters hold them now', async () => {
    const counters = createRelayCounters();
    let used = 0;
    const registry = createRelayMetrics({ counters, queue: () => ({ usedBytes: used, capBytes: 1000 }) });
    assert.equal(sample(await registry.metrics(), 'pinhole_relay_clients'), 0);
    counters.clients = 3;
    counters.bytesIn = 12345;
    counters.drops.queueOverflow = 7;
    counters.stun.tooSmall = 2;
    used = 512;
    const text = await registry.metrics();
    assert.equal(sample(text, 'pinhole_relay_clients'), 3);
    assert.equal(sample(text, 'pinhole_relay_bytes_total{direction="in"}'), 12345);
    assert.equal(sample(text, 'pinhole_relay_drops_total{reason="queue_overflow"}'), 7);
    assert.equal(sample(text, 'pinhole_relay_stun_dropped_total{reason="too_small"}'), 2);
    assert.equal(sample(text, 'pinhole_relay_queue_bytes'), 512);
    assert.equal(sample(text, 'pinhole_relay_queue_capacity_bytes'), 1000);
    assert.ok(sample(text, 'process_cpu_seconds_total')! > 0, 'process metrics in the same registry');
  });

  test('agent: per-peer path, labelled by name and overlay address (never a key); path events once each', async () => {
    const nodeKey = Buffer.alloc(32, 7).toString('base64');
    const peer = {
      id: 2, name: 'beta', nodeKey, discoKey: Buffer.alloc(32, 8).toString('base64'), ipv4: '100.64.0.2', ipv6: 'fd7a:1:2::2',
      endpoints: [], homeRelay: null, online: true,
    };
    const status = (): AgentStatus => buildManagedStatus({
      self: {
        state: 'down', id: 1, name: 'alpha', ipv4: '100.64.0.1', ipv6: null, nodeKey: Buffer.alloc(32, 1).toString('base64'),
        discoKey: Buffer.alloc(32, 2).toString('base64'), coordinator: null, connected: false, keyExpiresAt: null, netmapSeq: 1, lastError: null,
      },
      control: { connectedSince: null, attempts: 0, netmaps: 1, deltas: 0, malformed: 0, endpoints: [] },
      tunName: 'pinhole0', mtu: 1280, tunnel: null, addresses: [],
      netmapPeers: [peer as unknown as NetmapPeer],
    });
    const metrics = createAgentMetrics({ status, netcheck: () => null });
    metrics.onPathEvent({ kind: 'direct', seconds: 0.4 });
    metrics.onPathEvent({ kind: 'first-packet', seconds: 0.2 });
    metrics.onPathEvent({ kind: 'first-packet', seconds: 3 });
    const text = await metrics.registry.metrics();
    assert.equal(sample(text, 'pinhole_peer_path{peer="beta",ip="100.64.0.2",path="none"}'), 1);
    assert.equal(sample(text, 'pinhole_peer_path{peer="beta",ip="100.64.0.2",path="direct"}'), 0);
    assert.equal(sample(text, 'pinhole_peer_online{peer="beta",ip="100.64.0.2"}'), 1);
    assert.equal(sample(text, 'pinhole_node_up'), 0);
    assert.equal(sample(text, 'pinhole_peers'), 1);
    assert.equal(sample(text, 'pinhole_nat_type{mapping="unknown",filtering="unknown"}'), 1);
    assert.equal(sample(text, 'pinhole_portmap_active'), 0);
    assert.equal(sample(text, 'pinhole_peer_time_to_direct_seconds_count'), 1);
    assert.equal(sample(text, 'pinhole_peer_time_to_first_packet_seconds_count'), 2);
    assert.equal(sample(text, 'pinhole_peer_time_to_first_packet_seconds_bucket{le="0.25"}'), 1);
    assert.equal(text.match(/^pinhole_peer_last_handshake_age_seconds\{/m), null, 'no handshake yet: no series');
    assert.ok(!text.includes(nodeKey), 'the peer\'s key is nowhere');
  });

  test('coordinator: registrations by outcome, refusals by stage and reason, fan-out histogram, path reports', async () => {
    const outcomes = { created: 2, updated: 1, refused: new Map([[401, 3], [429, 1], [418, 1]]) };
    const m = createCoordinatorMetrics({
      registry: () => ({ size: 3, all: () => [{ online: true }, { online: false }, { online: true }].values() }) as never,
      streams: () => ({ streamCount: 2, stats: { accepted: 4, refused: 1, malformed: 0, timedOut: 0 } }) as never,
      netmap: () => ({ stats: { flushes: 1, deltas: 5, deltaBytes: 500, netmaps: 3, netmapBytes: 3000, skippedBehind: 0 } }) as never,
      channels: () => ({ unauthenticatedCount: 0, stats: { opened: 9, badHandshake: 0, keyMismatch: 2, rateLimited: 0, unauthenticatedCap: 0, unauthenticatedTimeout: 0, pendingCap: 0 } }) as never,
      registration: () => ({ refusals: { registerRate: 1, wrongNodeKey: 0 }, outcomes }),
      adminRefusals: () => ({ relayCredential: 0, disabled: 0, missingToken: 0, badToken: 4 }),
      meshPaths: () => ({ stats: { reports: 7, tooFrequent: 2, unknownPeers: 1 } }) as never,
    });
    m.observeFanOut(30, 2);
    const text = await m.registry.metrics();
    assert.equal(sample(text, 'pinhole_coordinator_nodes'), 3);
    assert.equal(sample(text, 'pinhole_coordinator_nodes_online'), 2);
    assert.equal(sample(text, 'pinhole_coordinator_registrations_total{outcome="created"}'), 2);
    assert.equal(sample(text, 'pinhole_coordinator_registrations_total{outcome="unauthorized"}'), 3);
    assert.equal(sample(text, 'pinhole_coordinator_registrations_total{outcome="rate_limited"}'), 1);
    assert.equal(sample(text, 'pinhole_coordinator_registrations_total{outcome="other"}'), 1);
    assert.equal(sample(text, 'pinhole_coordinator_refusals_total{stage="control",reason="key_mismatch"}'), 2);
    assert.equal(sample(text, 'pinhole_coordinator_refusals_total{stage="admin",reason="bad_token"}'), 4);
    assert.equal(sample(text, 'pinhole_coordinator_refusals_total{stage="register",reason="register_rate"}'), 1);
    assert.equal(sample(text, 'pinhole_coordinator_netmap_fanout_seconds_bucket{le="0.05"}'), 1);
    assert.equal(sample(text, 'pinhole_coordinator_netmap_fanout_seconds_bucket{le="0.025"}'), 0);
    assert.equal(sample(text, 'pinhole_coordinator_path_reports_total{outcome="stored"}'), 7);
    assert.equal(sample(text, 'pinhole_coordinator_path_reports_total{outcome="too_frequent"}'), 2);
    assert.equal(sample(text, 'pinhole_coordinator_path_report_unknown_peers_total'), 1);
  });
});

describe('the --metrics-listen server', () => {
  test('parseMetricsListen: HOST:PORT forms accepted, anything else a MetricsListenError naming the flag', () => {
    assert.deepEqual(parseMetricsListen('127.0.0.1:9464'), { host: '127.0.0.1', port: 9464 });
    assert.deepEqual(parseMetricsListen('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseMetricsListen('localhost:80'), { host: 'localhost', port: 80 });
    for (const bad of ['', '9464', '127.0.0.1', '127.0.0.1:65536', 'example.com:80', '::1:80', '127.0.0.1:-1']) {
      assert.throws(() => parseMetricsListen(bad), (e: Error) => e instanceof MetricsListenError && e.message.startsWith('--metrics-listen: '), bad);
    }
    fc.assert(fc.property(fc.string(), (s) => {
      try {
        const r = parseMetricsListen(s);
        return Number.isInteger(r.port) && r.port >= 0 && r.port <= 65535 && r.host.length > 0;
      } catch (e) {
        return e instanceof MetricsListenError;
      }
    }), { numRuns: 2000 });
  });

  test('GET /metrics answers the text format; other paths 404, other methods 405; connections are bounded', async () => {
    const counters = createRelayCounters();
    counters.clients = 5;
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0, registry: createRelayMetrics({ counters, queue: () => ({ usedBytes: 0, capBytes: 1 }) }) });
    const sockets: Socket[] = [];
    try {
      const base = `http://127.0.0.1:${server.port}`;
      assert.equal(server.url, `${base}/metrics`);
      const ok = await fetch(`${base}/metrics`);
      assert.equal(ok.status, 200);
      assert.match(ok.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      assert.equal(sample(await ok.text(), 'pinhole_relay_clients'), 5);
      assert.equal((await fetch(`${base}/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics/`)).status, 404);
      assert.equal((await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })).status, 405);
      assert.equal((await fetch(`${base}/metrics`, { method: 'HEAD' })).status, 405);

      // Fill every slot with idle connections: the next one is closed unanswered.
      for (let i = 0; i < MAX_METRICS_CONNECTIONS; i++) {
        const s = connect(server.port, '127.0.0.1');
        await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
        sockets.push(s);
      }
      await new Promise((r) => setTimeout(r, 50));
      const extra = connect(server.port, '127.0.0.1');
      extra.on('error', () => undefined);
      extra.write('GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n');
      const got: Buffer[] = [];
      extra.on('data', (d: Buffer) => got.push(d));
      await new Promise((resolve) => extra.once('close', resolve));
      assert.equal(Buffer.concat(got).length, 0, 'the connection over the bound got no answer');
      for (const s of sockets.splice(0)) s.destroy();
      await new Promise((r) => setTimeout(r, 50));
      assert.equal((await fetch(`${base}/metrics`)).status, 200, 'served again once slots are free');
    } finally {
      for (const s of sockets) s.destroy();
      await server.close();
    }
  });

  test('a taken port: a one-line MetricsListenError', async () => {
    const registry = createRelayMetrics({ counters: createRelayCounters(), queue: () => ({ usedBytes: 0, capBytes: 1 }) });
    const first = await startMetricsServer({ host: '127.0.0.1', port: 0, registry });
    try {
      await assert.rejects(startMetricsServer({ host: '127.0.0.1', port: first.port, registry }),
        (e: Error) => e instanceof MetricsListenError && e.message === `--metrics-listen: cannot listen on 127.0.0.1:${first.port}: address in use`);
    } finally {
      await first.close();
    }
  });
});
