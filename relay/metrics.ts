// What the relay shows Prometheus (`pinhole relay --metrics-listen`): read from its counters
// (counters.ts) and queue budget at scrape time. docs/metrics.md lists every metric.
import type { Registry } from 'prom-client';
import { counterFrom, fieldsAs, gaugeFrom, newProcessRegistry, one } from '../metrics/collectors.js';
import type { RelayCounters } from './counters.js';

export interface RelayMetricsSource {
  counters: RelayCounters;
  /** Bytes queued for clients now, and the relay-wide cap (--global-queue-bytes). */
  queue(): { usedBytes: number; capBytes: number };
}

export function createRelayMetrics(src: RelayMetricsSource): Registry {
  const r = newProcessRegistry();
  const c = src.counters;
  gaugeFrom(r, 'pinhole_relay_clients', 'Clients connected now (one per node key)', [], () => one(c.clients));
  counterFrom(r, 'pinhole_relay_clients_accepted_total', 'Clients that proved their node key and were accepted', [], () => one(c.clientsAccepted));
  counterFrom(r, 'pinhole_relay_refused_total', 'Connections refused before relaying anything, by reason', ['reason'], () => fieldsAs('reason', c.refused));
  counterFrom(r, 'pinhole_relay_frames_total', 'Relay frames read from (in) and written to (out) clients, all types', ['direction'],
    () => [[{ direction: 'in' }, c.framesIn], [{ direction: 'out' }, c.framesOut]]);
  counterFrom(r, 'pinhole_relay_bytes_total', 'Bytes read from (in) and written to (out) clients', ['direction'],
    () => [[{ direction: 'in' }, c.bytesIn], [{ direction: 'out' }, c.bytesOut]]);
  counterFrom(r, 'pinhole_relay_packets_forwarded_total', 'Send frames forwarded to a connected destination', [], () => one(c.packetsForwarded));
  counterFrom(r, 'pinhole_relay_drops_total', 'Frames dropped, by reason', ['reason'], () => fieldsAs('reason', c.drops));
  counterFrom(r, 'pinhole_relay_disconnects_total', 'Clients closed by the relay, by reason', ['reason'], () => [
    [{ reason: 'write_timeout' }, c.writeTimeouts], [{ reason: 'oversized' }, c.oversized],
    [{ reason: 'replaced' }, c.replaced], [{ reason: 'idle_timeout' }, c.idleTimeouts],
  ]);
  counterFrom(r, 'pinhole_relay_peer_gone_sent_total', 'Peer-gone notices sent to clients', [], () => one(c.peerGoneSent));
  counterFrom(r, 'pinhole_relay_rate_limit_pauses_total', 'Times a client was paused by its rate limit', [], () => one(c.rateLimitPauses));
  gaugeFrom(r, 'pinhole_relay_queue_bytes', 'Bytes queued for all clients now', [], () => one(src.queue().usedBytes));
  gaugeFrom(r, 'pinhole_relay_queue_capacity_bytes', 'The relay-wide queue cap (--global-queue-bytes)', [], () => one(src.queue().capBytes));
  gaugeFrom(r, 'pinhole_relay_mesh_links', 'Relay mesh links open now: dialled by this relay (out) and from peer relays (in)', ['direction'],
    () => [[{ direction: 'out' }, c.mesh.linksOut], [{ direction: 'in' }, c.mesh.linksIn]]);
  gaugeFrom(r, 'pinhole_relay_mesh_presence', 'Client keys the peer relays announced as connected there', [], () => one(c.mesh.presence));
  counterFrom(r, 'pinhole_relay_mesh_forwarded_total', 'Frames sent to a peer relay (out) / delivered here from one (in)', ['direction'],
    () => [[{ direction: 'out' }, c.mesh.forwardedOut], [{ direction: 'in' }, c.mesh.forwardedIn]]);
  counterFrom(r, 'pinhole_relay_mesh_refused_total', 'Relay mesh connections refused, by reason', ['reason'], () => fieldsAs('reason', c.mesh.refused));
  counterFrom(r, 'pinhole_relay_mesh_drops_total', 'Relay mesh frames dropped, by reason', ['reason'], () => fieldsAs('reason', c.mesh.drops));
  counterFrom(r, 'pinhole_relay_stun_requests_total', 'STUN binding requests received', [], () => one(c.stun.requests));
  counterFrom(r, 'pinhole_relay_stun_dropped_total', 'STUN datagrams not answered, by reason', ['reason'], () => fieldsAs('reason', {
    notStun: c.stun.notStun, malformed: c.stun.malformed, ignored: c.stun.ignored, tooSmall: c.stun.tooSmall, sendErrors: c.stun.sendErrors,
  }));
  return r;
}
