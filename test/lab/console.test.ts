// The web console in a real browser (Debian Chromium, headless, inside the coordinator's lab
// namespace) against a real coordinator, relay and agents, all over HTTPS (the coordinator has its
// own certificate, which every lab process trusts through NODE_EXTRA_CA_CERTS): sign in (a wrong
// token is refused; the cookie is Secure, HttpOnly, SameSite=Strict), create an auth key in the
// console and join a lab agent with it, the node appears without a reload with its OS and version,
// approve its route, a hostile node name renders as text, the pages work under the CSP, a pair
// that starts relayed (UDP between the two sites dropped by an nftables rule on one router) shows
// relayed via the lab relay and turns direct on the open page once the rule goes, rename a node
// (a bad or taken name is refused; the peer's MagicDNS answers the new name), sign out, the old
// cookie gets 401, a forged change without the CSRF token gets 403. Screenshots of every page go
// to bench/results/console/.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { startMesh, type Mesh } from '../../scripts/traversal/mesh-lab.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { launchChromium } from '../../scripts/console/browser.js';
import { tlsEnv } from '../../scripts/tunnels/lab-tls.js';
import type { Host } from '../../scripts/natlab/index.js';

const SHOTS = join(REPO_ROOT, 'bench', 'results', 'console');
const HOSTILE = '<img src=x onerror=alert(1)>';
const ROUTE = '10.77.0.0/24';
const MAGIC_DNS = '100.100.100.100';
const UDP_BLOCK = 'c2udpblock';

/** Drops UDP between this router's site and `peerWan` (both ways): the pair can only relay. */
async function blockUdpWith(router: Host, peerWan: string): Promise<void> {
  await router.run(['nft', '-f', '-'], { input: `table ip ${UDP_BLOCK} {\n  chain drop_udp {\n    type filter hook forward priority -10;\n` +
    `    ip daddr ${peerWan} meta l4proto udp drop\n    ip saddr ${peerWan} meta l4proto udp drop\n  }\n}\n` });
}

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

