// The coordinator's base URL as the user typed it, normalised, and the API URLs built from it.

export class CoordinatorUrlError extends Error {
  override readonly name = 'CoordinatorUrlError';
}

/** "http://203.0.113.10:8080/" → "http://203.0.113.10:8080"; only http(s), no query or fragment. */
export function normalizeCoordinatorUrl(text: string): string {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new CoordinatorUrlError(`not a URL: ${JSON.stringify(text.slice(0, 100))} (expected http://HOST:PORT)`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new CoordinatorUrlError(`coordinator URL must be http:// or https://, not ${u.protocol}`);
  if (u.search || u.hash || u.username || u.password) throw new CoordinatorUrlError('coordinator URL must not carry a query, fragment or credentials');
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** An HTTP API URL such as /api/v1/register. */
export function apiUrl(base: string, path: string): string {
  return `${base}${path}`;
}

/** The stream's WebSocket URL: same host, ws:// or wss://. */
export function streamUrl(base: string): string {
  return `${base.replace(/^http/, 'ws')}/api/v1/stream`;
}
