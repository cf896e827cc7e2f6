// One agent per state directory: `agent.pid` in the directory names the agent that owns it. Two
// agents on one directory would fight over the node key's control stream (each replacing the
// other's, dozens of times a second), so the second one refuses to start and names the first.
//
//   agent.pid   {"pid":1234,"bootId":"…"} — created with link(2), which fails if it exists
//
// A lock is stale, and taken over, when its pid is gone, is not a pinhole process, or was written
// in an earlier boot (the state dir outlives reboots; pids do not). Not flock(2): Node has no
// binding for it, and a pid the user can read is what the error message needs anyway.
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE = 'agent.pid';

export class StateDirInUseError extends Error {
  override readonly name = 'StateDirInUseError';
  constructor(readonly dir: string, readonly pid: number) {
    super(`state dir ${dir} is in use by pinhole agent pid ${pid}: stop it first, or give this agent another --state-dir`);
  }
}

export interface StateLock {
  readonly path: string;
  /** Removes the lock if it is still ours (also safe to call from an 'exit' handler). */
  release(): void;
}

interface LockContent { pid: number; bootId: string | null }

function bootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return null;
  }
}

/** True if pid runs now and looks like a pinhole process (pids are reused). */
function pinholeAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('pinhole');
  } catch {
    return true; // no /proc to ask: a live pid is taken at its word
  }
}

function parseLock(text: string): LockContent | null {
  try {
    const v = JSON.parse(text) as Partial<LockContent>;
    if (typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0) return { pid: v.pid, bootId: typeof v.bootId === 'string' ? v.bootId : null };
  } catch { /* fall through: garbage is a stale lock */ }
  return null;
}

function isLive(lock: LockContent | null, currentBoot: string | null): lock is LockContent {
  if (!lock || lock.pid === process.pid) return false;
  if (lock.bootId !== null && currentBoot !== null && lock.bootId !== currentBoot) return false;
  return pinholeAlive(lock.pid);
}

/** Takes the directory's lock, or throws StateDirInUseError naming the agent that holds it. */
export async function lockStateDir(dir: string): Promise<StateLock> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, LOCK_FILE);
  const boot = bootId();
  const mine = `${JSON.stringify({ pid: process.pid, bootId: boot })}\n`;
  const tmp = join(dir, `.${LOCK_FILE}.${process.pid}`);
  await writeFile(tmp, mine, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(tmp, path);
        return {
          path,
          release: () => {
            try {
              if (readFileSync(path, 'utf8') === mine) unlinkSync(path);
            } catch { /* already gone */ }
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const text = await readFile(path, 'utf8').catch(() => null);
      if (text === null) continue; // released between our link and read: try again
      const held = parseLock(text);
      if (isLive(held, boot)) throw new StateDirInUseError(dir, held.pid);
      // Stale: remove it only if it is still the one we judged (another agent may have taken over).
      if ((await readFile(path, 'utf8').catch(() => null)) === text) await unlink(path).catch(() => undefined);
    }
    const held = parseLock(await readFile(path, 'utf8').catch(() => ''));
    throw new StateDirInUseError(dir, held?.pid ?? 0);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
