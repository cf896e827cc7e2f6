// The coordinator's base URL as the user typed it, normalised, and the API URLs built from it.
// Replicas of one coordinator (one key, one PostgreSQL database) are given as a list,
// "URL1,URL2,...": it travels and is stored as that one string; whoever dials tries them in turn.

export class CoordinatorUrlError extends Error {
  override readonly name = 'CoordinatorUrlError';
}

/** Replicas of one coordinator at most in a list. */
export const MAX_COORDINATOR_URLS = 8;

/**
 * "http://203.0.113.10:8080/" → "http://203.0.113.10:8080"; only http(s), no query or fragment.
 * A comma-separated list is normalised URL by URL (duplicates dropped), at most 8.
 */
export function normalizeCoordinatorUrl(text: string): string {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length > 1) {
    if (parts.length > MAX_COORDINATOR_URLS) throw new CoordinatorUrlError(`at most ${MAX_COORDINATOR_URLS} coordinator URLs, not ${parts.length}`);
    if (parts.some((p) => p === '')) throw new CoordinatorUrlError('an empty coordinator URL in the list');
    return [...new Set(parts.map(normalizeOne))].join(',');
  }
  return normalizeOne(text);
}

/** The URLs of a (normalised) list, in order. */
export function coordinatorUrls(list: string): string[] {
  return list.split(',');
}

function normalizeOne(text: string): string {
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
