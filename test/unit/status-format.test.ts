// What `pinhole status` prints for a managed node: a relays section, "path: relay NAME", routes
// approved and served, no interface while down, and multicast drops explained.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus } from '../../agent/cli/status-format.js';
import { newDropCounters } from '../../agent/wireguard/counters.js';
import type { AgentStatus } from '../../agent/static/status.js';

function status(state: 'up' | 'down'): AgentStatus {
  return {
    mode: 'managed',
    interface: { name: 'pinhole0', publicKey: 'k', listenPort: 41641, addresses: ['100.64.0.1/32'], mtu: 1280 },
    peers: [{ name: 'b', publicKey: 'pk', overlayIp: '100.64.0.2', path: 'relay', endpoint: null, relay: 'home', latencyMs: 3, rxBytes: 0, txBytes: 0, lastHandshake: null, allowedIps: [], persistentKeepalive: 0 }],
    drops: { ...newDropCounters(), multicast: 4 },
    self: { state, id: 1, name: 'a', ipv4: '100.64.0.1', ipv6: 'fd7a::1', nodeKey: 'nk', discoKey: 'dk', coordinator: 'http://192.0.2.1:8080', connected: true, keyExpiresAt: null, netmapSeq: 1, lastError: null },
    routing: { advertisedRoutes: ['198.18.5.0/24', '198.18.6.0/24'], advertiseExitNode: false, servedRoutes: ['198.18.5.0/24'], acceptRoutes: false, acceptedRoutes: [], exitNode: null, exitNodeAllowLanAccess: false, kernel: null, filter: null, nat: null },
    relays: [{ name: 'home', url: 'ws://192.0.2.2:8443/relay', connected: true, home: true, latencyMs: 2, framesIn: 0, framesOut: 0, sendDrops: 0, refused: null }],
  } as unknown as AgentStatus;
}

test('an up node: relays section, relay path named once, served and pending routes, multicast explained', () => {
  const text = formatStatus(status('up'));
  assert.match(text, /^relays:\n {2}home \(ws:\/\/192\.0\.2\.2:8443\/relay\): connected, home, 2 ms$/m);
  assert.match(text, /^ {2}path: relay home, 3 ms$/m);
  assert.doesNotMatch(text, /relay via relay/);
  assert.match(text, /^ {4}approved and served: 198\.18\.5\.0\/24$/m);
  assert.match(text, /^ {4}awaiting approval: 198\.18\.6\.0\/24$/m);
  assert.match(text, /^interface: pinhole0 \(managed mode\)$/m);
  assert.match(text, /^dropped packets: multicast=4$/m);
  assert.match(text, /MLD reports and router solicitations/);
});

test('a node that is down lists no interface and no drops', () => {
  const text = formatStatus(status('down'));
  assert.doesNotMatch(text, /pinhole0/);
  assert.match(text, /^interface: none \(the tunnel is down: pinhole up brings it back\)$/m);
  assert.doesNotMatch(text, /dropped packets/);
});

test('MagicDNS in one line: where it answers, how the OS uses it, malformed queries counted', () => {
  const counters = { queries: 12, answeredLocally: 9, nxdomain: 1, forwarded: 3, forwardFailed: 0, truncated: 0, malformed: 2, tcpRefused: 0 };
  const up = { ...status('up'), dns: { domain: 'pinhole.internal', address: '100.100.100.100', os: 'resolv.conf', upstreams: ['192.0.2.53'], routes: [], names: 4, counters } } as AgentStatus;
  assert.match(formatStatus(up), /^ {2}dns: pinhole\.internal at 100\.100\.100\.100, OS resolver via resolv\.conf, 4 name\(s\), 12 queries, 2 malformed dropped$/m);
  const off = { ...up, dns: { ...up.dns!, os: 'off' as const, counters: { ...counters, malformed: 0 } } };
  assert.match(formatStatus(off), /^ {2}dns: pinhole\.internal at 100\.100\.100\.100, OS resolver untouched \(--accept-dns=false\), 4 name\(s\), 12 queries$/m);
  const down = { ...status('down'), dns: { ...up.dns!, address: null } } as AgentStatus;
  assert.match(formatStatus(down), /^ {2}dns: pinhole\.internal \(not serving: the tunnel is down\)$/m);
});

