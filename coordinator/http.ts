// The little HTTP layer the API needs: a route table, JSON bodies with a size limit, JSON replies,
// and refusals turned into {"error": "one line"} with their status.
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as z from 'zod/mini';
import { describeZodError } from '../proto/control/schemas.js';
import { callerOf, type ChannelCaller } from './control-channels.js';
import { BadRequestError, RequestRefusedError } from './errors.js';
import type { Logger } from './log.js';

export interface ApiRequest {
  method: string;
  /** Captures of the route's pattern (path parameters). */
  params: string[];
  headers: IncomingMessage['headers'];
  /** Who is calling, for requests inside a control channel (null on the public port). */
  caller: ChannelCaller | null;
  /** The TCP peer's address (rate limits of the public port). */
  remoteAddress: string;
  /** The JSON body; an empty body reads as {}. */
  body(): Promise<unknown>;
}

export interface ApiReply {
  status?: number;
  body: unknown;
  /** Extra response headers (the console's Set-Cookie). */
  headers?: Record<string, string>;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: RegExp;
  /** Runs before the body is read (the admin token check). */
  guard?: (req: ApiRequest) => void;
  /** Largest body this route reads (default: SMALL_BODY_LIMIT); checked after the guard. */
  bodyLimit?: number;
  handle(req: ApiRequest): Promise<ApiReply>;
}

/** What an unauthenticated request may send (a registration is well under 4 KiB). */
export const SMALL_BODY_LIMIT = 16 * 1024;

/** The caller of a request inside a control channel; 401 outside one. */
export function requireCaller(req: ApiRequest): ChannelCaller {
  if (!req.caller) throw new RequestRefusedError(401, 'this API is served only inside the control channel');
  return req.caller;
}

export class PayloadTooLargeError extends RequestRefusedError {
  override readonly name = 'PayloadTooLargeError';
  constructor(limit: number) { super(413, `body larger than ${limit} bytes`); }
}

export function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > limit) {
        done = true;
        reject(new PayloadTooLargeError(limit));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('error', (err) => { if (!done) { done = true; reject(err); } });
    req.on('end', () => {
      if (done) return;
      done = true;
      const text = Buffer.concat(chunks).toString('utf8');
      if (text.trim() === '') return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch {
        reject(new BadRequestError('body is not valid JSON'));
      }
    });
  });
}

/** Parses with a schema, or refuses with the first problem as a one-line reason. */
export function parseWith<T extends z.core.$ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = z.safeParse(schema, value);
  if (!r.success) throw new BadRequestError(describeZodError(r.error));
  return r.data;
}

/** A positive integer id from a path segment. */
export function parseId(text: string | undefined, what: string): number {
  const n = Number(text);
  if (!text || !/^\d{1,15}$/.test(text) || !Number.isSafeInteger(n) || n <= 0) throw new BadRequestError(`${what} id must be a positive integer`);
  return n;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** Finds the route, runs it, and answers; refusals become 4xx, anything else a logged 500. */
export async function dispatch(routes: Route[], req: IncomingMessage, res: ServerResponse, log: Logger): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://coordinator');
  const path = url.pathname;
  let pathMatched = false;
  try {
    for (const route of routes) {
      const m = route.path.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== req.method) continue;
      const apiReq: ApiRequest = {
        method: req.method,
        params: m.slice(1),
        headers: req.headers,
        caller: callerOf(req.socket),
        remoteAddress: req.socket.remoteAddress ?? 'unknown',
        body: () => readJsonBody(req, route.bodyLimit ?? SMALL_BODY_LIMIT),
      };
      route.guard?.(apiReq);
      const reply = await route.handle(apiReq);
      return sendJson(res, reply.status ?? 200, reply.body, reply.headers);
    }
    if (pathMatched) throw new RequestRefusedError(405, `method ${req.method} not allowed on ${path}`);
    throw new RequestRefusedError(404, `no such API path: ${path}`);
  } catch (err) {
    if (err instanceof RequestRefusedError) {
      if (!res.headersSent) sendJson(res, err.status, { error: err.message.split('\n')[0] });
      return;
    }
    log.error({ err: (err as Error).message, stack: (err as Error).stack, path }, 'request failed');
    if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
  }
}
