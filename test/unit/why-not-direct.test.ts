// "Why not direct": the one-line reason per peer, from what happened (candidates, pings and pongs,
// a lost path, the relay, forced relay, UDP blocked, the NAT types); PeerPath's counters behind
// it; netcheck's NAT type in classic names; and `pinhole status` printing it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { whyNotDirect, LOST_RECENTLY_MS, MAX_REASON_CHARS, type PathFacts } from '../../agent/magicsock/why-not-direct.js';
import { ACTIVE_MS, PeerPath, PONG_TRUST_MS } from '../../agent/magicsock/peer-path.js';
import { natTypeOf } from '../../agent/netcheck/nat-type.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';
import { formatStatus } from '../../agent/cli/status-format.js';
import { newDropCounters } from '../../agent/wireguard/counters.js';
import type { AgentStatus } from '../../agent/static/status.js';
import { DiscoPeer } from '../../agent/magicsock/disco-peer.js';
import type { Peer } from '../../agent/wireguard/peer.js';

const base: PathFacts = {
  path: 'relay', forceRelay: false, udpBlocked: false, selfNat: null, peerNat: null, candidates: 2, refused: [], netmapEndpoints: 2,
  pingsSent: 0, pongsReceived: 0, unansweredMs: null, lostAgoMs: null, relay: 'lab', relayDown: false, active: true, peerOnline: true,
};
const why = (f: Partial<PathFacts>): string | null => whyNotDirect({ ...base, ...f });

test('a direct path has no reason', () => {
  assert.equal(why({ path: 'direct', forceRelay: true }), null);
});

test('forced relay and UDP blocked here come first: probing cannot help', () => {
  assert.equal(why({ forceRelay: true, unansweredMs: 9000 }), 'forced to relay (--force-relay / PINHOLE_FORCE_RELAY)');
  assert.equal(why({ udpBlocked: true, unansweredMs: 9000 }), 'UDP blocked here (netcheck: no STUN server answers over UDP)');
});

test('a peer the coordinator sees offline is said to be offline, unless it answered pings (the coordinator may be the one that is away)', () => {
  assert.equal(why({ peerOnline: false, unansweredMs: 9000 }), 'the peer is offline (the coordinator has no stream from it)');
  assert.match(why({ peerOnline: false, pongsReceived: 3, unansweredMs: 9000 })!, /^pings to 2 candidates unanswered/);
});

test('no candidates: none from the coordinator yet, or all filtered (with the filter\'s reasons, once each)', () => {
  assert.equal(why({ candidates: 0, netmapEndpoints: 0 }), 'no candidates from the coordinator yet');
  assert.equal(why({ candidates: 0, netmapEndpoints: 3, refused: ['loopback', 'overlay', 'loopback'] }), 'the peer\'s endpoints are all filtered (loopback, overlay)');
});

