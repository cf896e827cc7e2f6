// Web console sessions: a random id in an HttpOnly, SameSite=Strict cookie, and a CSRF token the
// page sends in a header with every change. In memory only (a restart signs everyone out); bounded:
// at most MAX_SESSIONS, the least recently used dropped first; each expires after IDLE_MS without
// use or ABSOLUTE_MS after sign-in, whichever comes first.
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'pinhole_console';
export const CSRF_HEADER = 'x-csrf-token';
export const MAX_SESSIONS = 64;
export const IDLE_MS = 60 * 60 * 1000;
export const ABSOLUTE_MS = 12 * 60 * 60 * 1000;

export interface ConsoleSession {
  id: string;
  csrf: string;
  createdAt: number;
  lastUsed: number;
}

export interface SessionLimits { idleMs: number; absoluteMs: number; max: number }

export class ConsoleSessions {
  /** Map order is recency: get() re-inserts. */
  private readonly byId = new Map<string, ConsoleSession>();
  private readonly endListeners = new Set<(id: string) => void>();
  private readonly limits: SessionLimits;

  constructor(limits: Partial<SessionLimits> = {}, private readonly now: () => number = Date.now) {
    this.limits = { idleMs: IDLE_MS, absoluteMs: ABSOLUTE_MS, max: MAX_SESSIONS, ...limits };
  }

  get size(): number { return this.byId.size; }
  get maxAgeSeconds(): number { return Math.floor(this.limits.absoluteMs / 1000); }

  create(): ConsoleSession {
    while (this.byId.size >= this.limits.max) this.end(this.byId.keys().next().value!);
    const t = this.now();
    const s: ConsoleSession = { id: randomBytes(32).toString('base64url'), csrf: randomBytes(32).toString('base64url'), createdAt: t, lastUsed: t };
    this.byId.set(s.id, s);
    return s;
  }

  /** The live session with this id (its idle clock restarts), or undefined. */
  use(id: string | undefined): ConsoleSession | undefined {
    if (id === undefined) return undefined;
    const s = this.byId.get(id);
    if (!s) return undefined;
    const t = this.now();
    if (this.expired(s, t)) { this.end(id); return undefined; }
    s.lastUsed = t;
    this.byId.delete(id);
    this.byId.set(id, s);
    return s;
  }

  /** Signs a session out; its event streams close (onEnd). */
  end(id: string): void {
    if (!this.byId.delete(id)) return;
    for (const l of this.endListeners) l(id);
  }

  /** Ends every expired session (call now and then). */
  sweep(): void {
    const t = this.now();
    for (const s of [...this.byId.values()]) if (this.expired(s, t)) this.end(s.id);
  }

  onEnd(listener: (id: string) => void): void { this.endListeners.add(listener); }

  private expired(s: ConsoleSession, t: number): boolean {
    return t - s.lastUsed >= this.limits.idleMs || t - s.createdAt >= this.limits.absoluteMs;
  }
}

/** Constant-time comparison of the CSRF header with the session's token. */
export function csrfMatches(session: ConsoleSession, header: string | string[] | undefined): boolean {
  if (typeof header !== 'string') return false;
  const a = Buffer.from(header, 'utf8');
  const b = Buffer.from(session.csrf, 'utf8');
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The session cookie's value from a Cookie header (the first one of that name). */
export function sessionIdFrom(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === SESSION_COOKIE) {
      const v = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(v) ? v : undefined;
    }
  }
  return undefined;
}

export function sessionCookie(id: string, maxAgeSeconds: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}
