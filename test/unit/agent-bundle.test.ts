// The agent runs from its minified bundle (scripts/build-agent-bundle.ts) only when that bundle
// was built from the current dist/agent/: bin/pinhole's choice, checked on a copy of bin/pinhole
// beside two stand-in entries; then the real build: the bundle is there, current, and runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PINHOLE_BIN, REPO_ROOT } from '../../scripts/tunnels/paths.js';

const run = promisify(execFile);

async function entryRun(bin: string, env: Record<string, string> = {}): Promise<string> {
  const { stdout } = await run('node', [bin, 'status'], { env: { ...process.env, ...env }, timeout: 20_000 });
  return stdout.trim();
}

test('bin/pinhole runs the bundle when it is as new as dist/agent/, else dist/agent/; PINHOLE_BUNDLE=0 forces dist/agent/', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-entry-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist', 'agent', 'cli'), { recursive: true });
    copyFileSync(PINHOLE_BIN, join(dir, 'bin', 'pinhole'));
    const bin = join(dir, 'bin', 'pinhole');
    const modules = join(dir, 'dist', 'agent', 'cli', 'main.js');
    const bundle = join(dir, 'dist', 'bundle', 'agent.js');
    writeFileSync(modules, "export function main() { console.log('modules'); }\n");
    assert.equal(await entryRun(bin), 'modules', 'no bundle built');
    mkdirSync(join(dir, 'dist', 'bundle'));
    writeFileSync(bundle, "export function main() { console.log('bundle'); }\n");
    const t = Date.now() / 1000;
    utimesSync(modules, t - 10, t - 10);
    utimesSync(bundle, t, t);
    assert.equal(await entryRun(bin), 'bundle', 'bundle built after dist/agent/');
    assert.equal(await entryRun(bin, { PINHOLE_BUNDLE: '0' }), 'modules', 'PINHOLE_BUNDLE=0');
    utimesSync(modules, t + 10, t + 10);
    assert.equal(await entryRun(bin), 'modules', 'dist/agent/ rebuilt after the bundle: the bundle is stale');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the build made a current bundle, and the CLI runs from it', async () => {
  const bundle = join(REPO_ROOT, 'dist', 'bundle', 'agent.js');
  const modules = join(REPO_ROOT, 'dist', 'agent', 'cli', 'main.js');
  assert.ok(statSync(bundle).mtimeMs >= statSync(modules).mtimeMs, 'dist/bundle/agent.js is older than dist/agent/cli/main.js: run npm run build:bundle');
  // genkey | pubkey through the bundle, checked against the unbundled build: same code, same answer.
  const { stdout: key } = await run('node', [PINHOLE_BIN, 'genkey']);
  const pub = async (env: Record<string, string>): Promise<string> => {
    const child = execFile('node', [PINHOLE_BIN, 'pubkey'], { env: { ...process.env, ...env } });
    child.stdin!.end(key);
    let out = '';
    child.stdout!.on('data', (c: Buffer) => { out += String(c); });
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0);
    return out.trim();
  };
  const bundled = await pub({});
  assert.match(bundled, /^[A-Za-z0-9+/]{43}=$/);
  assert.equal(bundled, await pub({ PINHOLE_BUNDLE: '0' }));
});
