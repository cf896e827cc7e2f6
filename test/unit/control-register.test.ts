// Registration over HTTP against a scripted server on loopback: the request carries a proof the
// server can check with its own key, a refusal comes back as the server's one-line reason, and a
// reply that is not what the protocol says is an error, not a registration.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import {
  CoordinatorProtocolError, CoordinatorRefusedError, CoordinatorUnreachableError, registerNode,
} from '../../agent/control/register.js';
import { normalizeCoordinatorUrl, streamUrl, CoordinatorUrlError } from '../../agent/control/coordinator-url.js';
import { checkProof, registrationFields } from '../../proto/control/proof.js';
import { RegisterRequest } from '../../proto/control/schemas.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

const serverPriv = generatePrivateKey();
const serverKey = encodeKey(publicKeyFromPrivate(serverPriv));
const nodePriv = generatePrivateKey();
const nodeKey = encodeKey(publicKeyFromPrivate(nodePriv));
const discoKey = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
const CHALLENGE = 'c'.repeat(32);

/** What the server does with POST /api/v1/register: 'check' verifies and accepts. */
let mode: 'check' | 'refuse' | 'garbage' | 'other-key' = 'check';
let lastRequest: RegisterRequest | undefined;
let server: Server;
let base: string;

before(async () => {
  server = createServer((req, res) => {
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/api/v1/server') {
      return reply(200, { serverKey, challenge: CHALLENGE, challengeExpiresAt: new Date(Date.now() + 60_000).toISOString() });
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = RegisterRequest.parse(JSON.parse(Buffer.concat(chunks).toString()));
      lastRequest = r;
      if (mode === 'refuse') return reply(403, { error: 'auth key already used' });
      if (mode === 'garbage') return reply(200, { hello: 'world' });
      const ok = r.challenge === CHALLENGE && checkProof(serverPriv, decodeKey(r.nodeKey), r.challenge, registrationFields(r), r.proof);
      if (!ok) return reply(401, { error: 'proof of possession of the node key failed' });
      const key = mode === 'other-key' ? discoKey : r.nodeKey;
      return reply(200, { node: { id: 7, name: r.hostname, nodeKey: key, ipv4: '100.64.0.7', ipv6: 'fd7a:115c:a1e0::7', keyExpiresAt: null, tags: [] } });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => { server.close(); });

const opts = (extra = {}) => ({ coordinatorUrl: base, nodePrivate: nodePriv, nodeKey, discoKey, hostname: 'alpha', ...extra });

test('registration proves possession of the node key; the server checks it with its own private key', async () => {
  mode = 'check';
  const r = await registerNode(opts({ authKey: 'phk_0123456789ab_' + 'f'.repeat(64) }));
  assert.equal(r.serverKey, serverKey);
  assert.equal(r.node.id, 7);
  assert.equal(r.node.ipv4, '100.64.0.7');
  assert.equal(lastRequest!.authKey, 'phk_0123456789ab_' + 'f'.repeat(64));
  assert.equal(lastRequest!.discoKey, discoKey);
});

test('without an auth key the request carries none (re-registration of a known node)', async () => {
  mode = 'check';
  await registerNode(opts());
  assert.equal('authKey' in lastRequest!, false);
});

test('a refusal is the server\'s one-line reason with its status', async () => {
  mode = 'refuse';
  await assert.rejects(registerNode(opts({ authKey: 'x' })), (e: Error) =>
    e instanceof CoordinatorRefusedError && e.status === 403 && e.reason === 'auth key already used');
});

test('a 200 reply that is not a registration, or for another key, is a protocol error', async () => {
  mode = 'garbage';
  await assert.rejects(registerNode(opts()), CoordinatorProtocolError);
  mode = 'other-key';
  await assert.rejects(registerNode(opts()), /different node key/);
});

test('nobody listening is "cannot reach the coordinator", in one line', async () => {
  const gone = createServer().listen(0, '127.0.0.1');
  await once(gone, 'listening');
  const port = (gone.address() as AddressInfo).port;
  await new Promise((r) => gone.close(r));
  await assert.rejects(registerNode(opts({ coordinatorUrl: `http://127.0.0.1:${port}` })), (e: Error) =>
    e instanceof CoordinatorUnreachableError && e.message === `cannot reach the coordinator at http://127.0.0.1:${port}: ECONNREFUSED`);
});

test('coordinator URLs are normalised; only http(s) without query or credentials', () => {
  assert.equal(normalizeCoordinatorUrl('http://203.0.113.10:8080/'), 'http://203.0.113.10:8080');
  assert.equal(normalizeCoordinatorUrl('https://ctl.example/pinhole/'), 'https://ctl.example/pinhole');
  assert.equal(streamUrl('https://ctl.example/pinhole'), 'wss://ctl.example/pinhole/api/v1/stream');
  assert.equal(streamUrl('http://203.0.113.10:8080'), 'ws://203.0.113.10:8080/api/v1/stream');
  for (const bad of ['203.0.113.10:8080', 'ftp://x', 'http://u:p@x', 'http://x/?a=1', '']) {
    assert.throws(() => normalizeCoordinatorUrl(bad), CoordinatorUrlError, bad);
  }
});
