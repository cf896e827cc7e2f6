// The magic socket's one timer: TICK_MS while a peer is active or a ping is out, else asleep until
// a direct path's trust runs out, at most IDLE_POLL_MS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDLE_POLL_MS, nextTickDelay, TICK_MS } from '../../agent/magicsock/tick-schedule.js';
import { PeerPath, PONG_TRUST_MS } from '../../agent/magicsock/peer-path.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';

test('busy: every TICK_MS, whatever else is known', () => {
  assert.equal(nextTickDelay(true, Infinity), TICK_MS);
  assert.equal(nextTickDelay(true, 10), TICK_MS);
});

test('idle: until the earliest trust expiry, never sooner than TICK_MS, never later than IDLE_POLL_MS', () => {
  assert.equal(nextTickDelay(false, Infinity), IDLE_POLL_MS);
  assert.equal(nextTickDelay(false, 3000.2), 3001);
  assert.equal(nextTickDelay(false, 5), TICK_MS);
  assert.equal(nextTickDelay(false, -100), TICK_MS, 'already expired: look soon');
  assert.equal(nextTickDelay(false, 60_000), IDLE_POLL_MS);
});

test('a path\'s trust expiry: Infinity without a direct path, PONG_TRUST_MS after the last pong with one', () => {
  const path = new PeerPath();
  assert.equal(path.trustExpiresAt(), Infinity);
  const c = path.addPacked(encodePackedAddr({ address: '198.51.100.7', port: 5000 }), 'ping', 1000);
  path.onPong(c, 3, 1500);
  assert.equal(path.best, c);
  assert.equal(path.trustExpiresAt(), 1500 + PONG_TRUST_MS);
});
