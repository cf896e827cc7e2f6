// Registration inside the control channel against a scripted coordinator on loopback: the channel
// is opened with the node key (the coordinator sees it as the caller), the coordinator key is pinned
// from the auth key's fingerprint before anything secret is sent, a refusal comes back as the
// server's one-line reason, and a reply that is not what the protocol says is an error.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  CoordinatorKeyMismatchError, CoordinatorKeyUnknownError, CoordinatorProtocolError, CoordinatorRefusedError,
  CoordinatorUnreachableError, registerNode,
} from '../../agent/control/register.js';
import fc from 'fast-check';
import * as z from 'zod/mini';
import { coordinatorUrls, normalizeCoordinatorUrl, CoordinatorUrlError } from '../../agent/control/coordinator-url.js';
import { keyFingerprint } from '../../proto/control/coordinator-key.js';
import { RegisterRequest, describeZodError } from '../../proto/control/schemas.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { callerKeyOf, startScriptedControlServer, type ScriptedControlServer } from '../helpers/scripted-control-server.js';

const serverPriv = generatePrivateKey();
const serverKey = encodeKey(publicKeyFromPrivate(serverPriv));
const fp = keyFingerprint(publicKeyFromPrivate(serverPriv));
const nodePriv = generatePrivateKey();
const nodeKey = encodeKey(publicKeyFromPrivate(nodePriv));
const discoKey = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
const AUTH = `phk_0123456789ab_${'f'.repeat(64)}_${fp}`;

/** What the server does with POST /api/v1/register: 'check' verifies the caller and accepts. */
let mode: 'check' | 'refuse' | 'garbage' | 'other-key' | 'old' = 'check';
/** A coordinator from before agents reported their OS and version: those keys are unknown to it. */
const OldRegisterRequest = z.strictObject(z.omit(RegisterRequest, { os: true, version: true }).shape);
let lastRequest: RegisterRequest | undefined;
let requests = 0;
let server: ScriptedControlServer;
let publicHits = 0;

before(async () => {
  server = await startScriptedControlServer(serverPriv, {
    request: (req, res) => {
      const reply = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        requests++;
        const body: unknown = JSON.parse(Buffer.concat(chunks).toString());
        if (mode === 'old') {
          const old = OldRegisterRequest.safeParse(body);
          if (!old.success) return reply(400, { error: describeZodError(old.error) });
        }
        const r = RegisterRequest.parse(body);
        lastRequest = r;
        if (mode === 'refuse') return reply(403, { error: 'auth key already used' });
        if (mode === 'garbage') return reply(200, { hello: 'world' });
        if (callerKeyOf(req) !== r.nodeKey) return reply(401, { error: 'nodeKey is not the channel key' });
        const key = mode === 'other-key' ? discoKey : r.nodeKey;
        return reply(200, { node: { id: 7, name: r.hostname, nodeKey: key, ipv4: '100.64.0.7', ipv6: 'fd7a:115c:a1e0::7', keyExpiresAt: null, tags: [] } });
      });
    },
  });
});
after(() => server.close());

// The scripted server answers GET /api/v1/server on its public side with 404, so pin by a full key
// where the test is not about the fingerprint look-up; a second server publishes keys for that.
const opts = (extra = {}) => ({ coordinatorUrl: server.url, nodePrivate: nodePriv, nodeKey, discoKey, hostname: 'alpha', coordinatorKey: serverKey, ...extra });

test('registration runs in a channel opened with the node key; the auth key travels inside it', async () => {
  mode = 'check';
  const r = await registerNode(opts({ authKey: AUTH }));
  assert.equal(r.serverKey, serverKey);
  assert.equal(r.node.id, 7);
  assert.equal(lastRequest!.authKey, AUTH);
  assert.equal(lastRequest!.discoKey, discoKey);
  assert.equal(server.callers.at(-1), nodeKey);
});

test('without an auth key the request carries none (re-registration with the pinned key)', async () => {
  mode = 'check';
  await registerNode(opts({ coordinatorKey: undefined, pinnedKey: serverKey }));
  assert.equal('authKey' in lastRequest!, false);
});

test('a refusal is the server\'s one-line reason with its status', async () => {
  mode = 'refuse';
  await assert.rejects(registerNode(opts({ authKey: AUTH })), (e: Error) =>
    e instanceof CoordinatorRefusedError && e.status === 403 && e.reason === 'auth key already used');
});

test('a 200 reply that is not a registration, or for another key, is a protocol error', async () => {
  mode = 'garbage';
  await assert.rejects(registerNode(opts()), CoordinatorProtocolError);
  mode = 'other-key';
  await assert.rejects(registerNode(opts()), /different node key/);
});

test('a server without the pinned key gets no request: key mismatch in one line', async () => {
  mode = 'check';
  const before = requests;
  const other = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
  await assert.rejects(registerNode(opts({ authKey: AUTH, coordinatorKey: undefined, pinnedKey: other })), (e: Error) =>
    e instanceof CoordinatorKeyMismatchError && /coordinator key mismatch/.test(e.message) && !e.message.includes('\n'));
  assert.equal(requests, before, 'nothing reached the inner API');
});

