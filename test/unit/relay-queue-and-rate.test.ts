// The relay's per-client send queue (two lanes, high/low-water marks and hard cap on data, drop
// oldest, priority first) and token bucket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameArena } from '../../relay/frame-arena.js';
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

test('runs of frames count as the frames inside them: limits, drops and batches', () => {
  const q = new SendQueue({ maxFrames: 10, maxBytes: 1 << 20, maxPriorityFrames: 4, maxPriorityBytes: 1 << 20 });
  q.push(frame(1), false, false, 6);
  assert.equal(q.dataFull, false);
  q.push(frame(2), false, false, 4);
  assert.equal(q.dataFull, true, 'ten frames in two entries');
  assert.equal(q.length, 2);
  assert.equal(q.frames, 10);
  assert.equal(q.push(frame(3), false, true, 3), 6, 'overrun: the oldest run goes, counted as its frames');
  q.shiftBatch(1 << 20);
  assert.equal(q.batchFrames, 7);
  assert.equal(q.frames, 0);
});

test('batches: frames side by side in an arena go out as one view, others are joined', () => {
  const q = new SendQueue({ maxFrames: 1000, maxBytes: 1 << 22, maxPriorityFrames: 4, maxPriorityBytes: 1 << 20 });
  const arena = new FrameArena(4096);
  const frames: Uint8Array[] = [];
  for (let i = 0; i < 100; i++) {
    const f = arena.copy(frame(i, 100));
    frames.push(f);
    q.push(f, false);
  }
  const seen: number[] = [];
  while (q.length > 0) {
    const b = q.shiftBatch(1000);
    assert.ok(b.length <= 1000);
    assert.equal(b.length, q.batchFrames * 100);
    for (let i = 0; i < q.batchFrames; i++) seen.push(b[i * 100]!);
    // Within one slab a batch is a view of it, never a copy.
    if (b.length >= 1000 / 8) assert.ok(frames.some((f) => f.buffer === b.buffer), 'a view of the slab');
  }
  assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
  // Frames from elsewhere (short) are joined into one message.
  q.push(frame(1, 10), false);
  q.push(frame(2, 10), false);
  const joined = q.shiftBatch(1000);
  assert.equal(joined.length, 20);
  assert.equal(q.batchFrames, 2);
  assert.deepEqual([joined[0], joined[10]], [1, 2]);
});

test('arena slabs are used again only once every frame in them was written, priority frames jumping ahead or not', () => {
  // The case in point: a priority frame, last in its slab, leaves before the data frame ahead of it.
  {
    const q = new SendQueue({ maxFrames: 100, maxBytes: 1 << 20, maxPriorityFrames: 100, maxPriorityBytes: 1 << 20 });
    const arena = new FrameArena(256);
    const d1 = arena.take(120).fill(1);
    const p = arena.take(120).fill(2);
    q.push(d1, false);
    q.push(p, true);
    q.push(arena.take(120).fill(3), false); // a new slab: the first is full
    arena.written(q.shiftBatch(200)); // p alone
    arena.take(120).fill(9);
    arena.take(120).fill(9);
    assert.ok(d1.every((b) => b === 1), 'the first slab was used again while d1 waited');
  }
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 2, max: 90 }), fc.boolean(), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 400 }), (ops) => {
    const q = new SendQueue({ maxFrames: 1 << 20, maxBytes: 1 << 30, maxPriorityFrames: 1 << 20, maxPriorityBytes: 1 << 30 });
    const arena = new FrameArena(256);
    // Frame id → its view; a frame is [id u16 | (id & 0xff) ...]; queued until a batch carries it.
    const queued = new Map<number, Uint8Array>();
    const check = (f: Uint8Array, id: number): void => {
      assert.equal((f[0]! << 8) | f[1]!, id, 'a queued frame was overwritten');
      for (let i = 2; i < f.length; i++) assert.equal(f[i], id & 0xff, 'a queued frame was overwritten');
    };
    let id = 0;
    for (const [size, priority, sends] of ops) {
      const f = arena.take(size);
      f.fill(id & 0xff);
      f[0] = id >>> 8;
      f[1] = id & 0xff;
      queued.set(id, f);
      q.push(f, priority);
      id++;
      for (let n = 0; n < sends && q.length > 0; n++) {
        const b = q.shiftBatch(200);
        for (let at = 0; at < b.length;) {
          const fid = (b[at]! << 8) | b[at + 1]!;
          const f2 = queued.get(fid);
          assert.ok(f2, `batch holds frame ${fid}, not queued`);
          check(b.subarray(at, at + f2.length), fid);
          queued.delete(fid);
          at += f2.length;
        }
        arena.written(b);
      }
      for (const [qid, qf] of queued) check(qf, qid);
    }
  }), { numRuns: 300 });
});
