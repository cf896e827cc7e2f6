// The mesh demo (scripts/demo-mesh.ts) as a user runs it: a coordinator, an auth key, three agents
// that join with `pinhole up` and ping each other pairwise, `pinhole status`, and nothing of the
// run left behind. Needs root.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { listNamespaces } from '../../scripts/natlab/index.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';

const run = promisify(execFile);

async function demo(): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, 'dist', 'scripts', 'demo-mesh.js')], { cwd: REPO_ROOT, timeout: 120_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

test('mesh demo: three agents join one coordinator with an auth key, ping every pair, leave nothing behind', { timeout: 150_000 }, async () => {
  const { code, output } = await demo();
  assert.equal(code, 0, `demo exited ${code}:\n${output}`);
  assert.match(output, /coordinator started: http:\/\/203\.0\.113\.\d+:8080 \(pid \d+/);
  assert.match(output, /auth key created: /);
  const assigned = [...output.matchAll(/address assigned (100\.\d+\.\d+\.\d+) /g)].map((m) => m[1]);
  assert.equal(assigned.length, 3, 'three agents got an address');
  assert.equal(new Set(assigned).size, 3);
  const pairs = [...output.matchAll(/^ {2}(\w+) \(100\.[\d.]+\) -> (\w+) \(100\.[\d.]+\): 3\/3 replies, avg [\d.]+ ms$/gm)];
  assert.equal(pairs.length, 6, 'all six ordered pairs answered');
  assert.match(output, /pinhole status\n {2}node: alpha \(100\./);
  assert.equal(output.match(/^ {2}peer: (beta|gamma) \(/gm)?.length, 2, 'status lists both peers');
  assert.match(output, /OK: three nodes joined/);

  const prefix = output.match(/natlab (nl-mesh-[a-z0-9]+)/)?.[1];
  assert.ok(prefix, 'the demo names its lab');
  const left = (await listNamespaces()).filter((ns) => ns.startsWith(`${prefix}-`));
  assert.deepEqual(left, [], 'no namespace of the run is left');
  const tuns = [...output.matchAll(/--tun (pm[0-9a-f]+\w)/g)].map((m) => m[1]!);
  assert.equal(tuns.length, 3);
  for (const tun of tuns) {
    const r = await run('pgrep', ['-f', '--', `--tun ${tun}`]).then(() => 'running', () => 'gone');
    assert.equal(r, 'gone', `agent with --tun ${tun} still running`);
  }
});
