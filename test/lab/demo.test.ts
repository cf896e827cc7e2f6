// The demo (scripts/demo.ts) as a user runs it: two NATed sites joined by pinhole, pings answered,
// `pinhole status` shows a handshake, and nothing of the run is left behind. Needs root.
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
    const { stdout, stderr } = await run(process.execPath, [join(REPO_ROOT, 'dist', 'scripts', 'demo.js')], { cwd: REPO_ROOT, timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

test('demo: two NATed sites ping each other over pinhole and leave nothing behind', { timeout: 90_000 }, async () => {
  const { code, output } = await demo();
  assert.equal(code, 0, `demo exited ${code}:\n${output}`);
  assert.match(output, /bytes from 100\.64\.0\.2/, 'laptop -> server ping replies');
  assert.match(output, /bytes from 100\.64\.0\.1/, 'server -> laptop ping replies');
  assert.equal(output.match(/latest handshake: \d+ s ago/g)?.length, 2, 'both agents report a handshake');

  const prefix = output.match(/natlab (nl-demo-[a-z0-9]+)/)?.[1];
  assert.ok(prefix, 'the demo names its lab');
  const left = (await listNamespaces()).filter((ns) => ns.startsWith(`${prefix}-`));
  assert.deepEqual(left, [], 'no namespace of the run is left');

  const tuns = [...output.matchAll(/pinhole agent running \(pid \d+, tun (\S+),/g)].map((m) => m[1]!);
  assert.equal(tuns.length, 2, 'two agents started');
  for (const tun of tuns) {
    const r = await run('pgrep', ['-f', '--', `--tun ${tun}`]).then(() => 'running', () => 'gone');
    assert.equal(r, 'gone', `agent with --tun ${tun} still running`);
  }
});
