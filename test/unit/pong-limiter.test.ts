// Pong limits toward unconfirmed addresses: a burst, then a steady rate, per address and for all
// addresses together; tracking stays bounded however many addresses a flood names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GLOBAL_BURST, GLOBAL_PER_SEC, MAX_TRACKED, PER_ADDR_BURST, PER_ADDR_PER_SEC, PongLimiter } from '../../agent/magicsock/pong-limiter.js';

test('one address: a burst, then PER_ADDR_PER_SEC', () => {
  const l = new PongLimiter();
  let ok = 0;
  for (let i = 0; i < 100; i++) if (l.allow('a', 1000)) ok++;
  assert.equal(ok, PER_ADDR_BURST);
  ok = 0;
  for (let t = 1000; t <= 11_000; t += 10) if (l.allow('a', t)) ok++;
  assert.ok(ok >= PER_ADDR_PER_SEC * 10 - 1 && ok <= PER_ADDR_PER_SEC * 10 + 1, `${ok} in 10 s`);
  assert.equal(l.allow('b', 11_000), true, 'another address has its own budget');
});

test('many addresses: the global bucket bounds the total', () => {
  const l = new PongLimiter();
  let ok = 0;
  for (let i = 0; i < 10_000; i++) if (l.allow(`addr${i}`, 5000)) ok++;
  assert.equal(ok, GLOBAL_BURST);
  ok = 0;
  for (let i = 0; i < 10_000; i++) if (l.allow(`x${i}`, 5000 + i)) ok++; // 10 s
  assert.ok(ok <= GLOBAL_PER_SEC * 10 + 1, `${ok} pongs in 10 s to fresh addresses`);
  assert.ok(l.tracked <= MAX_TRACKED);
});
