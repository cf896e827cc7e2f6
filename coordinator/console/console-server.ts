// The web console at /admin/ on the coordinator's public port (HTTPS when it has a certificate).
//   GET    /admin/                      the page (index.html, app.js, app.css: static-files.ts)
//   POST   /admin/api/session           {token} → {csrf} + the session cookie (wrong token: 401, no session)
//   GET    /admin/api/session           → {csrf}   (the page learns its CSRF token after a reload)
//   DELETE /admin/api/session           sign out
//   GET    /admin/api/events            server-sent events (events.ts)
//   GET    /admin/api/mesh              → {nodes: NodePaths[]} (the live mesh, mesh-paths.ts)
//   GET    /admin/api/relays            → {relays: RelayLoad[]}
//   POST   /admin/api/policy/validate   {text} → {issues: PolicyTextIssue[]} (nothing saved)
//   *      /admin/api/...               every admin operation (admin.ts adminOperations), same bodies
// Every /admin/api/ call but sign-in needs a live session (else 401); every change also needs the
// session's CSRF token in X-CSRF-Token (else 403). Every answer carries a strict CSP.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as z from 'zod/mini';
import type { RelayInfo } from '../../proto/control/schemas.js';
import { AddressRateLimiter } from '../address-limits.js';
import { hashAdminToken, nodeInfo, type AdminOperation } from '../admin.js';
import { ForbiddenError, RequestRefusedError, UnauthorizedError } from '../errors.js';
import { dispatch, parseWith, sendJson, type ApiRequest, type Route } from '../http.js';
import type { Logger } from '../log.js';
import type { MeshPaths } from '../mesh-paths.js';
import type { NodeRegistry } from '../registry.js';
import { ConsoleEvents } from './events.js';
import { checkPolicyText, MAX_POLICY_TEXT } from './policy-lines.js';
import { clearedSessionCookie, ConsoleSessions, csrfMatches, CSRF_HEADER, sessionCookie, sessionIdFrom, type ConsoleSession, type SessionLimits } from './sessions.js';
import { loadConsoleAssets, type StaticFile } from './static-files.js';

export const CONSOLE_PREFIX = '/admin';

/** No inline script or style, nothing from elsewhere, never framed. */
export const CONSOLE_CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
};

const SignIn = z.strictObject({ token: z.string().check(z.minLength(1), z.maxLength(1024)) });
const PolicyText = z.strictObject({ text: z.string().check(z.maxLength(MAX_POLICY_TEXT)) });
const CONSOLE_BODY_LIMIT = 2 * MAX_POLICY_TEXT;

/** What the coordinator knows of a relay's load: nodes that call it home, and pairs relayed through it. */
export interface RelayLoad extends RelayInfo { homeNodes: number; onlineHomeNodes: number; relayedPairs: number }

export interface ConsoleDeps {
  /** SHA-256 of the admin token (admin.ts); null: sign-in refused (no --admin-token-file). */
  tokenHash: Buffer | null;
  /** Served over HTTPS: the cookie gets Secure. */
  secure: boolean;
  operations: AdminOperation[];
  registry: NodeRegistry;
  meshPaths: MeshPaths;
  relays: RelayInfo[];
  log: Logger;
  /** Where the built files are (default: static-files.ts ASSETS_DIR). */
  assetsDir?: string;
  sessionLimits?: Partial<SessionLimits>;
  now?: () => number;
}

export interface ConsoleServer {
  /** Answers a request whose path is /admin or under /admin/. */
  handle(req: IncomingMessage, res: ServerResponse): void;
  readonly sessions: ConsoleSessions;
  readonly events: ConsoleEvents;
  close(): void;
}

export function isConsolePath(path: string): boolean {
  return path === CONSOLE_PREFIX || path.startsWith(`${CONSOLE_PREFIX}/`);
}

