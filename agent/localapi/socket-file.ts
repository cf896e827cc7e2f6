// The local API's socket file: its directory checked (created 0755 if missing), a socket left by a
// crash replaced, a live agent on the path left alone, and the socket given its final mode and
// group before anyone can connect to it.
import { chmod, chown, link, lstat, mkdir, mkdtemp, rm, stat, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { dirname, join } from 'node:path';
import { socketDirProblem } from './access.js';

export class LocalApiSocketError extends Error {
  override readonly name = 'LocalApiSocketError';
}

const LIVE_PROBE_MS = 2000;

const isCode = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException | null)?.code === code;

/** True if a process accepts connections on the socket path (a listener that hangs counts as live). */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    const done = (live: boolean): void => { clearTimeout(timer); s.destroy(); resolve(live); };
    const timer = setTimeout(() => done(true), LIVE_PROBE_MS);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Checks the socket's directory (creating it 0755 if missing) and that no live agent holds the
 * path. Run it before the agent starts anything, so a bad --socket fails the start at once.
 */
export async function checkSocketPath(path: string, agentUid: number): Promise<void> {
  const dir = dirname(path);
  let st = await stat(dir).catch((err: unknown) => { if (isCode(err, 'ENOENT')) return null; throw err; });
  if (!st) {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await chmod(dir, 0o755); // mkdir's mode went through the umask
    st = await stat(dir);
  }
  const problem = socketDirProblem(dir, { isDirectory: st.isDirectory(), uid: st.uid, mode: st.mode }, agentUid);
  if (problem) throw new LocalApiSocketError(`refusing to put the local API socket in ${dir}: ${problem}`);
  await staleSocketAt(path);
}

/** True if a socket left by a dead agent is at the path; refuses a live one or a non-socket. */
async function staleSocketAt(path: string): Promise<boolean> {
  const existing = await lstat(path).catch((err: unknown) => { if (isCode(err, 'ENOENT')) return null; throw err; });
  if (!existing) return false;
  if (!existing.isSocket()) throw new LocalApiSocketError(`${path} exists and is not a socket; refusing to replace it`);
  if (await socketInUse(path)) throw new LocalApiSocketError(`another pinhole agent is already listening on ${path}`);
  return true;
}

export interface SocketPermissions {
  mode: number;
  /** Group of the socket file; null keeps the agent's. */
  gid: number | null;
}

/** Puts `server` on `path` with these permissions; returns the socket file's inode (for close). */
export async function listenOnSocketFile(server: Server, path: string, perms: SocketPermissions): Promise<number> {
  // Bound inside a fresh 0700 directory, chmod/chown there, then link()ed into place: no umask
  // window, and link() fails rather than replace a socket another agent put there meanwhile.
  const priv = await mkdtemp(join(dirname(path), '.pinhole-api-'));
  const tmp = join(priv, 's');
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(tmp, () => { server.off('error', reject); resolve(); });
    });
    await chmod(tmp, perms.mode);
    if (perms.gid !== null) await chown(tmp, process.getuid?.() ?? 0, perms.gid);
    if (await staleSocketAt(path)) await unlink(path).catch((err: unknown) => { if (!isCode(err, 'ENOENT')) throw err; });
    try {
      await link(tmp, path);
    } catch (err) {
      if (isCode(err, 'EEXIST')) throw new LocalApiSocketError(`another pinhole agent is already listening on ${path}`);
      throw err;
    }
    return (await lstat(path)).ino;
  } catch (err) {
    if (server.listening) await new Promise((r) => server.close(r));
    throw err;
  } finally {
    await rm(priv, { recursive: true, force: true });
  }
}

/** Removes the socket file if it is still the one we created (never another agent's). */
export async function removeSocketFile(path: string, ino: number): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (st?.ino === ino) await unlink(path).catch(() => undefined);
}
