// The coordinator's limits on unauthenticated callers, with a real coordinator process on
// loopback and callers on several loopback addresses (127.0.0.2 floods, 127.0.0.1 is the honest
// user): a registration flood and a handshake flood from one address are throttled (429, counted)
// while another address still registers; slow connections that never finish their headers do not
// block registration; idle channels that never authenticate are capped per address.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { ControlRefusedError } from '../../proto/control/noise-upgrade.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode } from '../helpers/coordinator-node.js';
import { channelCall, openChannel, serverKeyOf } from '../helpers/control-client.js';

describe('coordinator limits on unauthenticated callers', { timeout: 120_000 }, () => {
  let coord: CoordinatorProcess;
  let authKey: string;
  let serverKey: Uint8Array;
  const sockets: Socket[] = [];

  before(async () => {
    coord = await CoordinatorProcess.start({
      flags: ['--max-register-rate', '1', '--max-handshake-rate', '10', '--max-unauthenticated-per-address', '8'],
    });
    authKey = await coord.createAuthKey({ reusable: true });
    serverKey = await serverKeyOf(coord.url);
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await coord.destroy();
  });

  const register = (from: string, hostname: string) => {
    const n = new SimulatedNode();
    return channelCall(coord.url, n.privateKey, 'POST', '/api/v1/register', {
      localAddress: from, body: { nodeKey: n.nodeKey, discoKey: n.discoKey, hostname, authKey },
    });
  };
  const control = async (): Promise<Record<string, number>> => (await coord.call('GET', '/api/v1/admin/stats')).body.control;

  test('a registration flood from one address is throttled (429) while another address registers', async () => {
    const results = [];
    for (let i = 0; i < 20; i++) results.push(await register('127.0.0.2', `flood-${i}`));
    const throttled = results.filter((r) => r.status === 429);
    assert.ok(throttled.length >= 8, `${throttled.length} of 20 throttled (burst is 10)`);
    assert.match(throttled[0]!.body.error, /^too many registrations from 127\.0\.0\.2: retry in \d+ s$/);
    assert.ok(results.slice(0, 10).every((r) => r.status === 200), 'the burst itself is served');
    const honest = await register('127.0.0.1', 'honest');
    assert.equal(honest.status, 200, JSON.stringify(honest.body));
    assert.ok((await control()).registerRate >= throttled.length);
  });

  test('a handshake flood from one address is refused with 429 before any crypto state is kept', async () => {
    let refused = 0;
    let reason = '';
    for (let i = 0; i < 140; i++) {
      try {
        const { channel } = await openChannel(coord.url, generatePrivateKey(), serverKey, '127.0.0.3');
        channel.destroy();
      } catch (err) {
        assert.ok(err instanceof ControlRefusedError, String(err));
        assert.equal(err.status, 429);
        refused++;
        reason = err.reason;
      }
    }
    assert.ok(refused >= 30, `${refused} of 140 refused (burst is 100)`);
    assert.match(reason, /^too many handshakes from 127\.0\.0\.3: retry in \d+ s$/);
    assert.equal((await register('127.0.0.1', 'still-welcome')).status, 200);
    assert.ok((await control()).rateLimited >= refused);
  });

  test('slow connections that never finish their headers do not block registration', async () => {
    for (let i = 0; i < 300; i++) {
      const s = connect({ host: '127.0.0.1', port: Number(new URL(coord.url).port), localAddress: '127.0.0.4' });
      s.on('error', () => undefined);
      s.on('connect', () => s.write('POST /api/v1/control HTTP/1.1\r\nHost: x\r\n'));
      sockets.push(s);
    }
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    const r = await register('127.0.0.1', 'past-the-slowloris');
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 < 3000, `registration took ${Date.now() - t0} ms`);
    assert.ok((await control()).pendingCap >= 300 - 256, 'connections over the per-address cap were closed');
  });

  test('channels that never authenticate are capped per address; a known node is not', async () => {
    const idle = [];
    let refused: ControlRefusedError | null = null;
    for (let i = 0; i < 10; i++) {
      try {
        idle.push((await openChannel(coord.url, generatePrivateKey(), serverKey, '127.0.0.5')).channel);
      } catch (err) {
        refused = err as ControlRefusedError;
      }
    }
    try {
      assert.equal(idle.length, 8);
      assert.ok(refused instanceof ControlRefusedError && refused.status === 429, String(refused));
      assert.match(refused.reason, /too many unauthenticated connections from 127\.0\.0\.5/);
      const n = new SimulatedNode();
      await n.join(coord.url, { authKey, hostname: 'known-one' });
      const s = await n.connect(coord.url);
      await s.waitFor('netmap', () => s.netmap !== null);
      await s.close();
      assert.ok((await control()).unauthenticatedCap >= 1);
    } finally {
      for (const c of idle) c.destroy();
    }
  });
});
