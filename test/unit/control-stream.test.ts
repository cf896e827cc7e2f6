// The agent's control stream against a scripted coordinator on loopback: a real control channel
// (Noise, the node key as the caller's static key) carrying a scripted WebSocket server that speaks
// the protocol of proto/control (hello from the channel's own key → netmap → deltas): malformed
// messages are dropped and counted, a lost connection is retried with backoff and the new full
// map replaces the old one, a silent server is detected, stop() really stops.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { WebSocketServer, type WebSocket } from 'ws';
import { ControlStream } from '../../agent/control/stream-client.js';
import { ClientStreamMessage, clientPingsCapability, clientPingsPromise, type Netmap, type NetmapDelta } from '../../proto/control/schemas.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { callerKeyOf, startScriptedControlServer, type ScriptedControlServer } from '../helpers/scripted-control-server.js';

const serverPriv = generatePrivateKey();
const serverKey = encodeKey(publicKeyFromPrivate(serverPriv));
const nodePriv = generatePrivateKey();
const nodeKey = encodeKey(publicKeyFromPrivate(nodePriv));

interface Conn { ws: WebSocket; received: Array<{ type: string; [k: string]: unknown }>; helloOk: Promise<boolean> }

let wss: WebSocketServer;
let scripted: ScriptedControlServer;
let url: string;
const conns: Conn[] = [];
let onConn: ((c: Conn) => void) | undefined;
/** When false the server answers nothing (not even pongs): a silent, half-dead coordinator. */
let answering = true;

before(async () => {
  wss = new WebSocketServer({ noServer: true });
  scripted = await startScriptedControlServer(serverPriv, {
    upgrade: (req, socket, head) => wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)),
  });
  url = scripted.url;
  wss.on('connection', (ws, req) => {
    const callerKey = callerKeyOf(req);
    const received: Conn['received'] = [];
    let resolveHello!: (ok: boolean) => void;
    const conn: Conn = { ws, received, helloOk: new Promise((r) => { resolveHello = r; }) };
    ws.on('message', (data) => {
      const msg = ClientStreamMessage.parse(JSON.parse(data.toString()));
      received.push(msg);
      if (msg.type === 'hello') {
        resolveHello(msg.nodeKey === callerKey);
      }
      if (msg.type === 'ping' && answering) ws.send(JSON.stringify({ type: 'pong', t: msg.t }));
    });
    conns.push(conn);
    onConn?.(conn);
  });
});
after(async () => {
  for (const c of wss.clients) c.terminate();
  await new Promise((r) => wss.close(r));
  await scripted.close();
});

function netmap(seq: number, peerIds: number[]): Netmap {
  const k = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
  return {
    type: 'netmap', seq,
    self: { id: 1, name: 'me', nodeKey, ipv4: '100.64.0.1', ipv6: 'fd7a:115c:a1e0::1', keyExpiresAt: null, tags: [] },
    peers: peerIds.map((id) => ({
      id, name: `p${id}`, nodeKey: k, discoKey: k, ipv4: `100.64.0.${id}`, ipv6: `fd7a:115c:a1e0::${id}`,
      endpoints: [], homeRelay: null, online: true, lastSeen: null, routes: [], exitNode: false, tags: [],
    })),
    packetFilter: null, relays: [],
  };
}

