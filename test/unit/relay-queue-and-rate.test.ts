// The relay's per-client send queue (two lanes, drop oldest, priority first) and token bucket.
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

test('a full data lane drops its oldest frames and keeps the newest', () => {
  const q = new SendQueue({ maxFrames: 4, maxBytes: 1 << 20, maxPriorityFrames: 4, maxPriorityBytes: 1 << 20 });
  let dropped = 0;
  for (let i = 1; i <= 10; i++) dropped += q.push(frame(i), false);
  assert.equal(dropped, 6);
  assert.deepEqual(drain(q), [7, 8, 9, 10]);
  assert.equal(q.length, 0);
  assert.equal(q.bytes, 0);
});

test('priority frames go first and are never dropped to make room for data', () => {
  const q = new SendQueue({ maxFrames: 3, maxBytes: 1 << 20, maxPriorityFrames: 8, maxPriorityBytes: 1 << 20 });
  q.push(frame(1), false);
  q.push(frame(100), true);
  for (let i = 2; i <= 20; i++) q.push(frame(i), false);
  q.push(frame(101), true);
  assert.deepEqual(drain(q), [100, 101, 18, 19, 20]);
});

test('the byte limit drops oldest too, but a single frame larger than it still goes', () => {
  const q = new SendQueue({ maxFrames: 100, maxBytes: 100, maxPriorityFrames: 2, maxPriorityBytes: 50 });
  for (let i = 1; i <= 5; i++) q.push(frame(i, 30), false);
  assert.deepEqual(drain(q), [3, 4, 5]);
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
