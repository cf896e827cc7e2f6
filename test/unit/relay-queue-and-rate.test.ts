// The relay's per-client send queue (two lanes, high/low-water marks and hard cap on data, drop
// oldest, priority first) and token bucket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SendQueue } from '../../relay/send-queue.js';
import { TokenBucket } from '../../relay/rate-limit.js';

const frame = (id: number, size = 10): Uint8Array => {
  const f = new Uint8Array(size);
  f[0] = id;
  return f;
};
const drain = (q: SendQueue): number[] => {
  const out: number[] = [];
  for (let f = q.shift(); f; f = q.shift()) out.push(f[0]!);
  return out;
};

test('data lane: full at its limits, low at half, drops oldest only at twice the limits', () => {
  const q = new SendQueue({ maxFrames: 4, maxBytes: 1 << 20, maxPriorityFrames: 4, maxPriorityBytes: 1 << 20 });
  let dropped = 0;
  for (let i = 1; i <= 3; i++) dropped += q.push(frame(i), false);
  assert.equal(q.dataFull, false);
  dropped += q.push(frame(4), false);
  assert.equal(q.dataFull, true, 'at the high-water mark: senders should wait');
  assert.equal(q.dataLow, false);
  // Hard cap: 2 x 4 + 1024 slack frames (room for what paused senders had already sent).
  for (let i = 5; i <= 1032; i++) dropped += q.push(frame(i % 256), false);
  assert.equal(dropped, 0, 'room up to the hard cap');
  assert.equal(q.length, 1032);
  assert.equal(q.push(frame(9), false), 1, 'over the hard cap the oldest goes');
  assert.equal(q.length, 1032);
  q.push(frame(100), true);
  assert.equal(q.dataFull, true, 'priority frames do not count against the data lane');
  assert.equal(q.shift()![0], 100, 'priority first');
  for (let i = 0; i < 1029; i++) q.shift();
  assert.equal(q.dataLow, false, 'three left of four');
  q.shift();
  assert.equal(q.dataLow, true, 'two left of four: the low-water mark');
  assert.equal(q.length, 2);
});

test('an overrun data lane (atHighWater) drops its oldest frames at its limits and keeps the newest', () => {
  const q = new SendQueue({ maxFrames: 4, maxBytes: 1 << 20, maxPriorityFrames: 4, maxPriorityBytes: 1 << 20 });
  let dropped = 0;
  for (let i = 1; i <= 10; i++) dropped += q.push(frame(i), false, true);
  assert.equal(dropped, 6);
  assert.deepEqual(drain(q), [7, 8, 9, 10]);
  assert.equal(q.length, 0);
  assert.equal(q.bytes, 0);
});

test('priority frames go first and are never dropped to make room for data', () => {
  const q = new SendQueue({ maxFrames: 3, maxBytes: 1 << 20, maxPriorityFrames: 8, maxPriorityBytes: 1 << 20 });
  q.push(frame(1), false);
  q.push(frame(100), true);
  for (let i = 2; i <= 20; i++) q.push(frame(i), false, true);
  q.push(frame(101), true);
  assert.deepEqual(drain(q), [100, 101, 18, 19, 20]);
});

test('the byte limit drops oldest too, but a single frame larger than it still goes', () => {
  const q = new SendQueue({ maxFrames: 100, maxBytes: 100, maxPriorityFrames: 2, maxPriorityBytes: 50 });
  for (let i = 1; i <= 5; i++) q.push(frame(i, 30), false, true);
  assert.deepEqual(drain(q), [3, 4, 5]);
  let capDrops = 0;
  for (let i = 0; i < 2000; i++) capDrops += q.push(frame(i % 256, 1000), false);
  assert.ok(capDrops > 0, 'over the hard cap the oldest go');
  assert.ok(q.bytes <= 2 * 100 + 1024 * 1024 && q.length < 2 * 100 + 1024, `the hard cap (twice the limits plus 1 MiB) counts bytes too: ${q.bytes} in ${q.length}`);
  drain(q);
  q.push(frame(9, 500), false);
  assert.deepEqual(drain(q), [9]);
  // The priority lane is bounded as well (a client marking everything priority gets a small lane).
  assert.equal(q.push(frame(1, 20), true) + q.push(frame(2, 20), true) + q.push(frame(3, 20), true), 1);
  assert.deepEqual(drain(q), [2, 3]);
});

test('the ring grows and wraps without losing order', () => {
  const q = new SendQueue({ maxFrames: 1000, maxBytes: 1 << 30, maxPriorityFrames: 1, maxPriorityBytes: 1 << 20 });
  const want: number[] = [];
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 37; i++) { q.push(frame(i), false); want.push(i); }
    for (let i = 0; i < 20; i++) assert.equal(q.shift()![0], want.shift());
  }
  assert.deepEqual(drain(q), want);
});

test('token bucket: a burst passes, then the debt is paid at the configured rate', () => {
  let now = 0;
  const b = new TokenBucket({ bytesPerSec: 1000, burstBytes: 500, now: () => now });
  assert.equal(b.take(500), 0);
  assert.equal(b.take(100), 100); // 100 bytes over: 100 ms at 1000 B/s
  now += 100;
  assert.equal(b.take(0), 0);
  now += 10_000; // refills only up to the burst
  assert.equal(b.take(500), 0);
  assert.equal(b.take(1000), 1000);
  assert.equal(new TokenBucket({ bytesPerSec: 0, burstBytes: 0 }).take(1e9), 0, '0 = unlimited');
});