function nextConn(): Promise<Conn> {
  return new Promise((resolve) => { onConn = (c) => { onConn = undefined; resolve(c); }; });
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function client(extra: Partial<ConstructorParameters<typeof ControlStream>[0]> = {}) {
  const got = { netmaps: [] as Netmap[], deltas: [] as NetmapDelta[], states: [] as boolean[] };
  const stream = new ControlStream({
    coordinatorUrl: url, serverKey: () => serverKey, nodePrivate: nodePriv, nodeKey,
    endpoints: () => ['203.0.113.7:41641'],
    onNetmap: (n) => got.netmaps.push(n),
    onDelta: (d) => got.deltas.push(d),
    onConnectedChange: (c) => got.states.push(c),
    backoff: { initialMs: 20, maxMs: 100 },
    ...extra,
  });
  return { stream, got };
}

test('hello comes from the channel opened with the node key; the netmap and deltas arrive; endpoints are reported', async () => {
  const { stream, got } = client();
  const connP = nextConn();
  stream.start();
  try {
    const conn = await connP;
    assert.equal(await conn.helloOk, true, 'hello names the channel\'s own key');
    // It says how often it pings (every 15 s), so the coordinator need not ping it too.
    const hello = conn.received.find((m) => m.type === 'hello') as { capabilities?: string[] };
    assert.deepEqual(hello.capabilities, ['peer-patches', 'client-pings:15000']);
    assert.equal(clientPingsPromise(hello.capabilities), 15_000);
    conn.ws.send(JSON.stringify(netmap(5, [2, 3])));
    await until(() => got.netmaps.length === 1 && stream.connected);
    assert.deepEqual(got.states, [true]);
    await until(() => conn.received.some((m) => m.type === 'endpoints'));
    assert.deepEqual(conn.received.find((m) => m.type === 'endpoints')!.endpoints, ['203.0.113.7:41641']);
    conn.ws.send(JSON.stringify({ type: 'delta', seq: 6, upserts: [], removals: [3] }));
    await until(() => got.deltas.length === 1);
    assert.deepEqual(got.deltas[0]!.removals, [3]);
    assert.equal(stream.status().malformed, 0);
  } finally { stream.stop(); }
});

test('malformed messages are dropped and counted; the connection keeps working', async () => {
  const { stream, got } = client();
  const connP = nextConn();
  stream.start();
  try {
    const conn = await connP;
    await conn.helloOk;
    const bad = [
      JSON.stringify({ type: 'delta', seq: 1, upserts: [], removals: [] }), // before any netmap
      'not json {',
      JSON.stringify({ type: 'netmap', seq: -1 }),
      JSON.stringify({ type: 'surprise' }),
      JSON.stringify({ ...netmap(1, [2]), self: { ...netmap(1, []).self, nodeKey: serverKey } }), // someone else's map
      JSON.stringify({ type: 'challenge', challenge: 'x'.repeat(20), serverKey }), // a message type that no longer exists
      JSON.stringify([1, 2, 3]),
    ];
    for (const b of bad) conn.ws.send(b);
    conn.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    conn.ws.send(JSON.stringify(netmap(2, [2])));
    conn.ws.send(JSON.stringify({ type: 'delta', seq: 3, upserts: [{ id: 'x' }], removals: [] }));
    conn.ws.send(JSON.stringify({ type: 'delta', seq: 3, upserts: [], removals: [2] }));
    await until(() => got.deltas.length === 1);
    assert.equal(got.netmaps.length, 1);
    assert.equal(stream.status().malformed, bad.length + 2);
    assert.equal(stream.connected, true);
  } finally { stream.stop(); }
});

test('a lost connection is retried; the new full map replaces the old one (resume)', async () => {
  const { stream, got } = client();
  let connP = nextConn();
  stream.start();
  try {
    const first = await connP;
    await first.helloOk;
    first.ws.send(JSON.stringify(netmap(1, [2, 3])));
    await until(() => stream.connected);
    connP = nextConn();
    first.ws.terminate();
    await until(() => !stream.connected);
    const second = await connP;
    assert.equal(await second.helloOk, true);
    assert.equal((second.received.find((m) => m.type === 'hello') as { lastSeq?: number } | undefined)?.lastSeq, undefined,
      'no lastSeq callback given, none sent');
    second.ws.send(JSON.stringify(netmap(1, [4])));
    await until(() => got.netmaps.length === 2 && stream.connected);
    assert.deepEqual(got.netmaps[1]!.peers.map((p) => p.id), [4]);
    assert.deepEqual(got.states, [true, false, true]);
    assert.equal(stream.status().attempts, 2);
  } finally { stream.stop(); }
});

test('an unreachable coordinator is retried with growing delays until it answers', async () => {
  const { stream } = client({ coordinatorUrl: 'http://127.0.0.1:1', backoff: { initialMs: 20, maxMs: 200 } });
  stream.start();
  try {
    await new Promise((r) => setTimeout(r, 700));
    const n = stream.status().attempts;
    // 20, 40, 80, 160, 200... ms (jittered into the upper half): a handful of attempts, not hundreds.
    assert.ok(n >= 3 && n <= 12, `${n} attempts in 0.7 s`);
    assert.match(stream.status().lastError ?? '', /ECONNREFUSED/);
  } finally { stream.stop(); }
});

test('replicas: an unreachable coordinator in the list is passed over at once, without the backoff', async () => {
  // A backoff of 5 s: connecting within 2 s means the next replica was tried right away.
  const { stream } = client({ coordinatorUrl: `http://127.0.0.1:1,${url}`, backoff: { initialMs: 5000, maxMs: 5000 } });
  const connP = nextConn();
  const t0 = Date.now();
  stream.start();
  try {
    const conn = await connP;
    assert.equal(await conn.helloOk, true);
    conn.ws.send(JSON.stringify(netmap(1, [2])));
    await until(() => stream.connected);
    assert.ok(Date.now() - t0 < 2000, `connected after ${Date.now() - t0} ms`);
    assert.equal(stream.currentUrl, url);
    assert.equal(stream.status().attempts, 2);
  } finally { stream.stop(); }
});

test('a silent server is detected by the keepalive and replaced', async () => {
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (m: string) => { warnings.push(m); } };
  const { stream, got } = client({ keepaliveMs: 50, idleTimeoutMs: 300, log });
  let connP = nextConn();
  stream.start();
  try {
    const first = await connP;
    await first.helloOk;
    first.ws.send(JSON.stringify(netmap(1, [2])));
    await until(() => stream.connected);
    await until(() => first.received.filter((m) => m.type === 'ping').length >= 2);
    connP = nextConn();
    answering = false; // no pongs, no data: the client must give up on this connection
    const second = await connP;
    answering = true;
    await second.helloOk;
    second.ws.send(JSON.stringify(netmap(2, [2])));
    await until(() => got.netmaps.length === 2);
    assert.match(warnings.join('\n'), /control stream silent for 0\.\d s, reconnecting/);
    assert.equal(stream.status().lastError, null, 'cleared by the new netmap');
  } finally { answering = true; stream.stop(); }
});

