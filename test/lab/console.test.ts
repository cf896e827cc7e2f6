// The web console in a real browser (Debian Chromium, headless, inside the coordinator's lab
// namespace) against a real coordinator, relay and agents: sign in (a wrong token is refused),
// create an auth key in the console and join a lab agent with it, the node appears without a
// reload, approve its route, a hostile node name renders as text, the pages work under the CSP,
// sign out, the old cookie gets 401, a forged change without the CSRF token gets 403. Screenshots
// of every page go to bench/results/console/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { startMesh, type Mesh } from '../../scripts/traversal/mesh-lab.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { launchChromium } from '../../scripts/console/browser.js';

const SHOTS = join(REPO_ROOT, 'bench', 'results', 'console');
const HOSTILE = '<img src=x onerror=alert(1)>';
const ROUTE = '10.77.0.0/24';

/** A node row written by something else sharing the database (e.g. an older coordinator): its name is not a hostname. */
async function insertHostileNode(db: string): Promise<void> {
  const conn = new sqlite3.Database(db);
  const run = (sql: string, params: unknown[]): Promise<void> => new Promise((resolve, reject) => conn.run(sql, params, (err) => (err ? reject(err) : resolve())));
  try {
    await run(`INSERT INTO nodes (id, node_key, disco_key, hostname, name, ipv4, ipv6, created_at, key_expires_at, ephemeral, tags, auth_key_id,
      advertised_routes, advertised_exit_node, approved_routes, endpoints, home_relay, last_seen)
      VALUES (900, ?, ?, 'hostile', ?, '100.64.3.132', 'fd7a:1e57:9a3c::6440:384', ?, ?, 0, '[]', NULL, '[]', 0, '[]', '[]', NULL, NULL)`,
    [Buffer.alloc(32, 7).toString('base64'), Buffer.alloc(32, 8).toString('base64'), HOSTILE, Date.now(), Date.now() - 1000]);
  } finally {
    await new Promise<void>((resolve) => conn.close(() => resolve()));
  }
}

