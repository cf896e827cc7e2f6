// Control channels as streams of one HTTP/2 connection to a real coordinator process, beside
// HTTP/1.1 on the same port: several nodes register and stream over one connection; refusals
// come back per stream without harming the connection; junk after the preface is counted (stats
// and Prometheus) and changes nothing; a connection without channels is closed; the coordinator
// stops while HTTP/2 connections are open.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { CONTROL_PATH, CoordinatorKeyMismatchError, HANDSHAKE_HEADER } from '../../proto/control/noise-upgrade.js';
import { Netmap } from '../../proto/control/schemas.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { MAX_CHANNELS_PER_CONNECTION } from '../../coordinator/control-h2.js';
import { connectControlH2, openChannelOnH2 } from '../helpers/control-client-h2.js';
import { openChannel, requestOn, serverKeyOf } from '../helpers/control-client.js';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';

/** The first message on a stream opened in `channel` (the netmap), parsed. */
function firstNetmap(channel: Awaited<ReturnType<typeof openChannelOnH2>>['channel'], nodeKey: string): Promise<Netmap> {
  const ws = new WebSocket('ws://coordinator/api/v1/stream', { createConnection: () => channel as never });
  ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', nodeKey })));
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => { resolve(Netmap.parse(JSON.parse(data.toString()))); ws.terminate(); });
    ws.once('error', reject);
    ws.once('close', (code, reason) => reject(new Error(`stream closed: ${code} ${reason.toString()}`)));
  });
}

