// The agent's local API: HTTP/JSON over a unix socket that the CLI talks to. Every call is
// authorized from the caller's kernel credentials (access.ts) before its handler runs.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { authorize, socketPermissions, type AccessPolicy, type CallerCred, type LocalApiAccess } from './access.js';
import { callerOf, resolveAccessPolicy, type AccessGroupOptions } from './credentials.js';
import { checkSocketPath, listenOnSocketFile, removeSocketFile } from './socket-file.js';

export interface LocalApiRoute {
  /** 'read' calls are open to the operator group; 'change' calls need root or the admin group. */
  readonly access: LocalApiAccess;
  /** The command this call serves, named in a refusal ("up needs root or ..."). */
  readonly verb: string;
  handle(req: IncomingMessage): Promise<unknown> | unknown;
}

export const readCall = (verb: string, handle: LocalApiRoute['handle']): LocalApiRoute => ({ access: 'read', verb, handle });
export const changeCall = (verb: string, handle: LocalApiRoute['handle']): LocalApiRoute => ({ access: 'change', verb, handle });

export class LocalApiError extends Error {
  override readonly name = 'LocalApiError';
  constructor(readonly status: number, message: string) { super(message); }
}

export interface LocalApiOptions {
  /** Who may call what; without one, only root and the agent's own user. */
  policy?: AccessPolicy;
  /** Told about each refused call (for the agent's log); cred is null when the caller was not identified. */
  onRefused?: (cred: CallerCred | null, verb: string, reason: string) => void;
}

export interface LocalApiServer {
  readonly path: string;
  close(): Promise<void>;
}

/**
 * Resolves --admin-group/--operator-group and checks the socket path, so that a daemon with a bad
 * group or socket directory (or a live agent on its socket) refuses to start before it does anything.
 */
export async function prepareLocalApi(path: string, groups: AccessGroupOptions): Promise<AccessPolicy> {
  const policy = resolveAccessPolicy(groups);
  await checkSocketPath(path, policy.agentUid);
  return policy;
}

/** A refusal as one log line's fields. */
export function refusalLogFields(cred: CallerCred | null, verb: string): Record<string, unknown> {
  return cred ? { verb, uid: cred.uid, gid: cred.gid, pid: cred.pid } : { verb };
}

export async function startLocalApi(path: string, routes: Record<string, LocalApiRoute>, opts: LocalApiOptions = {}): Promise<LocalApiServer> {
  const policy = opts.policy ?? { agentUid: process.getuid?.() ?? 0 };
  await checkSocketPath(path, policy.agentUid);
  const callers = new WeakMap<Socket, CallerCred | Error>();
  const server = createServer((req, res) => { void handle(req, res); });
  server.on('connection', (sock: Socket) => {
    try {
      callers.set(sock, callerOf(sock));
    } catch (err) {
      callers.set(sock, err as Error);
    }
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const key = `${req.method} ${(req.url ?? '/').split('?')[0]}`;
    const route = routes[key];
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (!route) { reply(404, { error: `no such local API call: ${key}` }); return; }
    const caller = callers.get(req.socket);
    const decision = caller === undefined || caller instanceof Error
      ? { allowed: false as const, reason: `cannot identify the caller of ${route.verb}: ${caller?.message ?? 'no credentials'}` }
      : authorize(policy, caller, route.access, route.verb);
    if (!decision.allowed) {
      opts.onRefused?.(caller instanceof Error || caller === undefined ? null : caller, route.verb, decision.reason);
      reply(403, { error: decision.reason });
      return;
    }
    try {
      reply(200, await route.handle(req));
    } catch (err) {
      if (err instanceof LocalApiError) reply(err.status, { error: err.message });
      else reply(500, { error: err instanceof Error ? err.message : String(err) });
    }
  }

  const ino = await listenOnSocketFile(server, path, socketPermissions(policy));
  return {
    path,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }).then(() => removeSocketFile(path, ino)),
  };
}
