// What a new user trips over, answered with one clear line before anything is sent or started:
// relay URLs at the coordinator, a relay that is not one, route approval with host bits, tags
// without "tag:", --version and the admin verbs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildRelayMap, RelayMapError } from '../../coordinator/relay-map.js';
import { createRelayClient, RelayRefusedError } from '../../agent/relay/relay-client.js';
import { generatePrivateKey, publicKeyFromPrivate, encodeKey } from '../../proto/wireguard/keys.js';
import { canonicalRoute, RouteRefusedError } from '../../proto/control/routes.js';
import { PINHOLE_BIN, REPO_ROOT } from '../../scripts/tunnels/paths.js';

const run = promisify(execFile);
const KEY = encodeKey(publicKeyFromPrivate(generatePrivateKey()));

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run('node', [PINHOLE_BIN, ...args], { timeout: 20_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('--relay: only ws/wss/http/https URLs whose path is /relay', () => {
  for (const url of ['ws://203.0.113.10:8443/relay', 'wss://relay.example/relay', 'http://203.0.113.10:8443/relay', 'https://[2001:db8::1]:443/relay']) {
    assert.equal(buildRelayMap([`r=${url}`], [], [`r=${KEY}`])[0]!.url, url);
  }
  const refused: [string, RegExp][] = [
    ['ws://203.0.113.10:8443', /the path must be \/relay, not "\/"/],
    ['ws://203.0.113.10:8443/derp', /the path must be \/relay, not "\/derp"/],
    ['ftp://203.0.113.10/relay', /scheme ftp: is not ws:, wss:, http: or https:/],
    ['203.0.113.10:8443', /scheme|not a URL/],
    ['ws://203.0.113.10:8443/relay?x=1', /no query/],
  ];
  for (const [url, why] of refused) {
    assert.throws(() => buildRelayMap([`r=${url}`], [], [`r=${KEY}`]), (err: Error) => err instanceof RelayMapError && why.test(err.message) && !err.message.includes('\n'), url);
  }
});

test('a relay URL answering HTTP 404 is reported as "not a pinhole relay" with its status, not a timeout', async () => {
  const server = createServer((_req, res) => { res.statusCode = 404; res.end('404 page not found'); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/relay`;
  const client = createRelayClient({ url, nodePrivateKey: generatePrivateKey(), relayKey: publicKeyFromPrivate(generatePrivateKey()), reconnect: false, connectTimeoutMs: 3000 });
  try {
    const started = Date.now();
    await assert.rejects(client.ready(AbortSignal.timeout(3000)), (err: Error) => {
      assert.ok(err instanceof RelayRefusedError, `${err.name}: ${err.message}`);
      assert.equal(err.message, `answered HTTP 404 at ${url}: not a pinhole relay`);
      return true;
    });
    assert.ok(Date.now() - started < 2000, 'reported at once, not after a timeout');
  } finally {
    client.close();
    server.close();
  }
});

test('a route with host bits set is refused with the message `up` gives', () => {
  assert.throws(() => canonicalRoute('192.0.2.129/26', { strict: true }), (err: Error) => err instanceof RouteRefusedError && err.message === '192.0.2.129/26 has host bits set: did you mean 192.0.2.128/26?');
  assert.equal(canonicalRoute('0.0.0.0/0', { strict: true }).bits, 0);
});

const FAKE_ADMIN = ['admin', '--coordinator', 'http://127.0.0.1:9', '--coordinator-key', 'x', '--token', 'x'];

test('admin routes approve NODE 192.0.2.129/26 is refused before anything is sent', async () => {
  const r = await cli([...FAKE_ADMIN, 'routes', 'approve', 'n1', '192.0.2.129/26']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'pinhole: 192.0.2.129/26 has host bits set: did you mean 192.0.2.128/26?\n');
});

test('admin authkey create --tag web explains that tags are tag:NAME', async () => {
  const r = await cli([...FAKE_ADMIN, 'authkey', 'create', '--tag', 'web']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^pinhole: --tag web: a tag is tag:NAME .*e\.g\. tag:web\n$/);
});

test('pinhole --version prints the package version', async () => {
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  const r = await cli(['--version']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `pinhole ${version}\n`);
});

test('admin --help lists the verbs of every noun', async () => {
  const r = await cli(['admin', '--help']);
  assert.equal(r.code, 0);
  for (const line of ['authkey create|list|revoke', 'nodes list|delete|expire', 'routes list|approve', 'policy get|set']) assert.ok(r.stdout.includes(line), line);
});

test('a timeout reads "no answer in time", not "The operation was aborted due to timeout"', async () => {
  const { createServer: createTcpServer } = await import('node:net');
  const silent = createTcpServer(() => { /* accepts and never answers */ });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const url = `ws://127.0.0.1:${(silent.address() as AddressInfo).port}/relay`;
  const client = createRelayClient({ url, nodePrivateKey: generatePrivateKey(), relayKey: publicKeyFromPrivate(generatePrivateKey()), reconnect: false, connectTimeoutMs: 5000 });
  try {
    await assert.rejects(client.ready(AbortSignal.timeout(300)), { message: 'no answer in time' });
  } finally {
    await client.close();
    silent.close();
  }
});

test('bad port-mapping flags are one line each, before the state dir is touched', async () => {
  const dir = join(REPO_ROOT, 'dist', `no-such-state-${process.pid}`);
  for (const [flags, want] of [
    [['--portmap-lease', '1'], 'pinhole: --portmap-lease: "1" is not a number of seconds from 2 to 604800\n'],
    [['--portmap-lease', '10m'], 'pinhole: --portmap-lease: "10m" is not a number of seconds from 2 to 604800\n'],
    [['--portmap-protocol', 'natpmp'], 'pinhole: --portmap-protocol: "natpmp" is not one of pcp, nat-pmp, upnp\n'],
  ] as const) {
    const r = await cli(['agent', '--state-dir', dir, ...flags]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr, want);
  }
  assert.throws(() => readFileSync(join(dir, 'agent.pid')), { code: 'ENOENT' });
});
