// The CLI's side of the local API.
import { request } from 'node:http';

export const DEFAULT_SOCKET = '/run/pinhole/pinhole.sock';

export class AgentUnreachableError extends Error {
  override readonly name = 'AgentUnreachableError';
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
        if ((res.statusCode ?? 500) >= 400) {
          const msg = (parsed as { error?: string }).error ?? `HTTP ${res.statusCode}`;
          reject(new Error(msg));
        } else {
          resolve(parsed as T);
        }
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'is the agent running?' : err.message;
      reject(new AgentUnreachableError(`cannot reach the pinhole agent at ${socketPath}: ${why}`));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('the agent did not answer within 10 s')));
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}
