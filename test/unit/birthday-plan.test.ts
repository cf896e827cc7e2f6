// Birthday probing's decisions and budget: which NAT pairs try and in which role, the success
// probability of the chosen budget, the per-peer / per-node gate with its cool-down, and the
// spray schedule's rate, budget and wall-time bounds (on a fake clock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BIRTHDAY_SOCKETS, BirthdayGate, COOLDOWN_MAX_MS, COOLDOWN_MS, MAX_CONCURRENT, PORT_SPACE, SPRAY_BUDGET, SPRAY_RATE_PPS, SPRAY_WALL_MS,
  SprayPlan, birthdayRole, hitProbability, natKindOf, probesFor,
} from '../../agent/magicsock/birthday-plan.js';

test('only a hard NAT facing an easy one tries, each side in its role', () => {
  assert.equal(birthdayRole('hard', 'easy'), 'hard');
  assert.equal(birthdayRole('easy', 'hard'), 'easy');
  for (const [a, b] of [['hard', 'hard'], ['easy', 'easy'], ['unknown', 'easy'], ['hard', 'unknown'], ['unknown', 'unknown']] as const) {
    assert.equal(birthdayRole(a, b), null, `${a} × ${b}`);
  }
  assert.equal(natKindOf('endpoint-independent'), 'easy');
  assert.equal(natKindOf('address-and-port-dependent'), 'hard');
  assert.equal(natKindOf('address-dependent'), 'hard');
  assert.equal(natKindOf(null), 'unknown');
});

test('the budget succeeds with ≥ 99.9 % probability; 95 % within the first ~750 probes', () => {
  const p = hitProbability(BIRTHDAY_SOCKETS, SPRAY_BUDGET);
  assert.ok(p > 0.999, `p = ${p}`);
  const k95 = probesFor(0.95, BIRTHDAY_SOCKETS);
  assert.ok(k95 > 700 && k95 < 800, `k95 = ${k95}`);
  assert.ok(hitProbability(BIRTHDAY_SOCKETS, k95) >= 0.95 && hitProbability(BIRTHDAY_SOCKETS, k95 - 1) < 0.95);
  // At the spray rate, 95 % of attempts find a port within 2 s of spraying.
  assert.ok(k95 / SPRAY_RATE_PPS < 2);
  assert.ok(SPRAY_BUDGET / SPRAY_RATE_PPS <= SPRAY_WALL_MS / 1000);
  assert.equal(PORT_SPACE, 64512);
});

test('gate: one attempt per peer, at most MAX_CONCURRENT per node, cool-down doubling to the cap', () => {
  const g = new BirthdayGate();
  assert.ok(g.tryStart('a', 0));
  assert.equal(g.tryStart('a', 0), false, 'one per peer');
  for (let i = 1; i < MAX_CONCURRENT; i++) assert.ok(g.tryStart(`p${i}`, 0));
  assert.equal(g.tryStart('z', 0), false, 'node limit');
  g.finish('a', false, 1000);
  assert.ok(g.tryStart('z', 1000), 'a slot freed');
  assert.equal(g.tryStart('a', 1000 + COOLDOWN_MS - 1), false, 'cool-down');
  assert.equal(g.notBefore('a'), 1000 + COOLDOWN_MS);
  g.finish('z', true, 1000);
  assert.ok(g.tryStart('a', 1000 + COOLDOWN_MS));
  g.finish('a', false, 100_000);
  assert.equal(g.notBefore('a'), 100_000 + 2 * COOLDOWN_MS, 'doubled');
  let t = 100_000;
  for (let i = 0; i < 10; i++) { t = g.notBefore('a'); assert.ok(g.tryStart('a', t)); g.finish('a', false, t); }
  assert.equal(g.notBefore('a') - t, COOLDOWN_MAX_MS, 'capped');
  assert.ok(g.tryStart('a', g.notBefore('a')));
  g.finish('a', true, 0);
  assert.equal(g.notBefore('a'), 0, 'success clears the failures');
  assert.equal(g.isRunning('a'), false);
  g.forget('p1');
  assert.equal(g.active, MAX_CONCURRENT - 2);
});

test('spray: never above the rate, stops at the budget and at the wall time, no port twice', () => {
  let seed = 1;
  const rnd = (): number => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
  const s = new SprayPlan(0, rnd);
  const ports = new Set<number>();
  let t = 0;
  for (; !s.done(t); t += 10) {
    for (const p of s.next(t)) { assert.ok(p >= 1024 && p <= 65535); assert.ok(!ports.has(p)); ports.add(p); }
    assert.ok(s.sent <= Math.floor((t / 1000) * SPRAY_RATE_PPS) + 1, `rate at ${t} ms: ${s.sent}`);
  }
  assert.equal(s.sent, SPRAY_BUDGET);
  assert.equal(ports.size, SPRAY_BUDGET);
  assert.ok(t <= SPRAY_BUDGET / SPRAY_RATE_PPS * 1000 + 10, `budget spent at ${t} ms`);
  const slow = new SprayPlan(0, rnd, 10);
  slow.next(0);
  slow.next(SPRAY_WALL_MS - 1);
  assert.ok(slow.done(SPRAY_WALL_MS));
  assert.deepEqual(slow.next(SPRAY_WALL_MS), [], 'nothing after the wall time');
  assert.ok(slow.sent <= 101);
});
