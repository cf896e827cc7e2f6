// What the coordinator shows Prometheus (`pinhole coordinator --metrics-listen`): nodes, streams,
// registrations, refusals and netmap fan-out, read from the counters its parts keep at scrape
// time; the fan-out histogram is observed once per netmap flush. docs/metrics.md lists every metric.
import { Histogram, type Registry } from 'prom-client';
import { counterFrom, fieldsAs, gaugeFrom, newProcessRegistry, one, type Labels } from '../metrics/collectors.js';
import type { AdminRefusals } from './admin.js';
import type { ControlChannels } from './control-channels.js';
import type { NetmapHub } from './netmap.js';
import type { RegistrationDeps } from './registration.js';
import type { NodeRegistry } from './registry.js';
import type { StreamServer } from './stream.js';
import type { ControlH2 } from './control-h2.js';
import type { MeshPaths } from './mesh-paths.js';

/** The parts the metrics read; asked at scrape time, so they may be built after the metrics. */
export interface CoordinatorMetricsSource {
  registry(): NodeRegistry;
  streams(): StreamServer;
  netmap(): NetmapHub;
  channels(): ControlChannels;
  /** Control channels over HTTP/2 (null on a TLS port, which does not offer it). */
  controlH2?(): ControlH2 | null;
  registration(): Pick<RegistrationDeps, 'refusals' | 'outcomes'>;
  adminRefusals(): AdminRefusals;
  meshPaths(): MeshPaths;
}

export interface CoordinatorMetrics {
  readonly registry: Registry;
  /** One netmap flush: ms from its first change queued to its last delta handed to a socket. */
  observeFanOut(ms: number, recipients: number): void;
}

const STATUS_OUTCOME: Record<number, string> = {
  400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 409: 'conflict', 429: 'rate_limited',
};

export function createCoordinatorMetrics(src: CoordinatorMetricsSource): CoordinatorMetrics {
  const r = newProcessRegistry();
  const countNodes = (): { total: number; online: number } => {
    const reg = src.registry();
    let online = 0;
    for (const n of reg.all()) if (n.online) online++;
    return { total: reg.size, online };
  };
  gaugeFrom(r, 'pinhole_coordinator_nodes', 'Registered nodes', [], () => one(countNodes().total));
  gaugeFrom(r, 'pinhole_coordinator_nodes_online', 'Nodes with a netmap stream open now', [], () => one(countNodes().online));
  gaugeFrom(r, 'pinhole_coordinator_streams', 'Authenticated netmap streams open now', [], () => one(src.streams().streamCount));
  gaugeFrom(r, 'pinhole_coordinator_control_unauthenticated', 'Control channels open that have not yet authenticated', [], () => one(src.channels().unauthenticatedCount));
  counterFrom(r, 'pinhole_coordinator_control_channels_opened_total', 'Control channels opened (Noise handshake done)', [], () => one(src.channels().stats.opened));
  counterFrom(r, 'pinhole_coordinator_control_h2_connections_total', 'HTTP/2 connections taken on the plain port (each carries up to 1,024 control channels)', [], () => one(src.controlH2?.()?.stats.connections ?? 0));
  counterFrom(r, 'pinhole_coordinator_streams_accepted_total', 'Netmap streams accepted after a valid hello', [], () => one(src.streams().stats.accepted));
  counterFrom(r, 'pinhole_coordinator_registrations_total', 'Registrations by outcome (created, updated, or the refusal)', ['outcome'], () => {
    const o = src.registration().outcomes;
    const out: Array<readonly [Labels, number]> = [[{ outcome: 'created' }, o.created], [{ outcome: 'updated' }, o.updated]];
    const refused = new Map<string, number>();
    for (const [status, n] of o.refused) {
      const name = STATUS_OUTCOME[status] ?? 'other';
      refused.set(name, (refused.get(name) ?? 0) + n);
    }
    for (const [outcome, n] of refused) out.push([{ outcome }, n]);
    return out;
  });
  counterFrom(r, 'pinhole_coordinator_identity_conflicts_total',
    'Registrations retried because another coordinator on the same database took the id, name or address first', [], () => one(src.registry().identityConflicts));
  counterFrom(r, 'pinhole_coordinator_refusals_total', 'Callers refused, by where (stage) and why (reason)', ['stage', 'reason'], () => {
    const ch = src.channels().stats;
    const h2 = src.controlH2?.()?.stats;
    const st = src.streams().stats;
    return [
      ...fieldsAs('reason', { badHandshake: ch.badHandshake, keyMismatch: ch.keyMismatch, rateLimited: ch.rateLimited,
        unauthenticatedCap: ch.unauthenticatedCap, unauthenticatedTimeout: ch.unauthenticatedTimeout, pendingCap: ch.pendingCap }, { stage: 'control' }),
      ...fieldsAs('reason', { h2NotControl: h2?.notControl ?? 0, h2ProtocolError: h2?.sessionErrors ?? 0 }, { stage: 'control' }),
      ...fieldsAs('reason', src.registration().refusals, { stage: 'register' }),
      ...fieldsAs('reason', { refused: st.refused, malformed: st.malformed, timedOut: st.timedOut }, { stage: 'stream' }),
      ...fieldsAs('reason', { ...src.adminRefusals() }, { stage: 'admin' }),
    ];
  });
  counterFrom(r, 'pinhole_coordinator_netmap_messages_total', 'Netmap messages sent: full netmaps and deltas', ['kind'], () => {
    const s = src.netmap().stats;
    return [[{ kind: 'netmap' }, s.netmaps], [{ kind: 'delta' }, s.deltas]];
  });
  counterFrom(r, 'pinhole_coordinator_netmap_bytes_total', 'Netmap bytes sent: full netmaps and deltas', ['kind'], () => {
    const s = src.netmap().stats;
    return [[{ kind: 'netmap' }, s.netmapBytes], [{ kind: 'delta' }, s.deltaBytes]];
  });
  counterFrom(r, 'pinhole_coordinator_netmap_skipped_behind_total', 'Deltas held back from recipients too far behind to take more', [], () => one(src.netmap().stats.skippedBehind));
  counterFrom(r, 'pinhole_coordinator_path_reports_total', 'Agents\' path reports: stored, or dropped as too frequent', ['outcome'], () => {
    const s = src.meshPaths().stats;
    return [[{ outcome: 'stored' }, s.reports], [{ outcome: 'too_frequent' }, s.tooFrequent]];
  });
  counterFrom(r, 'pinhole_coordinator_path_report_unknown_peers_total', 'Peers in path reports that are no node (or the reporter itself), left out', [],
    () => one(src.meshPaths().stats.unknownPeers));
  const fanOut = new Histogram({
    name: 'pinhole_coordinator_netmap_fanout_seconds',
    help: 'Per netmap flush: from its first change queued to the last recipient\'s delta handed to its socket',
    buckets: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5],
    registers: [r],
  });
  const recipients = new Histogram({
    name: 'pinhole_coordinator_netmap_fanout_recipients',
    help: 'Per netmap flush: how many nodes got a delta',
    buckets: [1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000],
    registers: [r],
  });
  return {
    registry: r,
    observeFanOut(ms, n) {
      fanOut.observe(ms / 1000);
      recipients.observe(n);
    },
  };
}
