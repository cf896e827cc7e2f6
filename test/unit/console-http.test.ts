// The web console's HTTP surface against a real coordinator in this process: the page and its
// CSP, sign-in (wrong token: 401 and no cookie), the session cookie's attributes, 401 for every
// API call without a session, 403 for a change without the CSRF token (and nothing changed), the
// policy check at its lines, live events (a path report and a new node reach an open stream),
// sign-out (the old cookie gets 401, its stream ends), renames (bad, taken, racing), and the admin
// API's behaviour unchanged.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CONSOLE_CSP } from '../../coordinator/console/console-server.js';
import { CSRF_HEADER } from '../../coordinator/console/sessions.js';
import { startConsoleCoordinator, type ConsoleCoordinator } from '../../scripts/console/in-process.js';

let c: ConsoleCoordinator;
let base: string;

before(async () => {
  c = await startConsoleCoordinator();
  base = c.coordinator.url;
});
after(async () => { await c.close(); });

async function api(method: string, path: string, opts: { cookie?: string; csrf?: string; body?: unknown } = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.csrf) headers[CSRF_HEADER] = opts.csrf;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}/admin/api/${path}`, { method, headers, ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

async function signIn(): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const r = await api('POST', 'session', { body: { token: c.token } });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const setCookie = r.headers.get('set-cookie') ?? '';
  return { cookie: setCookie.split(';')[0]!, csrf: r.body.csrf, setCookie };
}

/** Reads server-sent events until `until` returns true for one (or the time runs out). */
async function readEvents(res: Response, until: (name: string, data: any) => boolean, ms: number): Promise<boolean> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const deadline = Date.now() + ms;
  try {
    while (Date.now() < deadline) {
      const r = await Promise.race([reader.read(), new Promise<null>((resolve) => setTimeout(() => resolve(null), deadline - Date.now()))]);
      if (r === null || r.done) return false;
      buf += decoder.decode(r.value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (name && data && until(name, JSON.parse(data))) return true;
      }
    }
    return false;
  } finally {
    reader.releaseLock();
  }
}

test('the page is served with a CSP that forbids inline script and style, and has no inline script', async () => {
  const res = await fetch(`${base}/admin/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.equal(csp, CONSOLE_CSP);
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
  const html = await res.text();
  for (const m of html.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)) {
    assert.match(m[1]!, /src="app\.js"/, 'every script is a file');
    assert.equal(m[2]!.trim(), '', 'no inline script');
  }
  assert.doesNotMatch(html.replace(/<!--[\s\S]*?-->/g, ''), /style=|<style/, 'no inline style');
  const js = await fetch(`${base}/admin/app.js`);
  assert.equal(js.status, 200);
  assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
  assert.ok((await js.arrayBuffer()).byteLength > 10_000);
  assert.equal((await fetch(`${base}/admin/../api/v1/server`)).status, 200, 'outside /admin/ nothing changed');
  assert.equal((await fetch(`${base}/admin/secret.txt`)).status, 404);
  const redirect = await fetch(`${base}/admin`, { redirect: 'manual' });
  assert.equal(redirect.status, 308);
});

