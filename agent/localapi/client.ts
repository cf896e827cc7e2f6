// The CLI's side of the local API.
import { request } from 'node:http';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { loadNative } from '../tun/native.js';

export const DEFAULT_SOCKET = '/run/pinhole/pinhole.sock';

export class AgentUnreachableError extends Error {
  override readonly name = 'AgentUnreachableError';
}

/** The agent answered with an error: `status` 403 is a refusal by its authorization. */
export class LocalApiCallError extends Error {
  override readonly name = 'LocalApiCallError';
  constructor(readonly status: number, message: string) { super(message); }
}

export function localApiCall<T>(socketPath: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          reject(new Error(`agent at ${socketPath} sent a malformed reply`));
          return;
        }
        const status = res.statusCode ?? 500;
        if (status >= 400) {
          const msg = (parsed as { error?: string }).error ?? `HTTP ${status}`;
          reject(new LocalApiCallError(status, msg));
        } else {
          resolve(parsed as T);
        }
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(new AgentUnreachableError(`cannot reach the pinhole agent at ${socketPath}: ${whyUnreachable(socketPath, err)}`));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('the agent did not answer within 10 s')));
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

function whyUnreachable(socketPath: string, err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ENOENT': case 'ECONNREFUSED': return 'is the agent running?';
    case 'EACCES': return `permission denied: ${whoMayConnect(socketPath)}`;
    default: return err.message;
  }
}

/** Who the socket file lets in, from its owner, group and mode (best effort, for the message). */
function whoMayConnect(socketPath: string): string {
  let st;
  try {
    st = statSync(socketPath);
  } catch {
    return `${dirname(socketPath)} is closed to this user; run as root`;
  }
  const owner = st.uid === 0 ? 'root' : `uid ${st.uid}`;
  if ((st.mode & 0o060) !== 0o060) return `the socket admits ${owner} only (the agent was started without --operator-group or --admin-group)`;
  return `the socket admits ${owner} and members of group ${groupName(st.gid)}`;
}

function groupName(gid: number): string {
  try {
    return loadNative().groupName(gid) ?? `gid ${gid}`;
  } catch {
    return `gid ${gid}`;
  }
}