export function createConsole(deps: ConsoleDeps): ConsoleServer {
  const assets = loadConsoleAssets(deps.assetsDir);
  if (!assets) deps.log.warn('the web console is not built (npm run build:console): /admin/ answers 503');
  const sessions = new ConsoleSessions(deps.sessionLimits, deps.now);
  const events = new ConsoleEvents(deps.registry, deps.meshPaths, nodeInfo);
  sessions.onEnd((id) => events.endSession(id));
  const sweep = setInterval(() => sessions.sweep(), 60_000);
  sweep.unref();
  const signInRate = new AddressRateLimiter({ perSecond: 1, burst: 10, maxAddresses: 4096 });

  const sessionOf = (headers: IncomingMessage['headers']): ConsoleSession => {
    const s = sessions.use(sessionIdFrom(headers.cookie));
    if (!s) throw new UnauthorizedError('not signed in (no console session, or it expired)');
    return s;
  };
  const guard = (req: ApiRequest): void => {
    const s = sessionOf(req.headers);
    if (req.method !== 'GET' && !csrfMatches(s, req.headers[CSRF_HEADER])) throw new ForbiddenError('missing or wrong CSRF token (X-CSRF-Token)');
  };
  const api = (method: Route['method'], path: string, handle: Route['handle'], guarded = true): Route => ({
    method, path: new RegExp(`^${CONSOLE_PREFIX}/api/${path}$`), handle, bodyLimit: CONSOLE_BODY_LIMIT, ...(guarded ? { guard } : {}),
  });

  const routes: Route[] = [
    api('POST', 'session', async (req) => {
      if (signInRate.take(req.remoteAddress) > 0) throw new RequestRefusedError(429, 'too many sign-in attempts from this address; wait a few seconds');
      if (!deps.tokenHash) throw new ForbiddenError('the console is disabled: start the coordinator with --admin-token-file FILE');
      const { token } = parseWith(SignIn, await req.body());
      if (!timingSafeEqual(hashAdminToken(token), deps.tokenHash)) throw new UnauthorizedError('wrong admin token');
      const s = sessions.create();
      deps.log.info({ from: req.remoteAddress }, 'console sign-in');
      return { status: 201, body: { csrf: s.csrf }, headers: { 'set-cookie': sessionCookie(s.id, sessions.maxAgeSeconds, deps.secure) } };
    }, false),
    api('GET', 'session', async (req) => ({ body: { csrf: sessionOf(req.headers).csrf } })),
    api('DELETE', 'session', async (req) => {
      sessions.end(sessionOf(req.headers).id);
      return { body: { signedOut: true }, headers: { 'set-cookie': clearedSessionCookie(deps.secure) } };
    }),
    api('GET', 'mesh', async () => ({ body: { nodes: deps.meshPaths.all() } })),
    api('GET', 'relays', async () => ({ body: { relays: relayLoad(deps) } })),
    api('POST', 'policy/validate', async (req) => ({ body: { issues: checkPolicyText(parseWith(PolicyText, await req.body()).text, deps.registry) } })),
    ...deps.operations.map((o) => api(o.method, o.path, o.handle)),
  ];

  const serveStatic = (req: IncomingMessage, res: ServerResponse, path: string): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return sendJson(res, 405, { error: `method ${req.method} not allowed on ${path}` });
    if (path === CONSOLE_PREFIX) { res.writeHead(308, { location: `${CONSOLE_PREFIX}/` }); res.end(); return; }
    const name = path === `${CONSOLE_PREFIX}/` ? 'index.html' : path.slice(CONSOLE_PREFIX.length + 1);
    const file: StaticFile | undefined = assets?.get(name);
    if (!assets) return sendJson(res, 503, { error: 'the web console is not built on this coordinator (npm run build:console)' });
    if (!file) return sendJson(res, 404, { error: `no such console file: ${path}` });
    res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache' });
    res.end(req.method === 'HEAD' ? undefined : file.body);
  };

  return {
    sessions,
    events,
    handle(req, res) {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      const path = new URL(req.url ?? '/', 'http://coordinator').pathname;
      if (!path.startsWith(`${CONSOLE_PREFIX}/api/`)) return serveStatic(req, res, path);
      if (path === `${CONSOLE_PREFIX}/api/events` && req.method === 'GET') {
        const s = sessions.use(sessionIdFrom(req.headers.cookie));
        if (!s) return sendJson(res, 401, { error: 'not signed in (no console session, or it expired)' });
        if (!events.attach(res, s.id)) sendJson(res, 503, { error: 'too many open consoles; close one' });
        return;
      }
      void dispatch(routes, req, res, deps.log);
    },
    close() {
      clearInterval(sweep);
      events.close();
    },
  };
}

function relayLoad(deps: ConsoleDeps): RelayLoad[] {
  const nodes = [...deps.registry.all()];
  const pairs = new Map<string, Set<string>>();
  for (const np of deps.meshPaths.all()) {
    for (const p of np.peers) {
      if (p.path !== 'relay' || p.relay === null) continue;
      const key = np.nodeId < p.peerId ? `${np.nodeId}-${p.peerId}` : `${p.peerId}-${np.nodeId}`;
      let set = pairs.get(p.relay);
      if (!set) pairs.set(p.relay, set = new Set());
      set.add(key);
    }
  }
  return deps.relays.map((r) => ({
    ...r,
    homeNodes: nodes.filter((n) => n.homeRelay === r.name).length,
    onlineHomeNodes: nodes.filter((n) => n.homeRelay === r.name && n.online).length,
    relayedPairs: pairs.get(r.name)?.size ?? 0,
  }));
}