test('every console API call without a session gets 401', async () => {
  const calls: Array<[string, string]> = [
    ['GET', 'session'], ['GET', 'nodes'], ['GET', 'authkeys'], ['POST', 'authkeys'], ['DELETE', 'authkeys/1'], ['GET', 'routes'],
    ['POST', 'nodes/1/routes'], ['POST', 'nodes/1/expire'], ['DELETE', 'nodes/1'], ['GET', 'policy'], ['PUT', 'policy'],
    ['POST', 'policy/validate'], ['GET', 'mesh'], ['GET', 'relays'], ['GET', 'events'], ['DELETE', 'session'], ['GET', 'stats'],
  ];
  for (const [method, path] of calls) {
    for (const cookie of [undefined, 'pinhole_console=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'pinhole_console=<script>']) {
      const r = await api(method, path, { ...(cookie ? { cookie } : {}), csrf: 'x', ...(method === 'GET' ? {} : { body: {} }) });
      assert.equal(r.status, 401, `${method} ${path} with ${cookie ?? 'no cookie'}`);
      assert.match(r.body.error, /not signed in/);
    }
  }
});

test('a wrong token gets a clear 401 and no session; the right one a strict cookie', async () => {
  const wrong = await api('POST', 'session', { body: { token: 'not-the-token' } });
  assert.equal(wrong.status, 401);
  assert.equal(wrong.body.error, 'wrong admin token');
  assert.equal(wrong.headers.get('set-cookie'), null);
  const bad = await api('POST', 'session', { body: { token: 5 } });
  assert.equal(bad.status, 400);
  const { setCookie, csrf } = await signIn();
  assert.match(setCookie, /^pinhole_console=[A-Za-z0-9_-]{43}; /);
  for (const attr of ['HttpOnly', 'SameSite=Strict', 'Path=/admin', 'Max-Age=43200']) assert.ok(setCookie.includes(attr), `cookie has ${attr}`);
  assert.ok(!setCookie.includes('Secure'), 'plain HTTP: no Secure (the browser would drop the cookie)');
  assert.match(csrf, /^[A-Za-z0-9_-]{43}$/);
});

test('changes need the CSRF token: without it 403 and nothing changes; with it they go through', async () => {
  const s = await signIn();
  const before = await api('GET', 'authkeys', { cookie: s.cookie });
  assert.equal(before.status, 200);
  for (const csrf of [undefined, 'wrong', `${s.csrf}x`]) {
    const r = await api('POST', 'authkeys', { cookie: s.cookie, body: { reusable: true }, ...(csrf ? { csrf } : {}) });
    assert.equal(r.status, 403, `csrf ${csrf}`);
    assert.match(r.body.error, /CSRF/);
  }
  const other = await signIn();
  assert.equal((await api('POST', 'authkeys', { cookie: s.cookie, csrf: other.csrf, body: {} })).status, 403, 'another session\'s token');
  assert.deepEqual((await api('GET', 'authkeys', { cookie: s.cookie })).body, before.body, 'no key was created');
  const made = await api('POST', 'authkeys', { cookie: s.cookie, csrf: s.csrf, body: { reusable: true, tags: ['tag:web'], expirySeconds: 3600 } });
  assert.equal(made.status, 201);
  assert.match(made.body.key, /^phk_/);
  const bad = await api('POST', 'authkeys', { cookie: s.cookie, csrf: s.csrf, body: { tags: ['web'] } });
  assert.equal(bad.status, 400, 'the admin operation\'s own validation answers');
  assert.match(bad.body.error, /tags/);
  const n = await c.addNode('router', { routes: ['10.20.0.0/24'] });
  assert.equal((await api('POST', `nodes/${n.id}/routes`, { cookie: s.cookie, body: { routes: ['10.20.0.0/24'] } })).status, 403);
  const ok = await api('POST', `nodes/${n.id}/routes`, { cookie: s.cookie, csrf: s.csrf, body: { routes: ['10.20.0.0/24'] } });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.routes, ['10.20.0.0/24']);
  const un = await api('POST', `nodes/${n.id}/routes/unapprove`, { cookie: s.cookie, csrf: s.csrf, body: { routes: ['10.20.0.0/24'] } });
  assert.equal(un.status, 200);
  assert.deepEqual(un.body.routes, []);
  assert.equal((await api('POST', `nodes/${n.id}/routes/unapprove`, { cookie: s.cookie, csrf: s.csrf, body: { routes: ['10.20.0.0/24'] } })).status, 409);
});

test('the policy check places each problem at its line and saves nothing', async () => {
  const s = await signIn();
  const text = ['{', '  "acls": [', '    { "action": "accept", "src": ["*"], "dst": ["*:*"] },', '    { "action": "allow", "src": ["*"], "dst": ["*:*"] }', '  ],', '  "colour": 1', '}'].join('\n');
  const r = await api('POST', 'policy/validate', { cookie: s.cookie, csrf: s.csrf, body: { text } });
  assert.equal(r.status, 200);
  const lines = r.body.issues.map((i: { line: number }) => i.line);
  assert.deepEqual(lines, [4, 6], JSON.stringify(r.body.issues));
  const syntax = await api('POST', 'policy/validate', { cookie: s.cookie, csrf: s.csrf, body: { text: '{\n  "acls": [\n  }\n' } });
  assert.equal(syntax.body.issues.length, 1);
  assert.equal(syntax.body.issues[0].line, 3);
  assert.match(syntax.body.issues[0].message, /not valid JSON/);
  const good = await api('POST', 'policy/validate', { cookie: s.cookie, csrf: s.csrf, body: { text: '{"acls": [{"action": "accept", "src": ["*"], "dst": ["*:*"]}]}' } });
  assert.deepEqual(good.body.issues, []);
  assert.equal((await api('GET', 'policy', { cookie: s.cookie })).body.policy, null, 'checking saved nothing');
  assert.equal((await api('POST', 'policy/validate', { cookie: s.cookie, body: { text } })).status, 403, 'a check is a POST: CSRF too');
});

