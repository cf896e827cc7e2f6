// A relay that asks the coordinator who may connect: real `pinhole coordinator` and `pinhole relay
// --coordinator URL --coordinator-token-file F` processes on loopback. A node registered with the
// coordinator connects and relays packets; an unknown key is refused; and the lookup endpoint
// itself answers 200/404/400/401 as relay/authorizer.ts expects (deleted and expired nodes: 404).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRelayClient, type RelayClient, type RelayDisconnect } from '../../agent/relay/relay-client.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
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

  before(async () => {
    coord = await CoordinatorProcess.start();
    authKey = await coord.createAuthKey({ reusable: true });
    keyDir = await mkdtemp(join(tmpdir(), 'pinhole-relay-auth-'));
    relay = await startRelayProcess(['--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--coordinator', coord.url, '--coordinator-token-file', coord.tokenFile,
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

  test('the lookup endpoint: 200 for a registered node, 404 unknown/deleted/expired, 400 malformed, 401 without or with a wrong token', async () => {
    const n = new SimulatedNode();
    const self = await n.join(coord.url, { authKey, hostname: 'lookup' });
    const ok = await coord.call('GET', lookupPath(n.nodeKey));
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, { id: self.id, name: 'lookup' });

    assert.equal((await coord.call('GET', lookupPath(new SimulatedNode().nodeKey))).status, 404);
    assert.equal((await coord.call('GET', lookupPath(n.nodeKey), undefined, null)).status, 401);
    assert.equal((await coord.call('GET', lookupPath(n.nodeKey), undefined, 'not-the-admin-token-at-all')).status, 401);
    for (const bad of ['short', `${'A'.repeat(43)}x`, `${'A'.repeat(42)}B`, 'A'.repeat(44), `${'A'.repeat(42)}=`]) {
      const r = await coord.call('GET', `/api/v1/relay/nodes/${bad}`);
      assert.equal(r.status, 400, bad);
      assert.match(r.body.error, /unpadded base64url/);
    }
    assert.equal((await coord.call('POST', lookupPath(n.nodeKey))).status, 405);

    const expired = await coord.call('POST', `/api/v1/admin/nodes/${self.id}/expire`);
    assert.equal(expired.status, 200);
    const afterExpiry = await coord.call('GET', lookupPath(n.nodeKey));
    assert.equal(afterExpiry.status, 404);
    assert.match(afterExpiry.body.error, /expired/);

    const m = new SimulatedNode();
    const mSelf = await m.join(coord.url, { authKey, hostname: 'gone' });
    assert.equal((await coord.call('GET', lookupPath(m.nodeKey))).status, 200);
    assert.equal((await coord.call('DELETE', `/api/v1/admin/nodes/${mSelf.id}`)).status, 200);
    assert.equal((await coord.call('GET', lookupPath(m.nodeKey))).status, 404);
  });

  test('without an admin token the coordinator refuses lookups (403)', async () => {
    const bare = await CoordinatorProcess.start({ adminToken: false });
    try {
      const r = await bare.call('GET', lookupPath(new SimulatedNode().nodeKey));
      assert.equal(r.status, 403);
      assert.match(r.body.error, /--admin-token-file/);
    } finally {
      await bare.destroy();
    }
  });
});
