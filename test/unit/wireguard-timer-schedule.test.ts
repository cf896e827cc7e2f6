// The device's timer schedule (agent/wireguard/timers.ts): the next deadline of a peer, and how
// long the device sleeps, with time passed in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TIMERS } from '../../proto/wireguard/constants.js';
import { nextTimerDeadline, timerWakeDelay, TIMER_TICK_MS } from '../../agent/wireguard/timers.js';
import type { Peer } from '../../agent/wireguard/peer.js';

const t = DEFAULT_TIMERS;
const peer = (fields: Partial<Pick<Peer, 'retransmitDueAt' | 'keepaliveDueAt' | 'newHandshakeDueAt' | 'persistentKeepaliveSeconds' | 'lastAuthenticatedTraversalAt' | 'lastHandshakeCompletedAt'>>): Peer =>
  ({ retransmitDueAt: 0, keepaliveDueAt: 0, newHandshakeDueAt: 0, persistentKeepaliveSeconds: 0, lastAuthenticatedTraversalAt: 0, lastHandshakeCompletedAt: 0, ...fields }) as Peer;

test('a peer with nothing pending has no deadline', () => {
  assert.equal(nextTimerDeadline(t, peer({})), Infinity);
});

test('the earliest of the pending deadlines wins', () => {
  assert.equal(nextTimerDeadline(t, peer({ keepaliveDueAt: 50_000, newHandshakeDueAt: 40_000 })), 40_000);
  assert.equal(nextTimerDeadline(t, peer({ retransmitDueAt: 7000, keepaliveDueAt: 50_000 })), 7000);
  assert.equal(nextTimerDeadline(t, peer({ persistentKeepaliveSeconds: 25, lastAuthenticatedTraversalAt: 1000, keepaliveDueAt: 50_000 })), 26_000);
  // Key material is wiped 3 x REJECT_AFTER_TIME after the last handshake.
  assert.equal(nextTimerDeadline(t, peer({ lastHandshakeCompletedAt: 1000 })), 1000 + 3 * t.REJECT_AFTER_TIME);
});

test('the device sleeps until the deadline, at most min(KEEPALIVE_TIMEOUT, REKEY_TIMEOUT), at least one tick', () => {
  const now = 100_000;
  const guard = Math.min(t.KEEPALIVE_TIMEOUT, t.REKEY_TIMEOUT);
  assert.equal(timerWakeDelay(t, Infinity, now), guard, 'idle: one wake per guard interval');
  assert.equal(timerWakeDelay(t, now + 1234, now), 1234);
  assert.equal(timerWakeDelay(t, now + 60_000, now), guard, 'a deadline set meanwhile by the hot path is at least the guard away');
  assert.equal(timerWakeDelay(t, now - 500, now), TIMER_TICK_MS, 'a deadline still due is retried, not spun on');
  assert.equal(timerWakeDelay(t, now + 10.2, now), TIMER_TICK_MS);
  // Short timers (tests): the guard follows them, never below one tick.
  assert.equal(timerWakeDelay({ ...t, REKEY_TIMEOUT: 300, KEEPALIVE_TIMEOUT: 1000 }, Infinity, now), 300);
  assert.equal(timerWakeDelay({ ...t, REKEY_TIMEOUT: 20, KEEPALIVE_TIMEOUT: 20 }, Infinity, now), TIMER_TICK_MS);
});

test('waking at the guard interval never misses a deadline the hot path sets (it lies at least the guard ahead)', () => {
  const guard = Math.min(t.KEEPALIVE_TIMEOUT, t.REKEY_TIMEOUT);
  // Simulated: the device wakes at w, w + delay, ...; the hot path sets a deadline d = s + guard at any s.
  for (let s = 0; s < 20_000; s += 137) {
    const d = s + guard;
    let w = 0;
    let seenLate = Infinity;
    while (w <= d) {
      const known = w >= s ? d : Infinity;
      const delay = timerWakeDelay(t, known, w);
      w += delay;
      if (w >= d) { seenLate = w - d; break; }
    }
    assert.ok(seenLate <= TIMER_TICK_MS, `deadline at ${d} set at ${s} evaluated ${seenLate} ms late`);
  }
});
