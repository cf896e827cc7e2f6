// Home-relay hysteresis (relay-set.ts clearlyFaster): a relay replaces the home only when it is
// clearly faster, by ratio and by an absolute margin, so jitter between relays of one site never
// moves a node's home (each move is a netmap update to every peer).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clearlyFaster } from '../../agent/magicsock/relay-set.js';

test('a home that does not answer is replaced by any relay that does', () => {
  assert.equal(clearlyFaster(0.4, Infinity), true);
  assert.equal(clearlyFaster(250, Infinity), true);
  assert.equal(clearlyFaster(Infinity, Infinity), false);
});

test('sub-millisecond and few-millisecond differences keep the home, whatever the ratio', () => {
  assert.equal(clearlyFaster(0.3, 0.9), false, 'a third of the time, but only 0.6 ms less');
  assert.equal(clearlyFaster(1, 9), false, '8 ms less is jitter');
  assert.equal(clearlyFaster(Infinity, 5), false);
});

test('a relay both under 70 % of the home and 10 ms faster becomes home', () => {
  assert.equal(clearlyFaster(20, 40), true);
  assert.equal(clearlyFaster(5, 15), true, 'exactly 10 ms less');
  assert.equal(clearlyFaster(90, 120), false, '30 ms less but 75 %: kept');
  assert.equal(clearlyFaster(83, 120), true);
});
