// A short run of the network-input fuzzer (scripts/fuzz.ts does ≥ 1,000,000): 2,000 inputs per
// target through every decoder and state machine that takes bytes from the network, with a fresh
// seed each run (printed, so a failure reproduces with `node dist/scripts/fuzz.js --target T --seed S`).
// Also checks the harness itself: a target that throws or breaks an invariant is reported, with its input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FUZZ_TARGETS } from '../../scripts/fuzz/targets.js';
import { runTarget } from '../../scripts/fuzz/runner.js';
import { invariant } from '../../scripts/fuzz/target.js';
import { useAddonSodium } from '../../agent/tun/addon-sodium.js';
import { sodiumNative, useSodium } from '../../proto/sodium.js';

const PER_TARGET = 2000;
const seed = (Date.now() ^ 0x5eed) >>> 0;

for (const t of FUZZ_TARGETS) {
  test(`fuzz ${t.name}: ${PER_TARGET} inputs, no crash (seed ${seed})`, { timeout: 60_000 }, async () => {
    const r = await runTarget(t.name, t.make, { inputs: PER_TARGET, seed });
    assert.equal(r.crash, null, r.crash ? `${r.crash.kind} at input #${r.crash.index} (seed ${seed}): ${r.crash.error}\ninput: ${r.crash.hex}` : '');
    assert.equal(r.inputs, PER_TARGET);
  });
}

// The targets that open, seal or handshake once more on the agent daemon's own libsodium calls
// (the addon's, agent/tun/addon-sodium.ts; the loop above ran them on sodium-native's).
const CRYPTO_TARGETS = ['wireguard-responder', 'wireguard-device', 'relay-trains', 'disco'];
test(`fuzz ${CRYPTO_TARGETS.join(', ')} on the addon's libsodium: ${PER_TARGET} inputs each, no crash (seed ${seed})`, { timeout: 120_000 }, async () => {
  useAddonSodium();
  try {
    for (const name of CRYPTO_TARGETS) {
      const t = FUZZ_TARGETS.find((x) => x.name === name);
      assert.ok(t, name);
      const r = await runTarget(t.name, t.make, { inputs: PER_TARGET, seed });
      assert.equal(r.crash, null, r.crash ? `${name}: ${r.crash.kind} at input #${r.crash.index} (seed ${seed}): ${r.crash.error}\ninput: ${r.crash.hex}` : '');
    }
  } finally {
    useSodium(sodiumNative());
  }
});

test('the harness reports a crash with its input, and the same seed finds the same input', async () => {
  const make = () => ({
    name: 'trap', corpus: [Uint8Array.from([1, 2, 3, 4])],
    run(input: Uint8Array) { invariant(!(input.length === 4 && input[0] === 0), 'trap'); if (input.length > 300) throw new TypeError('boom'); },
  });
  const a = await runTarget('trap', make, { inputs: 100_000, seed: 42 });
  const b = await runTarget('trap', make, { inputs: 100_000, seed: 42 });
  assert.ok(a.crash, 'the trap was found');
  assert.deepEqual({ ...b.crash!, error: b.crash!.error.split('\n')[0] }, { ...a.crash, error: a.crash.error.split('\n')[0] });
  assert.match(a.crash.error, /FuzzInvariantError: trap|TypeError: boom/);
  assert.ok(a.crash.hex.length > 0);
});
