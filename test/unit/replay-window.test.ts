// Replay window: duplicates and stale counters are refused, everything else inside the window is
// accepted exactly once — checked by hand and against a naive Set model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { COUNTER_LIMIT, REPLAY_WINDOW_SIZE, ReplayWindow } from '../../proto/wireguard/replay.js';

test('window is at least 2048 counters (wireguard-go: 8128)', () => {
  assert.ok(REPLAY_WINDOW_SIZE >= 2048);
  assert.equal(REPLAY_WINDOW_SIZE, 8160);
});

test('in-order counters are all accepted once', () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 20_000; c++) assert.equal(w.accept(c), true, `counter ${c}`);
  for (let c = 20_000 - REPLAY_WINDOW_SIZE; c < 20_000; c++) assert.equal(w.accept(c), false);
});

test('out-of-order counters inside the window are accepted once', () => {
  const w = new ReplayWindow();
  assert.equal(w.accept(5000), true);
  for (const c of [4999, 1, 0, 4000, 5000 - REPLAY_WINDOW_SIZE + 1]) {
    if (c < 0) continue;
    assert.equal(w.accept(c), true, `counter ${c}`);
    assert.equal(w.accept(c), false, `counter ${c} again`);
  }
  assert.equal(w.accept(5001), true);
  assert.equal(w.accept(4998), true);
});

test('duplicates are refused, including counter 0 and the current maximum', () => {
  const w = new ReplayWindow();
  assert.equal(w.accept(0), true);
  assert.equal(w.accept(0), false);
  assert.equal(w.accept(7), true);
  assert.equal(w.accept(7), false);
  assert.equal(w.accept(3), true);
  assert.equal(w.accept(3), false);
});

test('counters behind the window are refused; the window edge is inclusive', () => {
  const w = new ReplayWindow();
  const top = 100_000;
  assert.equal(w.accept(top), true);
  assert.equal(w.accept(top - REPLAY_WINDOW_SIZE), true);
  assert.equal(w.accept(top - REPLAY_WINDOW_SIZE - 1), false);
  assert.equal(w.accept(0), false);
});

test('a far jump ahead clears the ring, so old bits do not alias new counters', () => {
  const w = new ReplayWindow();
  for (let c = 0; c < 8192; c++) w.accept(c);
  assert.equal(w.accept(8192 * 1000 + 5), true);
  // Same ring slots as 0..8191 but a new window: all fresh.
  for (let c = 8192 * 1000 + 6 - REPLAY_WINDOW_SIZE; c < 8192 * 1000 + 5; c++) {
    assert.equal(w.accept(c), true, `counter ${c}`);
  }
  // A jump of less than a ring also clears the words it passes over.
  const w2 = new ReplayWindow();
  for (let c = 0; c < 4000; c++) w2.accept(c);
  assert.equal(w2.accept(8192 + 10), true);
  for (let c = 8192; c < 8192 + 10; c++) assert.equal(w2.accept(c), true, `counter ${c}`);
});

test('counters beyond 2^32 work, and the limit, negatives, NaN and fractions are refused', () => {
  const w = new ReplayWindow();
  const big = 2 ** 40 + 123;
  assert.equal(w.accept(big), true);
  assert.equal(w.accept(big), false);
  assert.equal(w.accept(big - 1), true);
  assert.equal(w.accept(COUNTER_LIMIT - 1), true);
  assert.equal(w.accept(COUNTER_LIMIT - 1), false);
  assert.equal(w.accept(COUNTER_LIMIT - 2), true);
  assert.equal(w.accept(COUNTER_LIMIT), false);
  assert.equal(w.accept(2 ** 64), false);
  assert.equal(w.accept(-1), false);
  assert.equal(w.accept(Number.NaN), false);
  assert.equal(w.accept(Number.POSITIVE_INFINITY), false);
  assert.equal(w.accept(big - 0.5), false);
});

test('an explicit limit (e.g. REJECT_AFTER_MESSAGES) is exclusive and capped at COUNTER_LIMIT', () => {
  const w = new ReplayWindow();
  assert.equal(w.accept(99, 100), true);
  assert.equal(w.accept(100, 100), false);
  assert.equal(w.accept(101, 100), false);
  assert.equal(w.accept(COUNTER_LIMIT, 2 ** 64), false);
});

test('reset forgets everything', () => {
  const w = new ReplayWindow();
  w.accept(0);
  w.accept(100_000);
  w.reset();
  assert.equal(w.accept(0), true);
  assert.equal(w.accept(1), true);
});

/** The specification, written the slow obvious way. */
class NaiveWindow {
  private readonly seen = new Set<number>();
  private last = 0;
  accept(c: number): boolean {
    if (!Number.isSafeInteger(c) || c < 0) return false;
    if (c <= this.last && this.last - c > REPLAY_WINDOW_SIZE) return false;
    if (this.seen.has(c)) return false;
    this.seen.add(c);
    if (c > this.last) this.last = c;
    return true;
  }
}

// Steps are relative to the highest counter so far, biased towards the interesting places:
// just ahead, just behind, the window edge, word and ring boundaries, far jumps, bad numbers.
const step = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: -40, max: 40 }).map((d) => ({ rel: d })) },
  { weight: 4, arbitrary: fc.integer({ min: -REPLAY_WINDOW_SIZE - 40, max: 0 }).map((d) => ({ rel: d })) },
  { weight: 2, arbitrary: fc.integer({ min: -3, max: 3 }).map((d) => ({ rel: d - REPLAY_WINDOW_SIZE })) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: 9000 }).map((d) => ({ rel: d })) },
  { weight: 1, arbitrary: fc.constantFrom(32, 64, 8192, 8160, 8161, 8193, 16384).map((d) => ({ rel: d })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 20 }).map((d) => ({ abs: d })) },
  { weight: 1, arbitrary: fc.constantFrom(COUNTER_LIMIT - 1, COUNTER_LIMIT, 2 ** 32 - 1, 2 ** 32, -1, 0.5, Number.NaN).map((d) => ({ abs: d })) },
);

test('matches a naive Set model over ≥100k random operations', () => {
  let ops = 0;
  fc.assert(
    fc.property(fc.array(step, { minLength: 200, maxLength: 800 }), (steps) => {
      const w = new ReplayWindow();
      const model = new NaiveWindow();
      let top = 0;
      for (const s of steps) {
        const c = 'abs' in s ? s.abs : Math.max(0, top + s.rel);
        const got = w.accept(c);
        const want = model.accept(c);
        if (got !== want) return false;
        if (want && c > top) top = c;
        ops++;
      }
      return true;
    }),
    { numRuns: 400 },
  );
  assert.ok(ops >= 100_000, `only ${ops} operations`);
});
