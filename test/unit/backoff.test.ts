// Reconnect backoff: grows from 0.5 s to 30 s, each delay jittered within [base/2, base], and
// starts over after a connection that worked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../../agent/control/backoff.js';

test('delays double from 0.5 s up to the 30 s cap, jittered into the upper half', () => {
  const lows = new Backoff({ random: () => 0 });
  const highs = new Backoff({ random: () => 0.999999 });
  const bases = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
  for (const base of bases) {
    assert.equal(lows.next(), base / 2);
    assert.equal(highs.next(), base);
  }
});

test('jitter spreads agents out: 1000 draws of the same attempt are not all equal and stay in range', () => {
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) {
    const b = new Backoff();
    b.next(); b.next();
    const d = b.next(); // third attempt: base 2000
    assert.ok(d >= 1000 && d <= 2000, `${d}`);
    seen.add(d);
  }
  assert.ok(seen.size > 100, `only ${seen.size} distinct delays`);
});

test('reset() starts from the shortest delay again; attempts counts since the reset', () => {
  const b = new Backoff({ random: () => 1 });
  for (let i = 0; i < 10; i++) b.next();
  assert.equal(b.attempts, 10);
  assert.equal(b.next(), 30_000);
  b.reset();
  assert.equal(b.attempts, 0);
  assert.equal(b.next(), 500);
});

test('a very long outage never overflows the cap', () => {
  const b = new Backoff({ random: () => 1 });
  for (let i = 0; i < 10_000; i++) assert.ok(b.next() <= 30_000);
});

test('nonsense options are refused', () => {
  assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
  assert.throws(() => new Backoff({ initialMs: 1000, maxMs: 10 }), RangeError);
  assert.throws(() => new Backoff({ factor: 0.5 }), RangeError);
});
