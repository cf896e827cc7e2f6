// The path reporter: the whole table at once on enable (a stream reconnect), then only on a change
// a viewer would see, coalesced and never closer than the minimum interval; a refresh at least
// every 30 s while there are peers; the peers idle the longest left out beyond the bound. Each
// report it sends is a valid StreamPaths. Time is a fake clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PathReporter, latencyMoved, reasonKey, pathReportOf, POLL_MS, QUIET_POLL_MS, REFRESH_MS, type PathTable, type ReporterClock } from '../../agent/control/path-reporter.js';
import { PATH_REPORT_MIN_INTERVAL_MS, StreamPaths, type PeerPathReport } from '../../proto/control/schemas.js';

class FakeClock implements ReporterClock {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  now(): number { return this.t; }
  setTimeout(fn: () => void, ms: number): unknown { const id = this.next++; this.timers.set(id, { at: this.t + ms, fn }); return id; }
  clearTimeout(h: unknown): void { this.timers.delete(h as number); }
  /** Moves time forward, running timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let first: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!first || e[1].at < first[1].at)) first = e;
      if (!first) break;
      this.timers.delete(first[0]);
      this.t = first[1].at;
      first[1].fn();
    }
    this.t = end;
  }
}

const key = (i: number): string => Buffer.alloc(32, i).toString('base64');
const peer = (i: number, over: Partial<PeerPathReport> = {}): PeerPathReport => ({
  peer: key(i), path: 'relay', relay: 'lab', endpoint: null, latencyMs: 10, whyNotDirect: 'probing 2 candidates',
  tried: { candidates: 2, pingsSent: 0, pongsReceived: 0 }, idleSeconds: i, ...over,
});

function rig(opts: { maxPeers?: number; quiet?: () => boolean } = {}) {
  const clock = new FakeClock();
  const table: PathTable = { natType: 'port-restricted cone', peers: [peer(1), peer(2)] };
  const sent: { at: number; msg: StreamPaths }[] = [];
  let accept = true;
  const r = new PathReporter({
    table: () => ({ natType: table.natType, peers: table.peers.map((p) => ({ ...p })) }),
    send: (msg) => { if (!accept) return false; assert.ok(StreamPaths.safeParse(msg).success, 'a valid StreamPaths'); sent.push({ at: clock.t, msg }); return true; },
    clock, ...opts,
  });
  return { clock, table, sent, r, setAccept: (v: boolean) => { accept = v; } };
}

test('enable sends the whole table at once; nothing more while nothing changes (until the refresh)', () => {
  const { clock, sent, r } = rig();
  clock.t = 5000;
  r.enable();
  assert.equal(sent.length, 1);
  assert.equal(sent[0]!.msg.peers.length, 2);
  assert.equal(sent[0]!.msg.natType, 'port-restricted cone');
  clock.advance(REFRESH_MS - 1);
  assert.equal(sent.length, 1, 'no change, no report');
  assert.ok(r.stats.unchanged > 10);
  clock.advance(1000);
  assert.equal(sent.length, 2, 'the refresh at 30 s');
});

test('a path change goes out at once if the last report is old enough, else at the interval; changes meanwhile coalesce', () => {
  const { clock, table, sent, r } = rig();
  r.enable();
  clock.advance(2000);
  table.peers[0] = peer(1, { path: 'direct', relay: null, endpoint: '198.51.100.1:41641', whyNotDirect: null });
  r.poke();
  clock.advance(0);
  assert.equal(sent.length, 2);
  assert.equal(sent[1]!.at, 2000, 'sent at the moment of the poke');
  // Two more changes 100 ms apart: one report, PATH_REPORT_MIN_INTERVAL_MS after the previous.
  clock.advance(100);
  table.peers[1] = peer(2, { path: 'direct', relay: null, endpoint: '198.51.100.2:41641', whyNotDirect: null });
  r.poke();
  clock.advance(100);
  table.peers[0] = peer(1, { path: 'relay', whyNotDirect: 'direct path lost 0 s ago, re-probing 2 candidates' });
  r.poke();
  clock.advance(1000);
  assert.equal(sent.length, 3);
  assert.equal(sent[2]!.at, 2000 + PATH_REPORT_MIN_INTERVAL_MS);
  assert.equal(sent[2]!.msg.peers[0]!.path, 'relay');
  assert.equal(sent[2]!.msg.peers[1]!.path, 'direct');
  for (let i = 1; i < sent.length; i++) assert.ok(sent[i]!.at - sent[i - 1]!.at >= PATH_REPORT_MIN_INTERVAL_MS);
});

test('a flood of pokes never beats the interval', () => {
  const { clock, table, sent, r } = rig();
  r.enable();
  for (let i = 0; i < 200; i++) {
    table.peers[0] = peer(1, { relay: `r${i}` });
    r.poke();
    clock.advance(10);
  }
  assert.ok(sent.length <= 1 + Math.ceil(2000 / PATH_REPORT_MIN_INTERVAL_MS), `${sent.length} reports in 2 s`);
  for (let i = 1; i < sent.length; i++) assert.ok(sent[i]!.at - sent[i - 1]!.at >= PATH_REPORT_MIN_INTERVAL_MS);
});

test('changes found by the poll without a poke: reason kind, latency beyond 20 % and 5 ms, peers added', () => {
  const { clock, table, sent, r } = rig();
  r.enable();
  clock.advance(1500);
  table.peers[0] = peer(1, { whyNotDirect: 'pings to 2 candidates unanswered for 3 s (both sides behind symmetric NAT)' });
  clock.advance(1000);
  assert.equal(sent.length, 2, 'a new reason');
  table.peers[0] = peer(1, { whyNotDirect: 'pings to 2 candidates unanswered for 9 s (both sides behind symmetric NAT)' });
  table.peers[1] = peer(2, { latencyMs: 13 });
  clock.advance(3000);
  assert.equal(sent.length, 2, 'running seconds and a 3 ms move are not news');
  table.peers[1] = peer(2, { latencyMs: 30 });
  clock.advance(1000);
  assert.equal(sent.length, 3, 'latency 10 → 30 ms');
  table.peers.push(peer(3));
  clock.advance(1000);
  assert.equal(sent.length, 4, 'a peer added');
  assert.equal(sent[3]!.msg.peers.length, 3);
});

test('after a reconnect (disable, enable) the table goes out in full again; nothing while disabled', () => {
  const { clock, sent, r, setAccept } = rig();
  r.enable();
  r.disable();
  clock.advance(60_000);
  assert.equal(sent.length, 1);
  clock.t += 1000;
  r.enable();
  assert.equal(sent.length, 2);
  assert.equal(sent[1]!.msg.peers.length, 2);
  // A send the stream could not take is tried again at the next poll.
  setAccept(false);
  r.disable();
  clock.t += 1000;
  r.enable();
  setAccept(true);
  clock.advance(1000);
  assert.equal(sent.length, 3);
});

test('beyond maxPeers the peers idle the longest are left out', () => {
  const { clock, table, sent, r } = rig({ maxPeers: 3 });
  table.peers = [peer(9, { idleSeconds: 900 }), peer(1, { idleSeconds: 1 }), peer(5, { idleSeconds: 50 }), peer(2, { idleSeconds: 2 })];
  r.enable();
  clock.advance(0);
  assert.deepEqual(sent[0]!.msg.peers.map((p) => p.peer), [key(1), key(2), key(5)]);
  assert.equal(r.stats.peersLeftOut, 1);
});

test('change detection helpers and the wire form of a magic socket row', () => {
  assert.equal(reasonKey('pings to 2 candidates unanswered for 12 s (x)'), reasonKey('pings to 2 candidates unanswered for 7 s (x)'));
  assert.notEqual(reasonKey('pings to 2 candidates unanswered for 12 s'), reasonKey('pings to 3 candidates unanswered for 12 s'));
  assert.equal(latencyMoved(0.3, 0.9), false, 'sub-ms jitter');
  assert.equal(latencyMoved(100, 110), false, '10 %');
  assert.equal(latencyMoved(100, 130), true);
  assert.equal(latencyMoved(null, 3), true);
  const row = { nodeKey: key(4), path: 'relay' as const, endpoint: '198.51.100.4:41641', relay: 'lab', latencyMs: 12.5, whyNotDirect: 'probing 1 candidate', tried: { candidates: 1, pingsSent: 0, pongsReceived: 0 }, idleSeconds: 3,
    nat: { self: 'symmetric' as const, peer: 'port-restricted-cone' as const, peerSource: 'reported' as const }, birthday: { attempts: 1, role: 'hard' as const, outcome: 'running' as const } };
  const wire = pathReportOf(row);
  assert.equal(wire.endpoint, null, 'a candidate is not a confirmed endpoint');
  assert.equal(wire.relay, 'lab');
  assert.equal(pathReportOf({ ...row, path: 'direct', whyNotDirect: null }).relay, null);
  assert.ok(StreamPaths.safeParse({ type: 'paths', natType: null, peers: [wire] }).success);
});

test('a table that cannot be built is counted, not thrown; the next poll tries again', () => {
  const clock = new FakeClock();
  let broken = true;
  const sent: StreamPaths[] = [];
  const r = new PathReporter({
    table: () => { if (broken) throw new TypeError('bug'); return { natType: null, peers: [peer(1)] }; },
    send: (m) => { sent.push(m); return true; }, clock,
  });
  r.enable();
  assert.equal(r.stats.tableErrors, 1);
  assert.equal(r.lastTableError, 'bug');
  broken = false;
  clock.advance(1000);
  assert.equal(sent.length, 1);
});

test('while every peer is quiet the table is looked at every 10 s, not every second; the refresh still goes out on time', () => {
  let quiet = true;
  const { clock, table, sent, r } = rig({ quiet: () => quiet });
  r.enable();
  assert.equal(sent.length, 1);
  clock.advance(60_000);
  // Quiet: one look per QUIET_POLL_MS plus the refresh (which also re-arms the poll).
  assert.ok(r.stats.unchanged <= 60_000 / QUIET_POLL_MS, `looked ${r.stats.unchanged} times in 60 s while quiet`);
  assert.equal(sent.length, 3, 'refreshes at 30 s and 60 s');
  assert.equal(sent[1]!.at, REFRESH_MS, 'the refresh is not late while quiet');
  // A latency change without a poke while quiet waits for the slow look...
  table.peers[0] = { ...table.peers[0]!, latencyMs: 80 };
  const before = sent.length;
  clock.advance(QUIET_POLL_MS);
  assert.equal(sent.length, before + 1, 'found by the quiet poll');
  // ...and once a peer is active the poll is back to every second.
  quiet = false;
  clock.advance(QUIET_POLL_MS);
  const looks = r.stats.unchanged;
  clock.advance(5 * POLL_MS);
  assert.ok(r.stats.unchanged - looks >= 4, 'active again: a look every second');
});