describe('web console in Chromium', { timeout: 120_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;
  let joined: ManagedAgent | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    lab = await createLab({ name: 'console' });
    mesh = await startMesh(lab, [{ name: 'cona', nat: 'full-cone' }]);
    await mesh.coord.kill9();
    await insertHostileNode(mesh.coord.db);
    await mesh.coord.start();
    browser = await launchChromium({ netns: mesh.coord.host.ns });
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    // Anything the CSP refused, any script error, any dialog (an alert() would be a hostile name run as HTML).
    page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`); });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('dialog', (d) => { if (d.type() === 'alert') problems.push(`alert: ${d.message()}`); void d.accept(); });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await joined?.stop();
    await mesh?.stop();
    await lab?.destroy();
  });

  const shot = (name: string): Promise<Buffer> => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const consoleUrl = (): string => `${mesh!.coord.url}/admin/`;

  test('sign in: a wrong token is refused with a message, the right one opens the console', async () => {
    await page.goto(consoleUrl());
    await page.fill('#token', 'wrong-token');
    await page.click('button[type=submit]');
    await page.getByRole('alert').filter({ hasText: 'wrong admin token' }).waitFor();
    assert.equal((await context.cookies()).length, 0, 'no session for a wrong token');
    await shot('sign-in');
    await page.fill('#token', mesh!.coord.token);
    await page.click('button[type=submit]');
    await page.locator('table.nodes td.name', { hasText: 'cona' }).waitFor();
    const [cookie] = await context.cookies();
    assert.equal(cookie?.httpOnly, true);
    assert.equal(cookie?.sameSite, 'Strict');
  });

  test('a hostile node name shows as text, never as HTML', async () => {
    const cell = page.locator('table.nodes td.name', { hasText: HOSTILE });
    await cell.waitFor();
    assert.equal(await page.locator('img').count(), 0, 'no <img> element anywhere');
    assert.match(await cell.innerText(), /<img src=x onerror=alert\(1\)>/);
    await shot('nodes');
  });

  test('an auth key made in the console joins an agent; its node appears without a reload; its route is approved', async () => {
    await page.click('#nav-keys');
    await page.check('#key-reusable');
    await page.click('#create-key');
    const key = (await page.locator('#new-auth-key').innerText()).trim();
    assert.match(key, /^phk_/);
    await shot('auth-keys');
    await page.click('#nav-nodes');
    const loadedAt = await page.evaluate(() => performance.timeOrigin);
    const site = await lab.addSite('conb', { nat: 'port-restricted-cone' });
    const host = await site.addHost('h');
    joined = await startManagedAgent(host, { tun: `pc${runId()}`.slice(0, 15) });
    const r = await joined.cli(['up', '--coordinator', mesh!.coord.url, '--auth-key', key, '--hostname', 'conb', '--advertise-routes', ROUTE], 30_000);
    assert.equal(r.code, 0, r.stderr);
    const row = page.locator('table.nodes tr', { has: page.locator('td.name', { hasText: /^conb$/ }) });
    await row.waitFor({ timeout: 10_000 });
    await row.getByText('online').waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate(() => performance.timeOrigin), loadedAt, 'the page was not reloaded');
    await page.click('#nav-routes');
    const routeRow = page.locator(`tr[data-route="${ROUTE}"]`);
    await routeRow.getByRole('button', { name: 'Approve' }).click();
    await routeRow.getByText('approved', { exact: true }).waitFor();
    await shot('routes');
    const node = (await mesh!.coord.nodes()).find((n) => n.name === 'conb');
    assert.deepEqual(node?.routes, [ROUTE], 'the coordinator approved it');
  });

  test('policy errors show at their line before saving; relays and the live mesh render', async () => {
    await page.click('#nav-policy');
    await page.fill('#policy-text', '{\n  "acls": [\n    { "action": "allow", "src": ["*"], "dst": ["*:*"] }\n  ]\n}');
    await page.locator('#policy-issues li[data-line="3"]').waitFor();
    assert.ok(await page.locator('#policy-save').isDisabled(), 'no saving with errors');
    assert.equal(await page.locator('.gutter .ln.bad').innerText(), '3');
    await shot('policy');
    await page.click('#nav-relays');
    await page.locator('table.relays td', { hasText: 'lab' }).first().waitFor();
    await shot('relays');
    await page.click('#nav-mesh');
    await page.waitForSelector('body[data-graph-painted]', { state: 'attached' });
    assert.match(await page.locator('h2 .count').innerText(), /3 nodes/);
    // Traffic between the two agents: their path reports reach the open page as an edge, which
    // ends direct (full cone x port-restricted cone), with both sides' view on a click.
    const conbIp = (await joined!.status()).self!.ipv4!;
    const pair = page.locator('#mesh-pairs tr[data-pair="cona|conb"], #mesh-pairs tr[data-pair="conb|cona"]');
    const seen: string[] = [];
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      await mesh!.node('cona').host.exec(['ping', '-n', '-c', '1', '-W', '1', conbIp], { timeoutMs: 5000 });
      const kind = (await pair.count()) > 0 ? await pair.first().getAttribute('data-kind') : null;
      if (kind && seen.at(-1) !== kind) seen.push(kind);
      if (kind === 'direct') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(seen.at(-1), 'direct', `the pair's path as the page showed it: ${seen.join(' → ') || 'no edge'}`);
    await pair.first().click();
    const detail = page.locator('#pair-detail');
    await detail.waitFor();
    assert.equal(await detail.locator('h4').count(), 2);
    assert.doesNotMatch(await detail.innerText(), /No report from this side/, 'both sides reported');
    await shot('mesh');
    assert.deepEqual(problems, [], 'no CSP refusal, script error or alert');
  });

  test('sign out; the old cookie gets 401; a forged change without the CSRF token gets 403', async () => {
    const [old] = await context.cookies();
    await page.click('button.signout');
    await page.locator('#token').waitFor();
    assert.equal((await context.cookies()).length, 0, 'the cookie is gone');
    await context.addCookies([old!]);
    const status = await page.evaluate(async () => (await fetch('/admin/api/nodes')).status);
    assert.equal(status, 401, 'the old session is over');
    await page.fill('#token', mesh!.coord.token);
    await page.click('button[type=submit]');
    await page.locator('button.signout').waitFor();
    const keysBefore = await page.evaluate(async () => ((await (await fetch('/admin/api/authkeys')).json()) as { authKeys: unknown[] }).authKeys.length);
    const forged = await page.evaluate(async () => (await fetch('/admin/api/authkeys', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"reusable":true}' })).status);
    assert.equal(forged, 403);
    const keysAfter = await page.evaluate(async () => ((await (await fetch('/admin/api/authkeys')).json()) as { authKeys: unknown[] }).authKeys.length);
    assert.equal(keysAfter, keysBefore, 'no key was created');
  });
});