describe('control channels over HTTP/2', () => {
  let coord: CoordinatorProcess;
  let serverKey: Uint8Array;
  let authKey: string;
  const sessions: ClientHttp2Session[] = [];

  const metricsPort = 20_000 + Math.floor(Math.random() * 20_000);
  before(async () => {
    coord = await CoordinatorProcess.start({ flags: ['--metrics-listen', `127.0.0.1:${metricsPort}`] });
    serverKey = await serverKeyOf(coord.url);
    authKey = await coord.createAuthKey({ reusable: true });
  });
  after(async () => {
    for (const s of sessions) s.destroy();
    await coord.destroy();
  });

  test('several nodes register and stream over one connection, beside HTTP/1.1', async () => {
    const session = await connectControlH2(coord.url);
    sessions.push(session);
    assert.equal(session.remoteSettings.maxConcurrentStreams, MAX_CHANNELS_PER_CONNECTION);
    const nodes = Array.from({ length: 4 }, () => {
      const privateKey = generatePrivateKey();
      return { privateKey, nodeKey: encodeKey(publicKeyFromPrivate(privateKey)), discoKey: encodeKey(publicKeyFromPrivate(generatePrivateKey())) };
    });
    const registered = await Promise.all(nodes.map(async (n, i) => {
      const { channel } = await openChannelOnH2(session, n.privateKey, serverKey);
      const r = await requestOn(channel, 'POST', '/api/v1/register', { body: { nodeKey: n.nodeKey, discoKey: n.discoKey, hostname: `h2-${i}`, authKey } });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.node as { id: number; ipv4: string };
    }));
    assert.equal(new Set(registered.map((r) => r.ipv4)).size, 4, 'four distinct addresses');
    // Held streams of two nodes at once on the same connection: each gets its own netmap.
    const maps = await Promise.all(nodes.slice(0, 2).map(async (n) => firstNetmap((await openChannelOnH2(session, n.privateKey, serverKey)).channel, n.nodeKey)));
    for (const [i, m] of maps.entries()) {
      assert.equal(m.self.id, registered[i]!.id);
      assert.deepEqual(m.peers.map((p) => p.id).sort((a, b) => a - b), registered.filter((_, j) => j !== i).map((r) => r.id).sort((a, b) => a - b));
    }
    // HTTP/1.1 on the same port is unchanged: the public route and an upgraded channel.
    assert.equal((await fetch(`${coord.url}/api/v1/server`)).status, 200);
    const { channel } = await openChannel(coord.url, nodes[3]!.privateKey, serverKey);
    assert.equal((await requestOn(channel, 'POST', '/api/v1/register', { body: { nodeKey: nodes[3]!.nodeKey, discoKey: nodes[3]!.discoKey, hostname: 'h2-3', authKey } })).status, 200);
    const stats = (await coord.call('GET', '/api/v1/admin/stats')).body;
    assert.ok(stats.control.h2Connections >= 1, JSON.stringify(stats.control));
  });

  test('refusals come per stream; the connection carries on', async () => {
    const session = await connectControlH2(coord.url);
    sessions.push(session);
    // A handshake addressed to another coordinator's key.
    await assert.rejects(openChannelOnH2(session, generatePrivateKey(), publicKeyFromPrivate(generatePrivateKey())), CoordinatorKeyMismatchError);
    // No handshake at all, and a path that is not a control channel: status and one-line reason.
    const ask = (headers: Record<string, string>): Promise<{ status: number; body: string }> => new Promise((resolve, reject) => {
      const s = session.request(headers);
      let status = 0;
      let body = '';
      s.on('response', (h) => { status = Number(h[':status']); });
      s.on('data', (d: Buffer) => { body += d.toString(); });
      s.on('end', () => resolve({ status, body }));
      s.on('error', reject);
      s.end();
    });
    const noHandshake = await ask({ ':method': 'POST', ':path': CONTROL_PATH });
    assert.equal(noHandshake.status, 400);
    assert.match(JSON.parse(noHandshake.body).error, new RegExp(`malformed ${HANDSHAKE_HEADER}`));
    const junk = await ask({ ':method': 'POST', ':path': CONTROL_PATH, [HANDSHAKE_HEADER]: 'AAAA' });
    assert.equal(junk.status, 400);
    const other = await ask({ ':method': 'GET', ':path': '/api/v1/server' });
    assert.equal(other.status, 404);
    assert.match(JSON.parse(other.body).error, /only control channels/);
    // The same connection still opens a channel, and an unknown key may still only register.
    const { channel } = await openChannelOnH2(session, generatePrivateKey(), serverKey);
    const r = await requestOn(channel, 'POST', '/api/v1/register', { body: { nodeKey: encodeKey(publicKeyFromPrivate(generatePrivateKey())), discoKey: encodeKey(publicKeyFromPrivate(generatePrivateKey())), hostname: 'forged', authKey } });
    assert.equal(r.status, 401, 'a node key the channel did not prove is refused over HTTP/2 as over HTTP/1.1');
    const stats = (await coord.call('GET', '/api/v1/admin/stats')).body;
    assert.ok(stats.control.h2NotControl >= 1 && stats.control.badHandshake >= 2 && stats.control.keyMismatch >= 1, JSON.stringify(stats.control));
  });

  test('junk after the preface is counted and harms nothing; stopping closes HTTP/2 connections', async () => {
    const before = (await coord.call('GET', '/api/v1/admin/stats')).body.control;
    const sock = connect({ host: '127.0.0.1', port: Number(new URL(coord.url).port) });
    await new Promise((r) => sock.once('connect', r));
    sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.alloc(64, 0xff)]));
    await new Promise<void>((resolve) => { sock.once('close', () => resolve()); sock.resume(); });
    const after = (await coord.call('GET', '/api/v1/admin/stats')).body.control;
    assert.equal(after.h2Connections, before.h2Connections + 1);
    assert.equal(after.h2SessionErrors, before.h2SessionErrors + 1);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, new RegExp(`^pinhole_coordinator_control_h2_connections_total ${after.h2Connections}$`, 'm'));
    assert.match(metrics, /^pinhole_coordinator_refusals_total\{stage="control",reason="h2_protocol_error"\} 1$/m);
    // A connection that carries no channel is closed by the coordinator (after 5 s).
    const idle = await connectControlH2(coord.url);
    sessions.push(idle);
    const t1 = Date.now();
    await new Promise<void>((resolve) => idle.once('close', () => resolve()));
    assert.ok(Date.now() - t1 >= 4_000 && Date.now() - t1 < 8_000, `an idle connection closed after ${Date.now() - t1} ms`);
    // An HTTP/2 connection with a channel, and one that has sent nothing yet, are open as the
    // coordinator stops: it still exits at once, closing both.
    const session = await connectControlH2(coord.url);
    sessions.push(session);
    await openChannelOnH2(session, generatePrivateKey(), serverKey);
    const silent = connect({ host: '127.0.0.1', port: Number(new URL(coord.url).port) });
    await new Promise((r) => silent.once('connect', r));
    const silentClosed = new Promise<void>((resolve) => { silent.once('close', () => resolve()); silent.resume(); });
    const closed = Promise.all([new Promise<void>((resolve) => session.once('close', () => resolve())), silentClosed]);
    const t0 = Date.now();
    await coord.stop();
    await closed;
    assert.ok(Date.now() - t0 < 5_000, `the coordinator took ${Date.now() - t0} ms to stop`);
    await coord.launch();
    assert.equal((await fetch(`${coord.url}/api/v1/server`)).status, 200);
  });
});
