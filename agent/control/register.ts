// Registration over HTTP: fetch the coordinator's key and a fresh challenge, then register the
// node's public keys with a proof that this node holds the node private key (proof.ts).
import { makeProof, registrationFields } from '../../proto/control/proof.js';
import {
  ErrorReply, RegisterResponse, ServerInfo, describeZodError, type RegisterRequest, type SelfNode,
} from '../../proto/control/schemas.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
import type { z } from 'zod';
import { apiUrl } from './coordinator-url.js';
import { markedHttpRequest } from '../routing/marked-socket.js';

/** How long one HTTP exchange with the coordinator may take. */
export const HTTP_TIMEOUT_MS = 8_000;

export class CoordinatorUnreachableError extends Error {
  override readonly name = 'CoordinatorUnreachableError';
}

/** The coordinator answered with a refusal; `reason` is its one-line explanation. */
export class CoordinatorRefusedError extends Error {
  override readonly name = 'CoordinatorRefusedError';
  constructor(readonly status: number, readonly reason: string) {
    super(reason);
  }
}

/** The coordinator answered 2xx with something that is not what the protocol says. */
export class CoordinatorProtocolError extends Error {
  override readonly name = 'CoordinatorProtocolError';
}

/** The whole of one registration (two requests) must fit the local API's 10 s patience. */
export const REGISTRATION_DEADLINE_MS = 9_000;

export interface RegisterOptions {
  coordinatorUrl: string;
  nodePrivate: Uint8Array;
  nodeKey: string;
  discoKey: string;
  hostname: string;
  authKey?: string;
  /** Subnet routes and exit node this node offers (pending until approved on the coordinator). */
  advertiseRoutes?: string[];
  advertiseExitNode?: boolean;
  signal?: AbortSignal;
  /** SO_MARK on the connections, so they stay out of an exit node's default route (socket-mark.ts). */
  socketMark?: number;
}

export interface Registered {
  node: SelfNode;
  serverKey: string;
}

/** JSON request with a timeout; refusals become CoordinatorRefusedError with the server's reason. */
export async function coordinatorCall<T>(
  base: string, method: 'GET' | 'POST', path: string, schema: z.ZodType<T>, body?: unknown, signal?: AbortSignal, socketMark?: number,
): Promise<T> {
  const timeout = AbortSignal.timeout(HTTP_TIMEOUT_MS);
  const url = apiUrl(base, path);
  let res: { ok: boolean; status: number; statusText: string };
  let text: string;
  try {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    const init = {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    };
    if (socketMark) {
      ({ text, ...res } = await markedHttpRequest(url, init, socketMark));
    } else {
      const r = await fetch(url, init);
      res = r;
      text = await r.text();
    }
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = timeout.aborted || signal?.aborted ? 'no answer in time' : (e.cause?.code ?? e.cause?.message ?? e.message);
    throw new CoordinatorUnreachableError(`cannot reach the coordinator at ${base}: ${why}`);
  }
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const e = ErrorReply.safeParse(json);
    const reason = e.success ? e.data.error.split('\n')[0]! : `HTTP ${res.status} ${res.statusText}`.trim();
    throw new CoordinatorRefusedError(res.status, reason);
  }
  const r = schema.safeParse(json);
  if (!r.success) throw new CoordinatorProtocolError(`unexpected reply from ${method} ${path}: ${describeZodError(r.error)}`);
  return r.data;
}

export async function fetchServerInfo(base: string, signal?: AbortSignal, socketMark?: number): Promise<ServerInfo> {
  return coordinatorCall(base, 'GET', '/api/v1/server', ServerInfo, undefined, signal, socketMark);
}

export async function registerNode(opts: RegisterOptions): Promise<Registered> {
  const info = await fetchServerInfo(opts.coordinatorUrl, opts.signal, opts.socketMark);
  const ids = { nodeKey: opts.nodeKey, discoKey: opts.discoKey, hostname: opts.hostname };
  const req: RegisterRequest = {
    ...ids,
    ...(opts.authKey !== undefined ? { authKey: opts.authKey } : {}),
    challenge: info.challenge,
    proof: makeProof(opts.nodePrivate, decodeKey(info.serverKey), info.challenge, registrationFields(ids)),
    advertiseRoutes: opts.advertiseRoutes ?? [],
    advertiseExitNode: opts.advertiseExitNode ?? false,
  };
  const reply = await coordinatorCall(opts.coordinatorUrl, 'POST', '/api/v1/register', RegisterResponse, req, opts.signal, opts.socketMark);
  if (reply.node.nodeKey !== opts.nodeKey) throw new CoordinatorProtocolError('the coordinator registered a different node key');
  return { node: reply.node, serverKey: info.serverKey };
}
