// The agent's collector switch (agent/daemon/collector-mode.ts): once, on the first call, unless
// the user chose V8's flags; and V8 takes the flag (a child process reports the flag's effect).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { collectorForBulkRelay } from '../../agent/daemon/collector-mode.js';

test('turns incremental marking off once, and not at all when PINHOLE_V8_FLAGS is set', () => {
  const said: string[] = [];
  const log = { info: (msg: string) => { said.push(msg); } } as never;
  const off = collectorForBulkRelay(log, {});
  off();
  off();
  assert.equal(said.length, 1);
  assert.match(said[0]!, /incremental marking off/);
  const chosen: string[] = [];
  collectorForBulkRelay({ info: (m: string) => { chosen.push(m); } } as never, { PINHOLE_V8_FLAGS: '' })();
  assert.deepEqual(chosen, []);
});

test('after the switch V8 collects without incremental marking (a child process allocating with --trace-gc)', () => {
  const mod = fileURLToPath(new URL('../../agent/daemon/collector-mode.js', import.meta.url));
  const script = `
    import { setFlagsFromString } from 'node:v8';
    import { collectorForBulkRelay } from ${JSON.stringify(mod)};
    setFlagsFromString('--trace-gc');
    collectorForBulkRelay({ info() {} }, {})();
    const keep = [];
    for (let i = 0; i < 8000; i++) { keep.push({ a: new Array(5000).fill(i) }); if (keep.length > 2000) keep.shift(); }
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.match(out, /Mark-Compact/, 'old-generation collections ran');
  assert.doesNotMatch(out, /incremental marking|since start of marking/, 'none of them incremental');
});