describe('web console in Chromium, over HTTPS', { timeout: 180_000 }, () => {
  let lab: Lab;
  let mesh: Mesh | undefined;
  let joined: ManagedAgent | undefined;
  let conbRouter: Host | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;
  const problems: string[] = [];

  before(async () => {
    await mkdir(SHOTS, { recursive: true });
    lab = await createLab({ name: 'console' });
    mesh = await startMesh(lab, [{ name: 'cona', nat: 'full-cone' }], { tls: true });
    await mesh.coord.kill9();
    await insertHostileNode(mesh.coord.db);
    await mesh.coord.start();
    browser = await launchChromium({ netns: mesh.coord.host.ns });
    // The lab's self-signed certificate is not in Chromium's store: the browser takes it as is.
    context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ignoreHTTPSErrors: true });
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

  test('sign in over HTTPS: a wrong token is refused with a message, the right one opens the console', async () => {
    assert.match(consoleUrl(), /^https:\/\//);
    await page.goto(consoleUrl());
    await page.fill('#token', 'wrong-token');
    await page.click('button[type=submit]');
    await page.getByRole('alert').filter({ hasText: 'wrong admin token' }).waitFor();
    assert.equal((await context.cookies()).length, 0, 'no session for a wrong token');
    await shot('sign-in');
    await page.fill('#token', mesh!.coord.token);
    await page.click('button[type=submit]');
    await page.locator('table.nodes td.name', { hasText: 'cona' }).waitFor();
    const cookies = await context.cookies();
    assert.equal(cookies.length, 1);
    assert.equal(cookies[0]!.secure, true, 'Secure over HTTPS');
    assert.equal(cookies[0]!.httpOnly, true);
    assert.equal(cookies[0]!.sameSite, 'Strict');
    assert.equal(await page.evaluate('document.cookie'), '', 'the page cannot read the session');
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
    // No UDP between the two sites until the mesh test lifts it: the pair starts relayed.
    conbRouter = site.router;
    await blockUdpWith(site.router, mesh!.node('cona').site.wanIp);
    const host = await site.addHost('h');
    joined = await startManagedAgent(host, { tun: `pc${runId()}`.slice(0, 15), env: tlsEnv(mesh!.tls) });
    const r = await joined.cli(['up', '--coordinator', mesh!.coord.url, '--auth-key', key, '--hostname', 'conb', '--advertise-routes', ROUTE], 30_000);
    assert.equal(r.code, 0, r.stderr);
    const row = page.locator('table.nodes tr', { has: page.locator('td.name', { hasText: /^conb$/ }) });
    await row.waitFor({ timeout: 10_000 });
    await row.getByText('online').waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate(() => performance.timeOrigin), loadedAt, 'the page was not reloaded');
    // The agent's own report: its OS (from this machine's /etc/os-release) and pinhole version.
    const { version } = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    const osId = /^ID="?([^"\n]+)"?$/m.exec(await readFile('/etc/os-release', 'utf8').catch(() => ''))?.[1];
    const os = await row.locator('td.os').innerText();
    assert.match(os, new RegExp(`^linux${osId ? ` ${osId}` : ''}.*\\n${version.replace(/\./g, '\\.')}$`), os);
    await page.click('#nav-routes');
    const routeRow = page.locator(`tr[data-route="${ROUTE}"]`);
    await routeRow.getByRole('button', { name: 'Approve' }).click();
    await routeRow.getByText('approved', { exact: true }).waitFor();
    await shot('routes');
    const node = (await mesh!.coord.nodes()).find((n) => n.name === 'conb');
    assert.deepEqual(node?.routes, [ROUTE], 'the coordinator approved it');
  });

  test('policy errors show at their line before saving; relays and the live mesh render, a relayed pair turns direct', async (t) => {
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
    // Traffic between the two agents: their path reports reach the open page as an edge. UDP
    // between the sites is dropped, so it shows relayed through the lab relay; once the rule goes,
    // the same edge turns direct (full cone x port-restricted cone) on the same page.
    const conbIp = (await joined!.status()).self!.ipv4!;
    const loadedAt = await page.evaluate(() => performance.timeOrigin);
    const pair = page.locator('#mesh-pairs tr[data-pair="cona|conb"], #mesh-pairs tr[data-pair="conb|cona"]');
    const seen: string[] = [];
    const watch = async (want: string, ms: number): Promise<void> => {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        await mesh!.node('cona').host.exec(['ping', '-n', '-c', '1', '-W', '1', conbIp], { timeoutMs: 5000 });
        const kind = (await pair.count()) > 0 ? await pair.first().getAttribute('data-kind') : null;
        if (kind && seen.at(-1) !== kind) seen.push(kind);
        if (kind === want) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    await watch('relay', 20_000);
    assert.equal(seen.at(-1), 'relay', `the pair's path as the page showed it: ${seen.join(' → ') || 'no edge'}`);
    assert.equal(await pair.first().locator('td').nth(1).innerText(), 'relayed via lab');
    await shot('mesh-relayed');
    await conbRouter!.run(['nft', 'delete', 'table', 'ip', UDP_BLOCK]);
    const liftedAt = Date.now();
    await watch('direct', 30_000);
    assert.equal(seen.at(-1), 'direct', `the pair's path as the page showed it: ${seen.join(' → ')}`);
    assert.deepEqual(seen.slice(-2), ['relay', 'direct'], 'the same edge turned from relayed to direct');
    assert.equal(await page.evaluate(() => performance.timeOrigin), loadedAt, 'the page was not reloaded');
    t.diagnostic(`relayed → direct on the open page ${((Date.now() - liftedAt) / 1000).toFixed(1)} s after the UDP block was lifted`);
    await pair.first().click();
    const detail = page.locator('#pair-detail');
    await detail.waitFor();
    assert.equal(await detail.locator('h4').count(), 2);
    assert.doesNotMatch(await detail.innerText(), /No report from this side/, 'both sides reported');
    await shot('mesh');
    assert.deepEqual(problems, [], 'no CSP refusal, script error or alert');
  });

  test('rename a node: a bad or taken name is refused; the new name reaches the peer (MagicDNS answers it)', async () => {
    await page.click('#nav-nodes');
    const row = page.locator('table.nodes tr', { has: page.locator('td.name', { hasText: /^conb$/ }) });
    await row.getByRole('button', { name: 'Rename' }).click();
    const input = page.locator('#rename-input');
    await input.fill('bad_name');
    await page.locator('form.rename .field-error').waitFor();
    assert.ok(await page.locator('form.rename button[type=submit]').isDisabled(), 'no saving a bad name');
    await input.fill('cona');
    await page.locator('form.rename button[type=submit]').click();
    await page.getByRole('alert').filter({ hasText: /name cona is taken by node \d+/ }).waitFor();
    await input.fill('conb-db');
    await page.locator('form.rename button[type=submit]').click();
    await page.locator('table.nodes td.name', { hasText: /^conb-db$/ }).waitFor();
    assert.equal(await page.locator('#rename-input').count(), 0, 'the editor closed');
    await shot('nodes-renamed');
    const conbIp = (await joined!.status()).self!.ipv4!;
    const cona = mesh!.node('cona').host;
    const deadline = Date.now() + 10_000;
    let answer = '';
    while (Date.now() < deadline) {
      const r = await cona.exec(['dig', '+time=2', '+tries=1', '+short', `@${MAGIC_DNS}`, 'conb-db.pinhole.internal', 'A'], { timeoutMs: 10_000 });
      answer = r.stdout.trim();
      if (answer === conbIp) break;
      await new Promise((r2) => setTimeout(r2, 200));
    }
    assert.equal(answer, conbIp, 'the peer\'s MagicDNS answers the new name');
    const old = await cona.exec(['dig', '+time=2', '+tries=1', `@${MAGIC_DNS}`, 'conb.pinhole.internal', 'A'], { timeoutMs: 10_000 });
    assert.match(old.stdout, /status: NXDOMAIN/, 'the old name is gone');
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
