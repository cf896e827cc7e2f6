// Console sessions: idle and absolute expiry, the bound on the table, the CSRF comparison, and the
// cookie parser (a decoder of untrusted headers: never throws, accepts only well-formed ids).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConsoleSessions, csrfMatches, sessionCookie, sessionIdFrom, SESSION_COOKIE } from '../../coordinator/console/sessions.js';

test('a session expires after the idle time without use, and after the absolute time regardless', () => {
  let t = 0;
  const s = new ConsoleSessions({ idleMs: 1000, absoluteMs: 5000 }, () => t);
  const a = s.create();
  t = 900;
  assert.ok(s.use(a.id), 'used before idle expiry');
  t = 1800;
  assert.ok(s.use(a.id), 'idle clock restarted by use');
  t = 2900;
  assert.equal(s.use(a.id), undefined, 'idle too long');
  const b = s.create();
  for (t = 3000; t < 7900; t += 800) assert.ok(s.use(b.id));
  t = 8000;
  assert.equal(s.use(b.id), undefined, 'absolute lifetime over');
  assert.equal(s.size, 0);
});

test('the table is bounded: the least recently used session goes first, and its end is announced', () => {
  const s = new ConsoleSessions({ max: 3 });
  const ended: string[] = [];
  s.onEnd((id) => ended.push(id));
  const [a, b, c] = [s.create(), s.create(), s.create()];
  assert.ok(s.use(a.id));
  const d = s.create();
  assert.equal(s.size, 3);
  assert.deepEqual(ended, [b.id]);
  assert.ok(s.use(a.id) && s.use(c.id) && s.use(d.id));
  s.end(c.id);
  assert.equal(s.use(c.id), undefined);
});

test('sweep ends expired sessions', () => {
  let t = 0;
  const s = new ConsoleSessions({ idleMs: 100 }, () => t);
  const ended: string[] = [];
  s.onEnd((id) => ended.push(id));
  const a = s.create();
  t = 200;
  s.sweep();
  assert.deepEqual(ended, [a.id]);
});

test('the CSRF token must match exactly', () => {
  const s = new ConsoleSessions().create();
  assert.ok(csrfMatches(s, s.csrf));
  for (const bad of [undefined, '', s.csrf.slice(1), `${s.csrf} `, [s.csrf], s.csrf.toUpperCase()]) assert.ok(!csrfMatches(s, bad as string), String(bad));
});

test('the cookie parser finds a well-formed session id and nothing else, whatever the header', () => {
  const s = new ConsoleSessions().create();
  assert.equal(sessionIdFrom(`a=b; ${SESSION_COOKIE}=${s.id}; c=d`), s.id);
  assert.equal(sessionIdFrom(sessionCookie(s.id, 60, true).split(';')[0]), s.id);
  assert.equal(sessionIdFrom(`${SESSION_COOKIE}=${s.id}x`), undefined);
  assert.equal(sessionIdFrom(undefined), undefined);
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (header) => {
    const id = sessionIdFrom(header);
    return id === undefined || /^[A-Za-z0-9_-]{43}$/.test(id);
  }), { numRuns: 2000 });
  assert.ok(sessionCookie(s.id, 60, true).endsWith('; Secure'));
});
