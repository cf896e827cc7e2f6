// The netmap stream as a node sees it: a full map first, then only deltas, in seq order — when
// another node joins, comes online, changes endpoints, leaves or dies silently; keepalives both
// ways; hellos that do not prove the node key are turned away.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode, type StreamClient } from '../helpers/coordinator-node.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

const RELAY_KEY = encodeKey(publicKeyFromPrivate(generatePrivateKey()));

describe('coordinator netmap stream', () => {
  let coord: CoordinatorProcess;
  let key: string;
  const streams: StreamClient[] = [];
  const open = async (node: SimulatedNode, opts?: Parameters<SimulatedNode['connect']>[1]): Promise<StreamClient> => {
    const s = await node.connect(coord.url, opts);
    streams.push(s);
    return s;
  };

  before(async () => {
    coord = await CoordinatorProcess.start({ flags: ['--stream-keepalive', '400ms', '--relay', 'home=http://127.0.0.1:1/relay', '--relay-key', `home=${RELAY_KEY}`] });
    key = await coord.createAuthKey({ reusable: true });
  });
  after(async () => {
    for (const s of streams) s.terminate();
    await coord.destroy();
  });

  test('full netmap, then deltas for a join, online, endpoints, and going away', async () => {
    const a = new SimulatedNode();
    const b = new SimulatedNode();
    const selfA = await a.join(coord.url, { authKey: key, hostname: 'a' });
    const selfB = await b.join(coord.url, { authKey: key, hostname: 'b' });
    const sa = await open(a);
    await sa.waitFor('netmap', () => sa.netmap !== null);
    assert.deepEqual(sa.netmap!.self, selfA);
    assert.deepEqual(sa.netmap!.relays, [{ name: 'home', url: 'http://127.0.0.1:1/relay', stun: ['127.0.0.1:3478'], key: RELAY_KEY }]);
    assert.equal(sa.netmap!.packetFilter, null);
    assert.deepEqual([...sa.peers.keys()], [selfB.id]);
    assert.equal(sa.peers.get(selfB.id)!.online, false);

    const sb = await open(b);
    await sb.waitFor('netmap', () => sb.netmap !== null);
    assert.deepEqual([...sb.peers.keys()], [selfA.id]);
    assert.equal(sb.peers.get(selfA.id)!.online, true);
    await sa.waitFor('b online', () => sa.peers.get(selfB.id)!.online);

    const c = new SimulatedNode();
    const selfC = await c.join(coord.url, { authKey: key, hostname: 'c' });
    await sa.waitFor('c added at a', () => sa.peers.has(selfC.id));
    await sb.waitFor('c added at b', () => sb.peers.has(selfC.id));
    assert.equal(sa.peers.get(selfC.id)!.ipv4, selfC.ipv4);

    sb.sendEndpoints(['192.0.2.7:41641', '[2001:db8::7]:41641'], 'home');
    await sa.waitFor('b endpoints', () => sa.peers.get(selfB.id)!.endpoints.length === 2);
    assert.equal(sa.peers.get(selfB.id)!.homeRelay, 'home');

    await sb.close();
    await sa.waitFor('b offline', () => !sa.peers.get(selfB.id)!.online);
    assert.ok(sa.peers.get(selfB.id)!.lastSeen);
    assert.deepEqual(sa.violations, []);
    assert.deepEqual(sb.violations, []);
    assert.ok(sa.deltas.length >= 4);
    assert.deepEqual(sa.errors, []);
  });

  test('a node that stops answering is dropped by the keepalive, and its peers see it offline', async () => {
    const watcher = new SimulatedNode();
    const silent = new SimulatedNode();
    await watcher.join(coord.url, { authKey: key, hostname: 'watcher' });
    const selfS = await silent.join(coord.url, { authKey: key, hostname: 'silent' });
    const sw = await open(watcher);
    const ss = await open(silent);
    await sw.waitFor('silent online', () => sw.peers.get(selfS.id)?.online === true);
    const t0 = Date.now();
    ss.stopResponding();
    await sw.waitFor('silent offline', () => sw.peers.get(selfS.id)?.online === false, 5000);
    const took = Date.now() - t0;
    assert.ok(took >= 300 && took < 2000, `dropped after ${took} ms with a 400 ms keepalive`);
  });

  test('a node that promised to ping twice per keepalive is not pinged, and is dropped once it goes quiet', async () => {
    const watcher = new SimulatedNode();
    const pinger = new SimulatedNode();
    const slow = new SimulatedNode();
    await watcher.join(coord.url, { authKey: key, hostname: 'watcher-2' });
    const selfP = await pinger.join(coord.url, { authKey: key, hostname: 'self-pinger' });
    const selfS = await slow.join(coord.url, { authKey: key, hostname: 'slow-pinger' });
    const statsBefore = (await coord.call('GET', '/api/v1/admin/stats')).body;
    const sw = await open(watcher);
    // Every 150 ms fits twice in the 400 ms keepalive; every 300 ms does not, and is pinged anyway.
    const sp = await open(pinger, { capabilities: ['client-pings:150'] });
    const ss = await open(slow, { capabilities: ['client-pings:300'] });
    const serverPings = { pinger: 0, slow: 0 };
    sp.ws.on('ping', () => { serverPings.pinger++; });
    ss.ws.on('ping', () => { serverPings.slow++; });
    let t = 0;
    const pinging = setInterval(() => {
      t++;
      sp.sendRaw(JSON.stringify({ type: 'ping', t }));
      ss.sendRaw(JSON.stringify({ type: 'ping', t }));
    }, 150);
    try {
      await sw.waitFor('both online', () => sw.peers.get(selfP.id)?.online === true && sw.peers.get(selfS.id)?.online === true);
      await new Promise((r) => setTimeout(r, 1600));
      assert.equal(serverPings.pinger, 0, 'the coordinator pinged a node that pings itself');
      assert.ok(serverPings.slow >= 2, `the node that pings too slowly got ${serverPings.slow} pings in 1.6 s`);
      assert.equal(sp.closed, null);
      assert.ok(sp.pongs.length >= 8, `pongs: ${sp.pongs.length}`);
      assert.equal(sw.peers.get(selfP.id)?.online, true);
    } finally {
      clearInterval(pinging);
    }
    // Its pings stop: with nothing else to hear, it is dropped within two intervals, as any silent node.
    const t0 = Date.now();
    await sw.waitFor('self-pinger offline', () => sw.peers.get(selfP.id)?.online === false, 5000);
    const took = Date.now() - t0;
    assert.ok(took >= 200 && took < 2000, `dropped after ${took} ms with a 400 ms keepalive`);
    // The slow one answers the coordinator's pings (ws does), so it stays.
    assert.equal(sw.peers.get(selfS.id)?.online, true);
    const stats = (await coord.call('GET', '/api/v1/admin/stats')).body;
    assert.equal(stats.stream.pingedByClient - statsBefore.stream.pingedByClient, 1, JSON.stringify(stats.stream));
  });

  test('ping gets pong; a malformed message gets an error and the stream stays', async () => {
    const n = new SimulatedNode();
    await n.join(coord.url, { authKey: key, hostname: 'pinger' });
    const s = await open(n);
    await s.waitFor('netmap', () => s.netmap !== null);
    s.sendRaw('{"type":"ping","t":42}');
    await s.waitFor('pong', () => s.pongs.includes(42));
    s.sendRaw('not json');
    s.sendRaw('{"type":"endpoints","endpoints":["999.1.1.1:1"]}');
    s.sendRaw('{"type":"endpoints","endpoints":["1.2.3.4:80"],"extra":1}');
    await s.waitFor('three errors', () => s.errors.length === 3);
    assert.ok(s.errors.every((e) => e.startsWith('bad message: ')), s.errors.join(' | '));
    s.sendRaw('{"type":"ping","t":43}');
    await s.waitFor('pong after errors', () => s.pongs.includes(43));
    assert.equal(s.closed, null);
    const stats = (await coord.call('GET', '/api/v1/admin/stats')).body;
    assert.ok(stats.stream.malformed >= 3, JSON.stringify(stats));
    assert.ok(stats.streams >= 1 && stats.onlineNodes >= 1 && stats.netmap.netmaps >= 1, JSON.stringify(stats));
  });

  test('hellos for a key other than the channel\'s, or an unknown node, are refused and closed', async () => {
    const known = new SimulatedNode();
    await known.join(coord.url, { authKey: key, hostname: 'known' });
    const cases: [string, Promise<StreamClient>, number, RegExp][] = [
      ['channel under another key', open(known, { proveWith: generatePrivateKey() }), 4001, /other than the control channel's/],
      ['unknown node', open(new SimulatedNode()), 4001, /unknown node key/],
    ];
    for (const [what, pending, code, reason] of cases) {
      const s = await pending;
      await s.waitFor(`${what}: closed`, () => s.closed !== null);
      assert.equal(s.closed!.code, code, what);
      assert.match(s.errors[0] ?? '', reason, what);
      assert.equal(s.netmap, null, what);
    }
  });

  test('a message before hello is a protocol error', async () => {
    const { WebSocket } = await import('ws');
    const { openChannel } = await import('../helpers/control-client.js');
    const { channel } = await openChannel(coord.url, new SimulatedNode().privateKey);
    const ws = new WebSocket('ws://coordinator/api/v1/stream', { createConnection: () => channel as never });
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    ws.on('open', () => ws.send(JSON.stringify({ type: 'ping', t: 1 })));
    assert.equal(await closed, 1008);
  });

  test('a second stream for the same node replaces the first; peers never see it offline', async () => {
    const watcher = new SimulatedNode();
    const n = new SimulatedNode();
    await watcher.join(coord.url, { authKey: key, hostname: 'watcher2' });
    const self = await n.join(coord.url, { authKey: key, hostname: 'twice' });
    const sw = await open(watcher);
    const first = await open(n);
    await sw.waitFor('online', () => sw.peers.get(self.id)?.online === true);
    const deltasBefore = sw.deltas.length;
    const second = await open(n);
    await second.waitFor('netmap on the second stream', () => second.netmap !== null);
    await first.waitFor('first closed', () => first.closed !== null);
    assert.equal(first.closed!.code, 4002);
    await new Promise((r) => setTimeout(r, 300));
    const offline = sw.deltas.slice(deltasBefore).flatMap((d) => d.upserts).filter((p) => p.id === self.id && !p.online);
    assert.deepEqual(offline, []);
  });
});

describe('coordinator netmap stream with peer patches', () => {
  let coord: CoordinatorProcess;
  const streams: StreamClient[] = [];
  before(async () => { coord = await CoordinatorProcess.start(); });
  after(async () => {
    for (const s of streams) s.terminate();
    await coord.destroy();
  });

  test('a stream that asked for peer-patches gets live changes as patches, and ends with the same netmap', async () => {
    const key = await coord.createAuthKey({ reusable: true });
    const plain = new SimulatedNode();
    const patched = new SimulatedNode();
    const mover = new SimulatedNode();
    await plain.join(coord.url, { authKey: key, hostname: 'plain' });
    await patched.join(coord.url, { authKey: key, hostname: 'patched' });
    const m = await mover.join(coord.url, { authKey: key, hostname: 'mover' });
    const sPlain = await plain.connect(coord.url);
    const sPatched = await patched.connect(coord.url, { capabilities: ['peer-patches', 'something-else'] });
    streams.push(sPlain, sPatched);
    await sPatched.waitFor('netmap', () => sPatched.netmap !== null);
    await new Promise((r) => setTimeout(r, 300)); // the batch announcing the registrations has gone out
    const before = sPatched.deltas.length;
    const sMover = await mover.connect(coord.url);
    streams.push(sMover);
    await sPatched.waitFor('mover online', () => sPatched.peers.get(m.id)?.online === true);
    sMover.sendEndpoints(['198.51.100.9:41641'], 'home');
    await sPatched.waitFor('mover endpoints', () => sPatched.peers.get(m.id)?.endpoints[0] === '198.51.100.9:41641');
    await sMover.close();
    await sPatched.waitFor('mover offline', () => sPatched.peers.get(m.id)?.online === false);
    await sPlain.waitFor('mover offline (plain)', () => sPlain.peers.get(m.id)?.online === false);

    const patchDeltas = sPatched.deltas.slice(before);
    assert.ok(patchDeltas.every((d) => !d.upserts.some((p) => p.id === m.id)), 'no whole records for live changes');
    const patches = patchDeltas.flatMap((d) => d.patches ?? []);
    assert.ok(patches.some((p) => p.id === m.id && p.endpoints?.[0] === '198.51.100.9:41641' && p.homeRelay === 'home' && p.online === undefined));
    assert.ok(patches.some((p) => p.id === m.id && p.online === false && typeof p.lastSeen === 'string' && p.endpoints === undefined));
    assert.ok(sPlain.deltas.every((d) => d.patches === undefined), 'no patches without the capability');
    assert.deepEqual(sPatched.peers.get(m.id), sPlain.peers.get(m.id));
    assert.deepEqual(sPatched.violations, []);
    assert.deepEqual(sPlain.violations, []);

    // A new node still arrives as a whole record on the patched stream.
    const late = await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'late' });
    await sPatched.waitFor('late node', () => sPatched.peers.get(late.id)?.nodeKey !== undefined);
  });
});
