// Disco replay window: each sent-at is accepted once per sender; replays, values far behind the
// newest and values far from our clock are refused, also after thousands of packets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DiscoReplayWindow, MAX_CLOCK_SKEW_MS, MAX_REMEMBERED, REORDER_US } from '../../proto/disco/replay-window.js';

const NOW = 1_765_000_000_000; // ms
const us = (ms: number) => Math.round(ms * 1000);

test('a sent-at is accepted once; the same value again is a replay', () => {
  const w = new DiscoReplayWindow();
  assert.equal(w.accept(us(NOW), NOW), 'ok');
  assert.equal(w.accept(us(NOW), NOW), 'replayed');
  assert.equal(w.accept(us(NOW) + 1, NOW), 'ok');
  assert.equal(w.accept(us(NOW), NOW + 5000), 'replayed', 'still refused seconds later');
});

test('packets reordered within the reorder span are accepted once each; older ones are refused', () => {
  const w = new DiscoReplayWindow();
  assert.equal(w.accept(us(NOW) + 5, NOW), 'ok');
  assert.equal(w.accept(us(NOW) + 3, NOW), 'ok', 'late but inside the span');
  assert.equal(w.accept(us(NOW) + 3, NOW), 'replayed');
  assert.equal(w.accept(us(NOW) + 5 - REORDER_US - 1, NOW), 'replayed', 'below the floor');
});

test('a value too far from our clock is stale, in either direction', () => {
  const w = new DiscoReplayWindow();
  assert.equal(w.accept(us(NOW - MAX_CLOCK_SKEW_MS - 1), NOW), 'stale');
  assert.equal(w.accept(us(NOW + MAX_CLOCK_SKEW_MS + 1), NOW), 'stale');
  assert.equal(w.accept(us(NOW - MAX_CLOCK_SKEW_MS + 1000), NOW), 'ok', 'a peer with a slow clock still gets through');
});

test('a burst larger than the remembered set cannot reopen old values', () => {
  const w = new DiscoReplayWindow();
  const base = us(NOW);
  for (let i = 0; i < MAX_REMEMBERED * 3; i++) assert.equal(w.accept(base + i * 7, NOW), 'ok');
  for (let i = 0; i < MAX_REMEMBERED * 3; i++) assert.equal(w.accept(base + i * 7, NOW), 'replayed', `value ${i}`);
});

test('property: any sequence: no value accepted twice, nothing behind the span accepted, nothing new inside it refused', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: -2 * REORDER_US, max: 2 * REORDER_US }), { maxLength: MAX_REMEMBERED - 1 }), (offsets) => {
    const w = new DiscoReplayWindow();
    const accepted = new Set<number>();
    let newest = -Infinity;
    for (const off of offsets) {
      const v = us(NOW) + off;
      const r = w.accept(v, NOW);
      if (r === 'ok') {
        assert.ok(!accepted.has(v), `accepted ${v} twice`);
        assert.ok(v >= newest - REORDER_US, 'accepted a value behind the reorder span');
        accepted.add(v);
        newest = Math.max(newest, v);
      } else {
        assert.ok(accepted.has(v) || v <= newest - REORDER_US, `an unseen value inside the span was refused (${r})`);
      }
    }
  }), { numRuns: 2000 });
});