test('unanswered pings: the count, the time, and what the NAT types suggest', () => {
  assert.equal(why({ unansweredMs: 12_400, selfNat: 'symmetric', peerNat: 'symmetric' }), 'pings to 2 candidates unanswered for 12 s (both sides behind symmetric NAT)');
  assert.match(why({ unansweredMs: 5000, selfNat: 'symmetric' })!, /^pings to 2 candidates unanswered for 5 s \(this side behind symmetric NAT; the peer's symmetric or port-restricted\?\)$/);
  assert.match(why({ unansweredMs: 5000, selfNat: 'symmetric', peerNat: 'port-restricted-cone' })!, /this side's symmetric NAT vs the peer's port-restricted cone/);
  assert.match(why({ unansweredMs: 5000, selfNat: 'full-cone' })!, /this side full cone: the peer's NAT symmetric, or UDP filtered there\?/);
  // The same names as `pinhole status` and netcheck (natKindName), "no NAT" included.
  assert.match(why({ unansweredMs: 5000, selfNat: 'symmetric', peerNat: 'none' })!, /this side's symmetric NAT vs the peer with no NAT/);
  assert.match(why({ unansweredMs: 5000, peerNat: 'symmetric' })!, /the peer behind symmetric NAT/);
  assert.match(why({ unansweredMs: 5000, candidates: 1 })!, /^pings to 1 candidate unanswered for 5 s \(.*pinhole netcheck/);
});

test('a direct path lost recently is re-probing; later it is plain unanswered pings', () => {
  assert.equal(why({ lostAgoMs: 3200, unansweredMs: 3000 }), 'direct path lost 3 s ago, re-probing 2 candidates');
  assert.match(why({ lostAgoMs: LOST_RECENTLY_MS + 1, unansweredMs: LOST_RECENTLY_MS })!, /^pings to 2 candidates unanswered for 30 s/);
});

test('nothing sent yet: probing when active, idle otherwise', () => {
  assert.equal(why({}), 'probing 2 candidates');
  assert.equal(why({ active: false }), 'idle: 2 candidates probed when traffic flows');
});

test('no path at all: the relay\'s state, then the direct reason', () => {
  assert.equal(why({ path: 'none', relayDown: true, unansweredMs: 4000, selfNat: 'symmetric', peerNat: 'symmetric' }),
    'relay lab down and no direct path: pings to 2 candidates unanswered for 4 s (both sides behind symmetric NAT)');
  assert.equal(why({ path: 'none', relay: null, candidates: 0, netmapEndpoints: 0 }), 'no relay and no direct path: no candidates from the coordinator yet');
});

test('the reason stays within the wire bound', () => {
  const long = why({ candidates: 0, netmapEndpoints: 40, refused: Array.from({ length: 40 }, (_, i) => `reason-${i}`), path: 'none', relayDown: true })!;
  assert.equal(long.length, MAX_REASON_CHARS);
  assert.ok(long.endsWith('…'));
});

const ep = (ip: string, port = 41641) => ({ text: `${ip}:${port}`, packed: encodePackedAddr({ address: ip, port }) });

test('PeerPath counts pings and pongs, and times unanswered pings and a lost path', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1'), ep('198.18.1.2')], 0);
  const [a, b] = [...p.candidates.values()];
  p.notePingSent(a!, 1000);
  p.notePingSent(b!, 1000);
  p.notePingSent(a!, 1400);
  assert.deepEqual([p.pingsSent, p.pongsReceived, p.unansweredSince], [3, 0, 1000]);
  p.onPong(a!, 4, 1404);
  assert.deepEqual([p.pongsReceived, p.unansweredSince, p.lostAt], [1, 0, 0]);
  assert.equal(p.direct(1404), a);
  // No pong for longer than the trust window: lost at that moment.
  const t = 1404 + PONG_TRUST_MS + 1;
  assert.equal(p.direct(t), null);
  assert.equal(p.lostAt, t);
  p.notePingSent(a!, t + 10);
  assert.equal(p.unansweredSince, t + 10);
  // A ping after a long pause starts a new attempt: "unanswered for" counts from it.
  p.notePingSent(a!, t + 10 + ACTIVE_MS + 1);
  assert.equal(p.unansweredSince, t + 10 + ACTIVE_MS + 1);
  p.onPong(a!, 4, t + ACTIVE_MS + 20);
  assert.equal(p.lostAt, 0, 'direct again: nothing lost');
});

test('netcheck\'s behaviours in classic names', () => {
  const r = { udp: true, behindNat: true, mapping: 'endpoint-independent' as const, filtering: 'address-and-port-dependent' as const };
  assert.deepEqual(natTypeOf(r), { kind: 'port-restricted-cone', text: 'port-restricted cone' });
  assert.equal(natTypeOf({ ...r, filtering: 'endpoint-independent' })?.kind, 'full-cone');
  assert.equal(natTypeOf({ ...r, filtering: null })?.kind, 'cone');
  assert.deepEqual(natTypeOf({ ...r, mapping: 'address-and-port-dependent' }), { kind: 'symmetric', text: 'symmetric (address-and-port-dependent mapping)' });
  assert.equal(natTypeOf({ ...r, behindNat: false })?.kind, 'none');
  assert.equal(natTypeOf({ ...r, udp: false })?.kind, 'udp-blocked');
  assert.equal(natTypeOf({ ...r, mapping: null }), null);
});

test('pinhole status prints the reason and what was tried under a peer that is not direct, nothing under a direct one', () => {
  const peer = { publicKey: 'pk', overlayIp: '100.64.0.2', endpoint: null, latencyMs: 3, rxBytes: 0, txBytes: 0, lastHandshake: null, allowedIps: [], persistentKeepalive: 0 };
  const st = {
    mode: 'managed',
    interface: { name: 'pinhole0', publicKey: 'k', listenPort: 41641, addresses: [], mtu: 1280 },
    peers: [
      { ...peer, name: 'b', path: 'relay', relay: 'lab', whyNotDirect: 'pings to 2 candidates unanswered for 12 s (both sides behind symmetric NAT)', tried: { candidates: 2, pingsSent: 31, pongsReceived: 0 } },
      { ...peer, name: 'c', path: 'direct', endpoint: '198.51.100.7:41641', relay: 'lab', whyNotDirect: null, tried: { candidates: 1, pingsSent: 4, pongsReceived: 4 } },
    ],
    drops: newDropCounters(),
    self: { state: 'up', id: 1, name: 'a', ipv4: '100.64.0.1', ipv6: 'fd7a::1', nodeKey: 'nk', discoKey: 'dk', coordinator: 'http://192.0.2.1:8080', connected: true, keyExpiresAt: null, netmapSeq: 1, lastError: null },
  } as unknown as AgentStatus;
  const text = formatStatus(st);
  assert.match(text, /^ {2}path: relay lab, 3 ms\n {2}why not direct: pings to 2 candidates unanswered for 12 s \(both sides behind symmetric NAT\); tried 2 candidates, 31 pings, 0 pongs$/m);
  assert.equal(text.match(/why not direct/g)?.length, 1);
});

test('the peer\'s NAT from its pings: a ping from a listed ip with an unlisted port means symmetric; a listed ip:port or another ip tells nothing', () => {
  const peer = new DiscoPeer(1, new Uint8Array(32), 'k', new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), {} as Peer, 'b');
  peer.path.setNetmapEndpoints([ep('198.51.100.7', 41641), ep('198.18.3.2', 41641)], 0);
  peer.notePingFrom(encodePackedAddr({ address: '198.51.100.7', port: 41641 }));
  assert.equal(peer.peerNat, null, 'the listed endpoint: its NAT kept the mapping');
  peer.notePingFrom(encodePackedAddr({ address: '203.0.113.9', port: 5000 }));
  assert.equal(peer.peerNat, null, 'another address: nothing to compare');
  peer.notePingFrom(encodePackedAddr({ address: '198.51.100.7', port: 30923 }));
  assert.equal(peer.peerNat, 'symmetric');
});

test('the peer\'s NAT used: what it reported beats what its pings showed; neither is unknown', () => {
  const peer = new DiscoPeer(1, new Uint8Array(32), 'k', new Uint8Array(32).fill(1), new Uint8Array(32).fill(2), {} as Peer, 'b');
  assert.deepEqual(peer.nat(), { kind: null, source: null });
  peer.peerNat = 'symmetric';
  assert.deepEqual(peer.nat(), { kind: 'symmetric', source: 'inferred' });
  peer.reportedNat = 'port-restricted-cone';
  assert.deepEqual(peer.nat(), { kind: 'port-restricted-cone', source: 'reported' });
});
