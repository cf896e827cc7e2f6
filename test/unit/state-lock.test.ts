// One agent per state directory (agent.pid): a live pinhole agent's lock refuses a second one
// with its pid; a lock left by a dead process, a non-pinhole process reusing the pid, an earlier
// boot or garbage is taken over; release removes only our own lock.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCK_FILE, lockStateDir, StateDirInUseError } from '../../agent/daemon/state-lock.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pinhole-lock-'));
  dirs.push(d);
  return join(d, 'state');
}

/** A live process whose command line says pinhole (as an agent's does), or not. */
async function holder(pinhole: boolean): Promise<ChildProcess> {
  const c = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', pinhole ? 'pinhole-agent-stand-in' : 'someone-else'], { stdio: 'ignore' });
  children.push(c);
  await new Promise((r) => c.once('spawn', r));
  return c;
}

const boot = (): string => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const writeLock = (dir: string, pid: number, bootId: string | null): Promise<void> =>
  writeFile(join(dir, LOCK_FILE), `${JSON.stringify({ pid, bootId })}\n`);

test('the first agent takes the lock; its file names our pid; release removes it', async () => {
  const dir = await freshDir();
  const lock = await lockStateDir(dir);
  assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  lock.release();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
});

test('a live pinhole agent\'s lock refuses a second one, naming its pid in one line, and is left alone', async () => {
  const dir = await freshDir();
  await lockStateDir(dir).then((l) => l.release()); // creates the dir
  const other = await holder(true);
  await writeLock(dir, other.pid!, boot());
  await assert.rejects(lockStateDir(dir), (err: Error) =>
    err instanceof StateDirInUseError && err.pid === other.pid && err.message.includes(`pid ${other.pid}`) && !err.message.includes('\n'));
  assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid, other.pid, 'the holder keeps its lock');
});

test('stale locks are taken over: dead pid, a reused pid that is not pinhole, an earlier boot, garbage', async () => {
  const dead = await holder(true);
  dead.kill('SIGKILL');
  await new Promise((r) => dead.once('exit', r));
  const stranger = await holder(false);
  const live = await holder(true);
  for (const name of ['dead pid', 'not pinhole', 'earlier boot', 'garbage']) {
    const dir = await freshDir();
    await lockStateDir(dir).then((l) => l.release());
    if (name === 'dead pid') await writeLock(dir, dead.pid!, boot());
    if (name === 'not pinhole') await writeLock(dir, stranger.pid!, boot());
    if (name === 'earlier boot') await writeLock(dir, live.pid!, '00000000-0000-0000-0000-000000000000');
    if (name === 'garbage') await writeFile(join(dir, LOCK_FILE), '{"pid": "nope"');
    const lock = await lockStateDir(dir);
    assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid, process.pid, name);
    lock.release();
  }
});

test('release leaves a lock that another agent took over in the meantime', async () => {
  const dir = await freshDir();
  const lock = await lockStateDir(dir);
  const other = await holder(true);
  await writeLock(dir, other.pid!, boot());
  lock.release();
  assert.equal(JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')).pid, other.pid);
});