test('the port mapping: external address, protocol, lease left; or off, or none with the reason', () => {
  const counters = { mapped: 1, renewals: 3, failures: 0, gatewayRestarts: 0, malformed: 0, announcements: 0 };
  const expiresAt = new Date(Date.now() + 3000_500).toISOString();
  const mapping = {
    protocol: 'pcp' as const, external: '198.51.100.10:41641', internalPort: 41641, gateway: '198.18.1.1', lifetimeSeconds: 7200,
    expiresAt, renewAt: expiresAt, createdAt: expiresAt, renewals: 3,
  };
  const up = (portmap: AgentStatus['portmap']): string => formatStatus({ ...status('up'), portmap });
  assert.match(up({ protocols: ['pcp'], mapping, probe: null, lastError: null, counters }),
    /^ {2}port mapping: 198\.51\.100\.10:41641 by pcp via 198\.18\.1\.1, lease 7200 s \((3000|3001) s left, renewed 3 times\)$/m);
  assert.match(up(null), /^ {2}port mapping: off$/m);
  assert.match(up({ protocols: ['pcp', 'nat-pmp', 'upnp'], mapping: null, probe: null, lastError: 'the gateway 198.18.1.1 offers none of pcp, nat-pmp, upnp', counters }),
    /^ {2}port mapping: none \(the gateway 198\.18\.1\.1 offers none of pcp, nat-pmp, upnp\)$/m);
  assert.doesNotMatch(formatStatus(status('up')), /port mapping/, 'a status without the field (static mode) has no line');
});

test('both NAT kinds and the birthday outcome, one line per peer', () => {
  const withPeer = (over: Partial<AgentStatus['peers'][number]>): string => {
    const st = status('up');
    return formatStatus({ ...st, peers: [{ ...st.peers[0]!, ...over }] });
  };
  assert.match(withPeer({ nat: { self: 'symmetric', peer: 'port-restricted-cone', peerSource: 'reported' }, birthday: { attempts: 1, role: 'hard', outcome: 'direct', ms: 3800, probes: 256 } }),
    /^ {2}nat: this side symmetric, peer port-restricted cone \(reported\); birthday: 1 attempt, direct after 3\.8 s, 256 sockets \(hard side\)$/m);
  assert.match(withPeer({ nat: { self: 'full-cone', peer: 'symmetric', peerSource: 'inferred' }, birthday: { attempts: 2, role: 'easy', outcome: 'gave-up', ms: 10_000, probes: 2000 } }),
    /^ {2}nat: this side full cone, peer symmetric \(inferred\); birthday: 2 attempts, gave up after 10\.0 s, 2000 probes \(easy side\)$/m);
  assert.match(withPeer({ nat: { self: null, peer: null, peerSource: null }, birthday: null }), /^ {2}nat: this side unknown, peer unknown$/m);
  assert.match(withPeer({ nat: { self: 'none', peer: 'udp-blocked', peerSource: 'reported' }, birthday: { attempts: 1, role: 'easy', outcome: 'running' } }),
    /^ {2}nat: this side no NAT, peer UDP blocked \(reported\); birthday: 1 attempt, running \(easy side\)$/m);
  assert.doesNotMatch(formatStatus(status('up')), /nat:/, 'no line without the field (static mode, or down)');
});

test('with several coordinator replicas, the line names the one the stream uses (or tries)', () => {
  const s = status('up');
  assert.match(formatStatus(s), /^ {2}coordinator: http:\/\/192\.0\.2\.1:8080 \(connected\)$/m, 'one URL: nothing added');
  const urls = 'http://192.0.2.1:8080,http://192.0.2.5:8080';
  Object.assign((s as unknown as { self: object }).self, { coordinator: urls, coordinatorConnectedUrl: 'http://192.0.2.5:8080' });
  assert.match(formatStatus(s), /^ {2}coordinator: http:\/\/192\.0\.2\.1:8080,http:\/\/192\.0\.2\.5:8080 \(connected to http:\/\/192\.0\.2\.5:8080\)$/m);
  Object.assign((s as unknown as { self: object }).self, { connected: false });
  assert.match(formatStatus(s), /\(not connected; trying http:\/\/192\.0\.2\.5:8080\)$/m);
});