test('an open event stream gets path reports and node changes; the mesh and relays reflect them', async () => {
  const s = await signIn();
  const a = await c.addNode('ev-a');
  const b = await c.addNode('ev-b');
  const res = await fetch(`${base}/admin/api/events`, { headers: { cookie: s.cookie } });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const started = Date.now();
  setTimeout(() => c.report(a, [{ peer: b, path: 'relay', relay: 'lab-relay', latencyMs: 20, whyNotDirect: 'no pong on any candidate' }], 'symmetric'), 50);
  const got = await readEvents(res, (name, d) => name === 'paths' && d.nodeId === a.id && d.paths?.peers[0]?.peerId === b.id && d.paths.peers[0].path === 'relay', 3000);
  assert.ok(got, 'the paths event arrived');
  assert.ok(Date.now() - started < 2000, `within 2 s (took ${Date.now() - started} ms)`);
  setTimeout(() => { void c.addNode('ev-new'); }, 50);
  assert.ok(await readEvents(res, (name, d) => name === 'node' && d.name === 'ev-new', 3000), 'a new node arrived');
  const mesh = await api('GET', 'mesh', { cookie: s.cookie });
  const mine = mesh.body.nodes.find((n: { nodeId: number }) => n.nodeId === a.id);
  assert.equal(mine.natType, 'symmetric');
  assert.equal(mine.peers[0].whyNotDirect, 'no pong on any candidate');
  const relays = await api('GET', 'relays', { cookie: s.cookie });
  assert.equal(relays.body.relays[0].name, 'lab-relay');
  assert.equal(relays.body.relays[0].relayedPairs, 1);
  await res.body!.cancel();
});

test('sign-out needs the CSRF token, ends the session and its streams; the old cookie gets 401', async () => {
  const s = await signIn();
  assert.equal((await api('GET', 'nodes', { cookie: s.cookie })).status, 200);
  const stream = await fetch(`${base}/admin/api/events`, { headers: { cookie: s.cookie } });
  assert.equal(stream.status, 200);
  assert.equal((await api('DELETE', 'session', { cookie: s.cookie })).status, 403);
  const out = await api('DELETE', 'session', { cookie: s.cookie, csrf: s.csrf });
  assert.equal(out.status, 200);
  assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
  const reader = stream.body!.getReader();
  let ended = false;
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    const r = await reader.read();
    if (r.done) { ended = true; break; }
  }
  assert.ok(ended, 'the stream of the signed-out session ended');
  for (const [m, p] of [['GET', 'nodes'], ['GET', 'session'], ['GET', 'events']] as const) {
    assert.equal((await api(m, p, { cookie: s.cookie })).status, 401, `${m} ${p} after sign-out`);
  }
  assert.equal((await api('POST', 'authkeys', { cookie: s.cookie, csrf: s.csrf, body: {} })).status, 401);
});

test('the admin API inside the control channel is not reachable on the public port, console or not', async () => {
  const r = await fetch(`${base}/api/v1/admin/nodes`, { headers: { authorization: `Bearer ${c.token}` } });
  assert.equal(r.status, 426);
});

test('rename through the console: CSRF needed, a bad name 400, a taken one 409, two renames racing for one name: one wins', async () => {
  const s = await signIn();
  const a = await c.addNode('rename-a');
  const b = await c.addNode('rename-b');
  assert.equal((await api('POST', `nodes/${a.id}/rename`, { cookie: s.cookie, body: { name: 'web-1' } })).status, 403, 'no CSRF token');
  for (const name of ['bad_name', '-edge', 'x'.repeat(64), '']) {
    const r = await api('POST', `nodes/${a.id}/rename`, { cookie: s.cookie, csrf: s.csrf, body: { name } });
    assert.equal(r.status, 400, name);
    assert.match(r.body.error, /^name: /);
  }
  const taken = await api('POST', `nodes/${a.id}/rename`, { cookie: s.cookie, csrf: s.csrf, body: { name: 'rename-b' } });
  assert.equal(taken.status, 409);
  assert.equal(taken.body.error, `name rename-b is taken by node ${b.id}`);
  assert.equal((await api('POST', 'nodes/99999/rename', { cookie: s.cookie, csrf: s.csrf, body: { name: 'ghost' } })).status, 404);
  const ok = await api('POST', `nodes/${a.id}/rename`, { cookie: s.cookie, csrf: s.csrf, body: { name: 'Web-1' } });
  assert.equal(ok.status, 200);
  assert.equal(ok.body.name, 'web-1');
  // Racing renames of two nodes to one free name: exactly one gets it, the other a 409; names stay unique.
  const race = await Promise.all([a, b].map((n) => api('POST', `nodes/${n.id}/rename`, { cookie: s.cookie, csrf: s.csrf, body: { name: 'contested' } })));
  assert.deepEqual(race.map((r) => r.status).sort(), [200, 409]);
  const names = (await api('GET', 'nodes', { cookie: s.cookie })).body.nodes.map((n: { name: string }) => n.name);
  assert.equal(names.filter((n: string) => n === 'contested').length, 1);
  assert.equal(new Set(names).size, names.length, 'names unique');
  // The winner's old name is free again: a new node with that hostname gets it as is.
  const freed = race[0]!.status === 200 ? 'web-1' : 'rename-b';
  assert.ok(!names.includes(freed));
  assert.equal((await c.addNode(freed)).name, freed);
});
