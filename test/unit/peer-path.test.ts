// Path selection for one peer: relay until a pong, then the lowest-latency direct endpoint; a
// working path is only replaced by a clearly faster one (hysteresis); heartbeats keep it, and
// missing pongs fall back to the relay and restart quick probing; learned candidates expire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HEARTBEAT_MS, LEARNED_TTL_MS, PeerPath, PONG_TRUST_MS, PROBE_INTERVAL_MS, QUICK_PROBE_MS, QUICK_PROBES, SUSPECT_AFTER_MS,
} from '../../agent/magicsock/peer-path.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';

const ep = (ip: string, port = 41641) => ({ text: `${ip}:${port}`, packed: encodePackedAddr({ address: ip, port }) });

test('no direct path until a pong; the first pong makes it direct', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1'), ep('198.18.1.2')], 0);
  assert.equal(p.direct(0), null);
  const c = p.candidates.get('198.51.100.1:41641')!;
  assert.equal(p.onPong(c, 5, 100), true);
  assert.equal(p.direct(100), c);
  assert.equal(p.directSince, 100);
});

test('hysteresis: only a clearly faster endpoint replaces a working one', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1'), ep('198.18.1.2'), ep('203.0.113.9')], 0);
  const [slow, close, fast] = [...p.candidates.values()];
  p.onPong(slow!, 10, 10);
  assert.equal(p.onPong(close!, 8, 20), false, '8 ms is not 0.7 × 10 ms');
  assert.equal(p.direct(20), slow);
  assert.equal(p.onPong(fast!, 2, 30), true);
  assert.equal(p.direct(30), fast);
  // sub-millisecond differences never move the path
  const q = new PeerPath();
  q.setNetmapEndpoints([ep('198.51.100.1'), ep('198.18.1.2')], 0);
  const [x, y] = [...q.candidates.values()];
  q.onPong(x!, 0.9, 1);
  assert.equal(q.onPong(y!, 0.3, 2), false);
});

test('heartbeats are due on the chosen path; without pongs it falls back and probes quickly', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1')], 0);
  const c = p.candidates.get('198.51.100.1:41641')!;
  p.noteActive(0);
  p.onPong(c, 3, 0);
  assert.equal(p.due(HEARTBEAT_MS - 1).heartbeat, null);
  assert.equal(p.due(HEARTBEAT_MS).heartbeat, c);
  p.noteActive(PONG_TRUST_MS);
  const d = p.due(PONG_TRUST_MS + 1);
  assert.equal(p.best, null, 'trust expired');
  assert.ok(d.probe !== null && d.probe.length === 1, 'an immediate probe');
  let t = PONG_TRUST_MS + 1;
  let quick = 0;
  for (let i = 0; i < 40; i++) {
    t += QUICK_PROBE_MS;
    p.noteActive(t);
    if (p.due(t).probe) quick++;
  }
  assert.ok(quick >= QUICK_PROBES - 1 && quick <= QUICK_PROBES + 1 + Math.ceil((40 * QUICK_PROBE_MS) / PROBE_INTERVAL_MS), `quick probes: ${quick}`);
});

test('idle peers get no heartbeats or probes', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1')], 0);
  p.noteActive(0);
  assert.deepEqual(p.due(50_000), { heartbeat: null, probe: null });
});

test('learned candidates expire; netmap ones stay; a removed netmap endpoint goes', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1')], 0);
  p.addPacked(encodePackedAddr({ address: '203.0.113.7', port: 5000 }), 'ping', 0);
  assert.equal(p.candidates.size, 2);
  p.probeTargets(LEARNED_TTL_MS + 1);
  assert.deepEqual([...p.candidates.keys()], ['198.51.100.1:41641']);
  const c = p.candidates.get('198.51.100.1:41641')!;
  p.onPong(c, 1, LEARNED_TTL_MS + 2);
  p.setNetmapEndpoints([ep('198.51.100.2')], LEARNED_TTL_MS + 3);
  assert.equal(p.best, null, 'the chosen endpoint was withdrawn');
  assert.deepEqual([...p.candidates.keys()], ['198.51.100.2:41641']);
});

test('a chosen path whose heartbeat goes unanswered is replaced at once by an endpoint that answers', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1', 1000)], 0);
  const old = p.candidates.get('198.51.100.1:1000')!;
  p.onPong(old, 5, 1000);
  p.notePingSent(old, 2000); // heartbeat sent, no pong
  const fresh = p.addPacked(encodePackedAddr({ address: '198.51.100.1', port: 2000 }), 'ping', 2100);
  assert.equal(p.suspect(2100), false, 'not yet: the heartbeat is only 100 ms old');
  assert.equal(p.onPong(fresh, 6, 2100), false, 'slower and the old path is not suspect');
  assert.equal(p.suspect(2000 + SUSPECT_AFTER_MS), true);
  assert.equal(p.onPong(fresh, 6, 2000 + SUSPECT_AFTER_MS), true, 'the old mapping is gone: switch without hysteresis');
  assert.equal(p.direct(2000 + SUSPECT_AFTER_MS), fresh);
});

test('while the chosen path is suspect, an endpoint that answered since takes over on the next check', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1', 1000)], 0);
  const old = p.candidates.get('198.51.100.1:1000')!;
  p.onPong(old, 1, 1000);
  p.notePingSent(old, 2000);
  const fresh = p.addPacked(encodePackedAddr({ address: '198.51.100.1', port: 2000 }), 'ping', 2000);
  assert.equal(p.onPong(fresh, 9, 2010), false, 'answered first, but the old path is not suspect yet');
  assert.equal(p.direct(2100), old);
  assert.equal(p.direct(2000 + SUSPECT_AFTER_MS), fresh);
});

test('a network change drops the direct path until a new pong and starts quick probing', () => {
  const p = new PeerPath();
  p.setNetmapEndpoints([ep('198.51.100.1')], 0);
  const c = p.candidates.get('198.51.100.1:41641')!;
  p.onPong(c, 3, 100);
  p.notePingSent(c, 900);
  p.noteProbeScheduled(900);
  assert.equal(p.direct(1000), c);
  p.networkChanged(1000);
  assert.equal(p.direct(1000), null, 'trusted again only after a pong from the new network');
  assert.equal(p.probeDue(1000), true);
  assert.deepEqual(p.probeTargets(1000), [c], 'every candidate is pinged at once');
  assert.equal(p.takeCallMeMaybe(1000), true, 'call-me-maybe allowed at once');
  assert.equal(p.takeCallMeMaybe(1001), false, 'then not within the gap');
  assert.equal(p.onPong(c, 4, 1010), true);
  assert.equal(p.direct(1010), c);
});
