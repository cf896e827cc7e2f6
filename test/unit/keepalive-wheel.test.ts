// The coordinator's keepalive rounds: every member is visited once per interval, a tick visits
// only its slice, a member that leaves is not visited again, and the ticks run on a timer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeepaliveWheel, type WheelMember } from '../../coordinator/keepalive-wheel.js';

interface M extends WheelMember { id: number }

test('a round of ticks visits every member once, a slice per tick', () => {
  const visits = new Map<number, number>();
  const perTick: number[] = [];
  let thisTick = 0;
  const wheel = new KeepaliveWheel<M>(30_000, (m) => { visits.set(m.id, (visits.get(m.id) ?? 0) + 1); thisTick++; });
  try {
    const members = Array.from({ length: 50_000 }, (_, id) => ({ id, wheelSlot: -1 }));
    for (const m of members) wheel.add(m);
    assert.equal(wheel.size, 50_000);
    // 30 s in slots of 100 ms: 300 ticks make one round.
    for (let t = 0; t < 300; t++) {
      thisTick = 0;
      wheel.tick();
      perTick.push(thisTick);
    }
    assert.equal(visits.size, 50_000);
    assert.ok([...visits.values()].every((n) => n === 1), 'each member once per round');
    assert.ok(Math.max(...perTick) <= Math.ceil(50_000 / 300), `largest tick visited ${Math.max(...perTick)}`);
    // A member that left is not visited; the next round visits the rest once more.
    for (const m of members.slice(0, 1000)) wheel.delete(m);
    visits.clear();
    for (let t = 0; t < 300; t++) wheel.tick();
    assert.equal(visits.size, 49_000);
    assert.ok(!visits.has(0) && !visits.has(999) && visits.get(1000) === 1);
  } finally {
    wheel.close();
  }
});

test('short intervals: one slot; the timer visits each member every interval', async () => {
  const seen: number[] = [];
  const wheel = new KeepaliveWheel<M>(60, (m) => seen.push(m.id));
  try {
    wheel.add({ id: 7, wheelSlot: -1 });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(seen.length >= 2 && seen.every((id) => id === 7), `visits: ${seen.length}`);
  } finally {
    wheel.close();
  }
});
