// TurboFan for a busy agent only (agent/daemon/optimizer-on-load.ts): an idle trickle of packet
// batches leaves it off, a busy window or bulk relaying turns it on once, PINHOLE_V8_FLAGS leaves
// V8 alone; and V8 really starts optimizing after the switch in a process started without it (a
// child process asks V8 with %GetOptimizationStatus), and the agent as shipped starts without it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BUSY_CPU_SHARE, BUSY_WINDOW_BATCHES, BUSY_WINDOW_MS, OptimizerOnLoad, type OptimizerClock } from '../../agent/daemon/optimizer-on-load.js';

class FakeClock implements OptimizerClock {
  ms = 1_000;
  cpu = 0;
  now(): number { return this.ms; }
  cpuMicros(): number { return this.cpu; }
  /** Advances the clock by `ms` while the process uses `share` of a core. */
  spend(ms: number, share: number): void { this.ms += ms; this.cpu += ms * 1000 * share; }
}

function harness(env: NodeJS.ProcessEnv = {}): { opt: OptimizerOnLoad; clock: FakeClock; enabled: () => number; said: string[] } {
  const clock = new FakeClock();
  let enabled = 0;
  const said: string[] = [];
  const opt = new OptimizerOnLoad({ log: { info: (m: string) => { said.push(m); } }, env, clock, enable: () => { enabled++; } });
  return { opt, clock, enabled: () => enabled, said };
}

/** `n` batches spread evenly over `ms` at `share` of a core. */
function batches(h: ReturnType<typeof harness>, n: number, ms: number, share: number): void {
  for (let i = 0; i < n; i++) { h.clock.spend(ms / n, share); h.opt.noteBatch(); }
}

test('an idle trickle of batches never turns the compiler on, however long it runs', () => {
  const h = harness();
  // Keepalives and disco: a batch every few seconds at a fraction of a percent of a core, for a day.
  batches(h, 30_000, 24 * 3600 * 1000, 0.001);
  // Frequent but cheap batches: the process is not busy.
  batches(h, 10 * BUSY_WINDOW_BATCHES, 10 * BUSY_WINDOW_MS / 2, BUSY_CPU_SHARE / 4);
  // Busy CPU but batches too far apart (start-up work while a few packets trickle in).
  batches(h, 4 * BUSY_WINDOW_BATCHES, 4 * BUSY_WINDOW_MS * 3, 0.9);
  assert.equal(h.enabled(), 0);
  assert.equal(h.opt.on, false);
  assert.deepEqual(h.said, []);
});

test('a busy window turns it on once, and says why', () => {
  const h = harness();
  batches(h, BUSY_WINDOW_BATCHES - 1, 50, 0.8);
  assert.equal(h.enabled(), 0, 'not before a whole window');
  h.clock.spend(1, 0.8);
  h.opt.noteBatch();
  assert.equal(h.enabled(), 1);
  assert.equal(h.opt.on, true);
  batches(h, 5 * BUSY_WINDOW_BATCHES, 100, 0.8);
  h.opt.noteBulkRelay();
  assert.equal(h.enabled(), 1, 'once for the process');
  assert.equal(h.said.length, 1);
  assert.match(h.said[0]!, /^busy \(256 packet batches in \d+ ms at 80% of a core\): V8's optimizing compiler on/);
});

test('an idle window does not count against the next busy one', () => {
  const h = harness();
  batches(h, BUSY_WINDOW_BATCHES * 3 / 4, 60_000, 0.001);
  // The window that began idle is judged over its whole length: not busy, and it starts over.
  batches(h, BUSY_WINDOW_BATCHES / 4, 100, 0.9);
  assert.equal(h.enabled(), 0);
  batches(h, BUSY_WINDOW_BATCHES, 300, 0.9);
  assert.equal(h.enabled(), 1);
});

test('bulk traffic through a relay turns it on at once; PINHOLE_V8_FLAGS leaves V8 alone', () => {
  const h = harness();
  h.opt.noteBulkRelay();
  assert.equal(h.enabled(), 1);
  assert.match(h.said[0]!, /bulk traffic through a relay/);
  const chosen = harness({ PINHOLE_V8_FLAGS: '' });
  batches(chosen, 4 * BUSY_WINDOW_BATCHES, 100, 1);
  chosen.opt.noteBulkRelay();
  assert.equal(chosen.enabled(), 0);
  assert.deepEqual(chosen.said, []);
});

test('onBusy runs once when busy, with or without PINHOLE_V8_FLAGS, and the log says what it did', () => {
  for (const env of [{}, { PINHOLE_V8_FLAGS: '' }]) {
    const said: string[] = [];
    let busy = 0;
    let enabled = 0;
    const opt = new OptimizerOnLoad({ log: { info: (m: string) => { said.push(m); } }, env, clock: new FakeClock(), enable: () => { enabled++; },
      onBusy: () => { busy++; return 'bulk crypto on sodium-native'; } });
    opt.noteBulkRelay();
    opt.noteBulkRelay();
    assert.equal(busy, 1);
    assert.equal(enabled, 'PINHOLE_V8_FLAGS' in env ? 0 : 1);
    assert.deepEqual(said, ['PINHOLE_V8_FLAGS' in env
      ? 'busy (bulk traffic through a relay): bulk crypto on sodium-native for this process (docs/protocol.md, "At idle")'
      : 'busy (bulk traffic through a relay): V8\'s optimizing compiler on, bulk crypto on sodium-native for this process (docs/protocol.md, "At idle")']);
  }
});

test('started with --no-turbofan, V8 optimizes a hot function only after the switch (child process)', () => {
  const mod = fileURLToPath(new URL('../../agent/daemon/optimizer-on-load.js', import.meta.url));
  // %GetOptimizationStatus bit 4 (16): the function runs optimized code (TurboFan).
  const script = `
    import { OptimizerOnLoad } from ${JSON.stringify(mod)};
    function hot(n) { let s = 0; for (let i = 0; i < n; i++) s = (s + i * 7) % 1000003; return s; }
    const optimized = () => (%GetOptimizationStatus(hot) & 16) !== 0;
    const run = () => { let x = 0; for (let k = 0; k < 3000; k++) x += hot(2000); return x; };
    run(); run();
    const before = optimized();
    const opt = new OptimizerOnLoad({ log: { info() {} }, env: {} });
    opt.noteBulkRelay();
    for (let i = 0; i < 20 && !optimized(); i++) { run(); await new Promise((r) => setTimeout(r, 20)); }
    console.log(JSON.stringify({ before, after: optimized(), on: opt.on }));
  `;
  const out = execFileSync(process.execPath, ['--no-turbofan', '--allow-natives-syntax', '--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), { before: false, after: true, on: true });
});

test('bin/pinhole starts the agent daemon without TurboFan, and only the agent', () => {
  const bin = readFileSync(fileURLToPath(new URL('../../../bin/pinhole', import.meta.url)), 'utf8');
  const flags = /const DAEMON_V8_FLAGS = (\{[^}]*\});/.exec(bin)?.[1];
  assert.ok(flags, 'DAEMON_V8_FLAGS in bin/pinhole');
  const parsed = JSON.parse(flags.replace(/'/g, '"').replace(/(\w+):/g, '"$1":')) as Record<string, string>;
  assert.match(parsed.agent!, /(^| )--no-turbofan( |$)/);
  assert.doesNotMatch(parsed.relay ?? '', /turbofan/);
});