test('the fingerprint in the auth key picks the published key; another fingerprint sends nothing', async () => {
  const pub = createServer((_req, res) => {
    publicHits++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ serverKey }));
  }).listen(0, '127.0.0.1');
  await once(pub, 'listening');
  const url = `http://127.0.0.1:${(pub.address() as AddressInfo).port}`;
  try {
    const other = keyFingerprint(decodeKey(encodeKey(publicKeyFromPrivate(generatePrivateKey()))));
    await assert.rejects(registerNode(opts({ coordinatorUrl: url, coordinatorKey: undefined, authKey: `phk_0123456789ab_${'f'.repeat(64)}_${other}` })), (e: Error) =>
      e instanceof CoordinatorKeyMismatchError && e.message.includes(other) && e.message.includes(fp) && /nothing was sent/.test(e.message));
    await assert.rejects(registerNode(opts({ coordinatorUrl: url, coordinatorKey: undefined, authKey: `phk_0123456789ab_${'f'.repeat(64)}` })), CoordinatorKeyUnknownError);
    assert.equal(publicHits, 1, 'only the public key look-up for the fingerprinted key');
  } finally {
    pub.close();
  }
});

test('nobody listening is "cannot reach the coordinator", in one line', async () => {
  const gone = createServer().listen(0, '127.0.0.1');
  await once(gone, 'listening');
  const port = (gone.address() as AddressInfo).port;
  await new Promise((r) => gone.close(r));
  await assert.rejects(registerNode(opts({ coordinatorUrl: `http://127.0.0.1:${port}` })), (e: Error) =>
    e instanceof CoordinatorUnreachableError && e.message === `cannot reach the coordinator at http://127.0.0.1:${port}: ECONNREFUSED`);
  // Replicas: an unreachable one is passed over, the next one registers; all unreachable: the last error.
  const before = requests;
  mode = 'check';
  const reg = await registerNode(opts({ coordinatorUrl: `http://127.0.0.1:${port},${server.url}` }));
  assert.equal(reg.node.id, 7);
  assert.equal(requests, before + 1);
  await assert.rejects(registerNode(opts({ coordinatorUrl: `${server.url},http://127.0.0.1:${port}`, coordinatorKey: undefined, authKey: `phk_0123456789ab_${'f'.repeat(64)}_${'0'.repeat(32)}` })),
    (e: Error) => e.name === 'CoordinatorProtocolError' || e.name === 'CoordinatorKeyMismatchError', 'an answer from the first (no key published) is not passed over');
  await assert.rejects(registerNode(opts({ coordinatorUrl: `http://127.0.0.1:${port},http://127.0.0.1:${port + 1 === 65536 ? 1 : port + 1}` })), CoordinatorUnreachableError);
});

test('coordinator URLs are normalised; only http(s) without query or credentials', () => {
  assert.equal(normalizeCoordinatorUrl('http://203.0.113.10:8080/'), 'http://203.0.113.10:8080');
  assert.equal(normalizeCoordinatorUrl('https://ctl.example/pinhole/'), 'https://ctl.example/pinhole');
  for (const bad of ['203.0.113.10:8080', 'ftp://x', 'http://u:p@x', 'http://x/?a=1', '']) {
    assert.throws(() => normalizeCoordinatorUrl(bad), CoordinatorUrlError, bad);
  }
  // Replicas: a comma-separated list, each normalised, duplicates dropped, order kept.
  assert.equal(normalizeCoordinatorUrl('http://198.51.100.1:8080/, http://198.51.100.2:8080,http://198.51.100.1:8080'), 'http://198.51.100.1:8080,http://198.51.100.2:8080');
  assert.deepEqual(coordinatorUrls('http://a:1,http://b:2'), ['http://a:1', 'http://b:2']);
  for (const bad of ['http://a:1,', ',http://a:1', 'http://a:1,ftp://b', Array.from({ length: 9 }, (_, i) => `http://h${i}:1`).join(',')]) {
    assert.throws(() => normalizeCoordinatorUrl(bad), CoordinatorUrlError, bad);
  }
});

test('a coordinator URL list: any text is a normalised list or one CoordinatorUrlError, never another error', () => {
  const part = fc.oneof(fc.constantFrom('http://198.51.100.1:8080', 'https://ctl.example/p/', ' http://[2001:db8::1]:80 ', '', 'ftp://x', 'http://u:p@x', ','), fc.string({ maxLength: 12 }));
  fc.assert(fc.property(fc.array(part, { maxLength: 10 }), (parts) => {
    const text = parts.join(',');
    let out: string;
    try {
      out = normalizeCoordinatorUrl(text);
    } catch (err) {
      assert.ok(err instanceof CoordinatorUrlError, String(err));
      return;
    }
    const urls = coordinatorUrls(out);
    assert.ok(urls.length >= 1 && urls.length <= 8);
    assert.equal(new Set(urls).size, urls.length);
    for (const u of urls) assert.equal(normalizeCoordinatorUrl(u), u, 'each normalised');
    assert.equal(normalizeCoordinatorUrl(out), out, 'idempotent');
  }), { numRuns: 1000 });
});

test('an agent newer than its coordinator registers without os/version when the coordinator does not know them', async () => {
  mode = 'old';
  const before = requests;
  const r = await registerNode(opts({ authKey: AUTH, platform: { os: 'linux debian 12', version: '0.1.0' } }));
  assert.equal(r.node.id, 7);
  assert.equal(requests - before, 2, 'refused once, then sent without the new fields');
  assert.equal('os' in lastRequest!, false);
  assert.equal('version' in lastRequest!, false);
  // Any other 400 is not retried.
  const n = requests;
  await assert.rejects(registerNode(opts({ authKey: AUTH, hostname: 'not a hostname!', platform: { os: 'linux', version: '0.1.0' } })),
    (e: Error) => e instanceof CoordinatorRefusedError && e.status === 400);
  assert.equal(requests - n, 1);
  mode = 'check';
  await registerNode(opts({ authKey: AUTH, platform: { os: 'linux', version: '0.1.0' } }));
  assert.equal(lastRequest!.os, 'linux', 'a current coordinator gets them');
});
