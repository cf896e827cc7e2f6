// Human-readable `pinhole status`, in the spirit of `wg show` (plus, for a managed node, who it
// is and whether its coordinator is connected).
import type { AgentStatus, ManagedSelfJson, PeerStatusJson } from '../static/status.js';
import type { RoutingStatusJson } from '../daemon/node-routing.js';
import { natKindName, type NatKind } from '../netcheck/nat-type.js';

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${u === 0 ? v : v.toFixed(2)} ${units[u]}`;
}

function ago(iso: string | null): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? `${s} s ago` : `${Math.floor(s / 60)} min ${s % 60} s ago`;
}

function selfLines(s: ManagedSelfJson): string[] {
  if (s.state === 'logged-out') return ['node: not registered (pinhole up --coordinator URL --auth-key KEY)', `  node key: ${s.nodeKey}`];
  // With several replicas, which one the stream uses (or tries).
  const via = s.coordinatorConnectedUrl && s.coordinator?.includes(',') ? ` to ${s.coordinatorConnectedUrl}` : '';
  const state = s.coordinatorKeyMismatch ? 'KEY MISMATCH: not the coordinator this node registered with'
    : s.connected ? `connected${via}` : `not connected${via ? `; trying ${s.coordinatorConnectedUrl}` : ''}`;
  const lines = [
    `node: ${s.name} (${s.ipv4}, ${s.ipv6}) — ${s.state}`,
    `  coordinator: ${s.coordinator} (${state})` + (s.coordinatorKey ? `, key ${s.coordinatorKey}` : ''),
    `  node key: ${s.nodeKey}`,
  ];
  if (s.lastError) lines.push(`  last error: ${s.lastError}`);
  return lines;
}

/** Routes offered and used, and the filter, when any of it is on. */
function routingLines(r: RoutingStatusJson): string[] {
  const lines: string[] = [];
  const offered = [...r.advertisedRoutes, ...(r.advertiseExitNode ? ['0.0.0.0/0', '::/0'] : [])];
  if (offered.length > 0) {
    const pending = offered.filter((x) => !r.servedRoutes.includes(x));
    lines.push(`  advertises: ${offered.join(', ')}`);
    lines.push(`    approved and served: ${r.servedRoutes.join(', ') || 'none'}`);
    if (pending.length > 0) lines.push(`    awaiting approval: ${pending.join(', ')}`);
  }
  if (r.acceptRoutes) lines.push(`  accepts routes: ${r.acceptedRoutes.join(', ') || 'none offered'}`);
  if (r.exitNode) lines.push(`  exit node: ${r.exitNode.name} (${r.exitNode.state})${r.exitNodeAllowLanAccess ? ', LAN direct' : ''}`);
  if (r.filter) lines.push(`  packet filter: ${r.filter.rules} rule(s), ${r.filter.flows} flow(s)`);
  const refused = r.nat ? Object.entries(r.nat.exitPolicy.refused).filter(([, n]) => n > 0) : [];
  if (refused.length > 0) lines.push(`  refused as not the internet: ${refused.map(([k, n]) => `${k}=${n}`).join(' ')}`);
  return lines;
}

/** MagicDNS in one line: where it answers, how the OS uses it, and what it knows. */
function dnsLine(d: NonNullable<AgentStatus['dns']>): string {
  if (d.address === null) return `  dns: ${d.domain} (not serving: the tunnel is down)`;
  const os = d.os === 'off' ? 'OS resolver untouched (--accept-dns=false)' : `OS resolver via ${d.os}`;
  const bad = d.counters.malformed > 0 ? `, ${d.counters.malformed} malformed dropped` : '';
  return `  dns: ${d.domain} at ${d.address}, ${os}, ${d.names} name(s), ${d.counters.queries} queries${bad}`;
}

/** A relays section: one line per relay, how this node uses it or why it refuses it. */
function relayLines(relays: NonNullable<AgentStatus['relays']>): string[] {
  return ['relays:', ...relays.map((r) => {
    if (r.refused) return `  ${r.name} (${r.url}): refused (${r.refused})`;
    const state = [r.connected ? 'connected' : 'not connected', ...(r.home ? ['home'] : []), ...(r.latencyMs !== null ? [`${Math.round(r.latencyMs)} ms`] : [])];
    return `  ${r.name} (${r.url}): ${state.join(', ')}`;
  })];
}

function peerLines(p: PeerStatusJson, managed: boolean): string[] {
  const lines: string[] = [];
  if (managed) {
    const online = p.online === undefined ? '' : p.online ? '' : ', offline';
    lines.push(`peer: ${p.name ?? p.publicKey} (${p.overlayIp ?? '-'}${online})`);
    lines.push(`  public key: ${p.publicKey}`);
  } else {
    lines.push(`peer: ${p.name ?? p.publicKey}${p.name ? ` (${p.publicKey})` : ''}`);
  }
  const via = p.path === 'relay' ? (p.relay ? ` ${p.relay}` : '') : p.endpoint ? ` via ${p.endpoint}` : '';
  const latency = p.latencyMs !== null && p.latencyMs !== undefined ? `, ${p.latencyMs} ms` : '';
  lines.push(`  path: ${p.path}${via}${latency}`);
  if (p.whyNotDirect) lines.push(`  why not direct: ${p.whyNotDirect}${triedText(p.tried)}`);
  const nat = natLine(p);
  if (nat) lines.push(nat);
  if (!managed) lines.push(`  allowed ips: ${p.allowedIps.join(', ')}`);
  lines.push(`  latest handshake: ${ago(p.lastHandshake)}`);
  lines.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
  return lines;
}

const natName = (k: NatKind | null): string => (k === null ? 'unknown' : natKindName(k));

/** "  nat: this side symmetric, peer port-restricted cone (reported); birthday: 1 attempt, direct after 3.8 s" */
function natLine(p: PeerStatusJson): string | null {
  if (!p.nat) return null;
  const { self, peer, peerSource } = p.nat;
  const parts = [`  nat: this side ${natName(self)}, peer ${natName(peer)}${peerSource ? ` (${peerSource})` : ''}`];
  const b = p.birthday;
  if (b) {
    const secs = b.ms !== undefined ? ` after ${(b.ms / 1000).toFixed(1)} s` : '';
    const probes = b.probes !== undefined ? `, ${b.probes} ${b.role === 'hard' ? 'sockets' : 'probes'}` : '';
    const outcome = b.outcome === 'direct' ? `direct${secs}${probes}` : b.outcome === 'gave-up' ? `gave up${secs}${probes}` : b.outcome ?? '';
    parts.push(`birthday: ${b.attempts} attempt${b.attempts === 1 ? '' : 's'}${outcome ? `, ${outcome}` : ''}${b.role ? ` (${b.role} side)` : ''}`);
  }
  return parts.join('; ');
}

/** "; tried 3 candidates, 12 pings, 0 pongs" (status keeps it to the one line). */
function triedText(t: PeerStatusJson['tried']): string {
  return t ? `; tried ${t.candidates} candidate${t.candidates === 1 ? '' : 's'}, ${t.pingsSent} ping${t.pingsSent === 1 ? '' : 's'}, ${t.pongsReceived} pong${t.pongsReceived === 1 ? '' : 's'}` : '';
}

export function formatStatus(st: AgentStatus): string {
  const lines: string[] = [];
  const managed = st.mode === 'managed';
  if (st.self) lines.push(...selfLines(st.self), ...(st.routing ? routingLines(st.routing) : []));
  if (st.self && st.dns) lines.push(dnsLine(st.dns));
  if (st.relays && st.relays.length > 0) lines.push('', ...relayLines(st.relays));
  if (st.self || (st.relays && st.relays.length > 0)) lines.push('');
  // A managed node that is down or logged out has no interface: say so instead of listing one.
  const tunnelUp = !st.self || st.self.state === 'up';
  const i = st.interface;
  if (tunnelUp) {
    lines.push(`interface: ${i.name} (${st.mode} mode)`);
    lines.push(`  public key: ${i.publicKey}`);
    lines.push(`  listening port: ${i.listenPort}`);
    lines.push(`  addresses: ${i.addresses.join(', ') || '(none)'}  mtu: ${i.mtu}`);
    if (st.portmap !== undefined) lines.push(`  ${portmapLine(st.portmap, Date.now())}`);
    const b = st.birthday;
    if (b && (b.attempts ?? 0) > 0) lines.push(`  birthday probing: ${b.attempts} attempts, ${b.successes} direct, ${b.packetsSent} packets sent, ${b.socketsOpened} sockets opened`);
  } else {
    lines.push(`interface: none (the tunnel is ${st.self!.state === 'down' ? 'down: pinhole up brings it back' : 'not up'})`);
  }
  for (const p of st.peers) {
    lines.push('');
    lines.push(...peerLines(p, managed));
  }
  if (tunnelUp) {
    const drops = Object.entries(st.drops).filter(([, n]) => n > 0);
    lines.push('');
    lines.push(`dropped packets: ${drops.length === 0 ? 'none' : drops.map(([k, n]) => `${k}=${n}`).join(' ')}`);
    if (st.drops.multicast > 0) lines.push('  (multicast: the kernel\'s own IPv6 MLD reports and router solicitations on the interface; peers are unicast only)');
  }
  return lines.join('\n');
}

/** The gateway's port mapping and its lease, or why there is none. */
function portmapLine(p: AgentStatus['portmap'], now: number): string {
  if (p === null || p === undefined) return 'port mapping: off';
  const m = p.mapping;
  if (!m) return `port mapping: none${p.lastError ? ` (${p.lastError})` : ''}`;
  const left = Math.max(0, Math.round((Date.parse(m.expiresAt) - now) / 1000));
  return `port mapping: ${m.external} by ${m.protocol} via ${m.gateway}, lease ${m.lifetimeSeconds} s (${left} s left, renewed ${m.renewals} times)`;
}