test('a server without the pinned key is a key mismatch: reported, retried, nothing sent', async () => {
  const other = encodeKey(publicKeyFromPrivate(generatePrivateKey()));
  const { stream } = client({ serverKey: () => other });
  const before = conns.length;
  stream.start();
  try {
    await until(() => stream.status().attempts >= 2);
    assert.equal(stream.status().keyMismatch, true);
    assert.match(stream.status().lastError ?? '', /coordinator key mismatch/);
    assert.equal(conns.length, before, 'no stream was opened');
  } finally { stream.stop(); }
});

test('stop() closes the connection and no reconnect follows', async () => {
  const { stream } = client();
  const connP = nextConn();
  stream.start();
  const conn = await connP;
  await conn.helloOk;
  const closed = once(conn.ws, 'close');
  stream.stop();
  await closed;
  const before = conns.length;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(conns.length, before);
  assert.equal(stream.connected, false);
});

test('path reports go out only to a coordinator whose netmap lists path-reports, and only while connected', async () => {
  const report = { type: 'paths' as const, natType: null, peers: [] };
  const { stream, got } = client();
  let connP = nextConn();
  stream.start();
  try {
    assert.equal(stream.sendPaths(report), false, 'not connected');
    let conn = await connP;
    await conn.helloOk;
    conn.ws.send(JSON.stringify(netmap(1, [2])));
    await until(() => got.netmaps.length === 1);
    assert.equal(stream.takesPathReports, false, 'a coordinator without the capability');
    assert.equal(stream.sendPaths(report), false);
    // A reconnect to one that takes them.
    connP = nextConn();
    conn.ws.terminate();
    conn = await connP;
    await conn.helloOk;
    conn.ws.send(JSON.stringify({ ...netmap(2, [2]), serverCapabilities: ['path-reports'] }));
    await until(() => got.netmaps.length === 2 && stream.connected);
    assert.equal(stream.takesPathReports, true);
    assert.equal(stream.sendPaths(report), true);
    await until(() => conn.received.some((m) => m.type === 'paths'));
    assert.equal(conns.flatMap((c) => c.received).filter((m) => m.type === 'paths').length, 1, 'nothing reached the first coordinator');
  } finally { stream.stop(); }
  assert.equal(stream.takesPathReports, false, 'stopped');
});

test('the NAT kind goes with the endpoints only to a coordinator listing nat-kind, and again when only the kind changes', async () => {
  let kind: 'symmetric' | 'port-restricted-cone' | null = 'symmetric';
  const { stream, got } = client({ natKind: () => kind });
  let connP = nextConn();
  stream.start();
  try {
    let conn = await connP;
    await conn.helloOk;
    conn.ws.send(JSON.stringify(netmap(1, [2])));
    await until(() => conn.received.some((m) => m.type === 'endpoints'));
    // An older coordinator's schema is strict: the key is left out, not sent as null.
    assert.equal('natKind' in conn.received.find((m) => m.type === 'endpoints')!, false);
    connP = nextConn();
    conn.ws.terminate();
    conn = await connP;
    await conn.helloOk;
    conn.ws.send(JSON.stringify({ ...netmap(2, [2]), serverCapabilities: ['path-reports', 'nat-kind'] }));
    await until(() => got.netmaps.length === 2 && conn.received.some((m) => m.type === 'endpoints'));
    assert.equal(conn.received.find((m) => m.type === 'endpoints')!.natKind, 'symmetric');
    kind = 'port-restricted-cone';
    stream.refreshEndpoints();
    stream.refreshEndpoints();
    await until(() => conn.received.filter((m) => m.type === 'endpoints').length === 2);
    await new Promise((r) => setTimeout(r, 50));
    const sent = conn.received.filter((m) => m.type === 'endpoints');
    assert.deepEqual(sent.map((m) => [m.endpoints, m.natKind]), [[['203.0.113.7:41641'], 'symmetric'], [['203.0.113.7:41641'], 'port-restricted-cone']]);
  } finally { stream.stop(); }
});

test('client-pings:N is read only when well formed (an integer, 1 ms to 1 hour)', () => {
  assert.equal(clientPingsCapability(15_000), 'client-pings:15000');
  assert.equal(clientPingsCapability(0.4), 'client-pings:1');
  assert.equal(clientPingsPromise(undefined), null);
  assert.equal(clientPingsPromise(['peer-patches']), null);
  assert.equal(clientPingsPromise(['peer-patches', 'client-pings:150']), 150);
  assert.equal(clientPingsPromise(['client-pings:3600000']), 3_600_000);
  for (const bad of ['client-pings', 'client-pings:', 'client-pings:0', 'client-pings:015', 'client-pings:-5', 'client-pings:1e3',
    'client-pings:1.5', 'client-pings:3600001', 'client-pings:99999999', ' client-pings:5', 'client-pings:5 ', 'CLIENT-PINGS:5']) {
    assert.equal(clientPingsPromise([bad]), null, bad);
  }
});
