// A relay that asks the coordinator who may connect: real `pinhole coordinator` and `pinhole relay
// --coordinator URL --coordinator-key FP --key-file F` processes on loopback. A node registered with
// the coordinator connects and relays packets; an unknown key is refused; the lookup endpoint, asked
// inside a control channel opened with the relay's key, answers 200/404/400 as relay/authorizer.ts
// expects (deleted and expired nodes: 404); that credential gets 403 everywhere else.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRelayClient, type RelayClient, type RelayDisconnect } from '../../agent/relay/relay-client.js';
import { decodeKey, generatePrivateKey } from '../../proto/wireguard/keys.js';
import { newLabRelayKey, relayCoordinatorArgs } from '../../scripts/tunnels/pinhole-relay.js';
import { channelCall } from '../helpers/control-client.js';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode } from '../helpers/coordinator-node.js';
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js';

const lookupPath = (nodeKey: string): string => `/api/v1/relay/nodes/${Buffer.from(decodeKey(nodeKey)).toString('base64url')}`;

function nextDisconnect(c: RelayClient, timeoutMs = 5000): Promise<RelayDisconnect> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no disconnect')), timeoutMs);
    c.once('disconnect', (d) => { clearTimeout(t); resolve(d); });
  });
}

describe('relay authorization by the coordinator', { timeout: 120_000 }, () => {
  let coord: CoordinatorProcess;
  let relay: RelayProcess;
  let authKey: string;
  let keyDir: string | undefined;
  const clients: RelayClient[] = [];

  const relayKey = newLabRelayKey();
  const relayCall = (method: string, path: string) => channelCall(coord.url, decodeKey(relayKey.privateKey), method, path);

  before(async () => {
    // The coordinator publishes the relay's key (the relay URL is not used by these checks).
    coord = await CoordinatorProcess.start({ flags: relayCoordinatorArgs('lab', 'ws://127.0.0.1:9/relay', relayKey) });
    authKey = await coord.createAuthKey({ reusable: true });
    keyDir = await mkdtemp(join(tmpdir(), 'pinhole-relay-auth-'));
    await writeFile(join(keyDir, 'relay.key'), `${relayKey.privateKey}\n`, { mode: 0o600 });
    relay = await startRelayProcess(['--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--coordinator', coord.url, '--coordinator-key', coord.fingerprint,
      '--key-file', join(keyDir, 'relay.key')]);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await relay?.stop('SIGKILL');
    await coord?.destroy();
    if (keyDir) await rm(keyDir, { recursive: true, force: true });
  });

  test('registered nodes connect and exchange packets through the relay; an unknown key is refused', async () => {
    const a = new SimulatedNode();
    const b = new SimulatedNode();
    await a.join(coord.url, { authKey, hostname: 'a' });
    await b.join(coord.url, { authKey, hostname: 'b' });
    const ca = createRelayClient({ url: relay.url, relayKey: relay.keyBytes, nodePrivateKey: a.privateKey, reconnect: false });
    const cb = createRelayClient({ url: relay.url, relayKey: relay.keyBytes, nodePrivateKey: b.privateKey, reconnect: false });
    clients.push(ca, cb);
    await Promise.all([ca.ready(), cb.ready()]);
    const got = new Promise<Buffer>((resolve) => cb.onRecv((_src, d) => resolve(Buffer.from(d))));
    ca.send(cb.nodeKey, Buffer.from('through the relay'));
    assert.equal((await got).toString(), 'through the relay');

    const stranger = new SimulatedNode(); // never registered
    const cs = createRelayClient({ url: relay.url, relayKey: relay.keyBytes, nodePrivateKey: stranger.privateKey, reconnect: false });
    clients.push(cs);
    const refused = await nextDisconnect(cs);
    assert.equal(refused.notice, 'not-authorized');
    assert.equal(cs.stats.connects, 0);
    const h = await relay.healthz();
    assert.equal(h.counters.refused.notAuthorized, 1);
    assert.equal(h.counters.refused.authorizerUnavailable, 0);
    assert.ok(ca.connected && cb.connected, 'the authorized nodes stay connected');
  });

  test('the lookup endpoint (relay credential): 200 for a registered node, 404 unknown/deleted/expired, 400 malformed', async () => {
    const n = new SimulatedNode();
    const self = await n.join(coord.url, { authKey, hostname: 'lookup' });
    const ok = await relayCall('GET', lookupPath(n.nodeKey));
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { id: self.id, name: 'lookup' });

    assert.equal((await relayCall('GET', lookupPath(new SimulatedNode().nodeKey))).status, 404);
    for (const bad of ['short', `${'A'.repeat(43)}x`, `${'A'.repeat(42)}B`, 'A'.repeat(44), `${'A'.repeat(42)}=`]) {
      const r = await relayCall('GET', `/api/v1/relay/nodes/${bad}`);
      assert.equal(r.status, 400, bad);
      assert.match(r.body.error, /unpadded base64url/);
    }
    assert.equal((await relayCall('POST', lookupPath(n.nodeKey))).status, 405);

    const expired = await coord.call('POST', `/api/v1/admin/nodes/${self.id}/expire`);
    assert.equal(expired.status, 200);
    const afterExpiry = await relayCall('GET', lookupPath(n.nodeKey));
    assert.equal(afterExpiry.status, 404);
    assert.match(afterExpiry.body.error, /expired/);

    const m = new SimulatedNode();
    const mSelf = await m.join(coord.url, { authKey, hostname: 'gone' });
    assert.equal((await relayCall('GET', lookupPath(m.nodeKey))).status, 200);
    assert.equal((await coord.call('DELETE', `/api/v1/admin/nodes/${mSelf.id}`)).status, 200);
    assert.equal((await relayCall('GET', lookupPath(m.nodeKey))).status, 404);
  });

  test('least privilege: the relay credential gets 403 on every admin route; other keys get 403 on the lookup', async () => {
    for (const [method, path] of [['GET', '/api/v1/admin/nodes'], ['POST', '/api/v1/admin/authkeys'], ['GET', '/api/v1/admin/policy'],
      ['PUT', '/api/v1/admin/policy'], ['POST', '/api/v1/admin/nodes/1/routes'], ['GET', '/api/v1/admin/stats'], ['POST', '/api/v1/admin/coordinator-key/rotate']] as const) {
      const r = await relayCall(method, path);
      assert.equal(r.status, 403, `${method} ${path}`);
      assert.match(r.body.error, /relay's credential may only look up members/);
    }
    const n = new SimulatedNode();
    await n.join(coord.url, { authKey, hostname: 'notarelay' });
    // A member's own channel, or the admin's (token or not), cannot ask who else is a member.
    assert.equal((await channelCall(coord.url, n.privateKey, 'GET', lookupPath(n.nodeKey))).status, 403);
    assert.equal((await coord.call('GET', lookupPath(n.nodeKey))).status, 403);
    assert.equal((await channelCall(coord.url, generatePrivateKey(), 'GET', lookupPath(n.nodeKey))).status, 403);
  });
});
