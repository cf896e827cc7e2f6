// `pinhole relay` as a real process on loopback, driven by real relay clients (agent/relay) and,
// for misbehaviour the real client never produces, a raw client on ws + proto/relay: packets
// both ways by node key, refusals (no proof, bad proof, unknown to the coordinator), oversized
// frames, unknown destinations, peer-gone, idle timeout, queue overflow, rate limit, restart and a
// frozen relay, and the STUN responder with garbage thrown at it.
import { callerKeyOf, startScriptedControlServer, type ScriptedControlServer } from '../helpers/scripted-control-server.js';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { execFile } from 'node:child_process';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { join } from 'node:path';
import { StunClient } from '../../agent/netcheck/stun-client.js';
import { createRelayClient, type RelayClient, type RelayDisconnect } from '../../agent/relay/relay-client.js';
import { FRAME, NOTICE, RELAY_PROTOCOL_VERSION, type RelayFrame } from '../../proto/relay/frames.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { RawRelayClient } from '../helpers/raw-relay-client.js';
import { eventually, startRelayProcess, type RelayProcess } from '../helpers/relay-process.js';

const clients: RelayClient[] = [];
const raws: RawRelayClient[] = [];
const relays: RelayProcess[] = [];

function client(r: RelayProcess, opts: { reconnect?: false; connectTimeoutMs?: number; masking?: 'random' | 'none' } = {}): RelayClient {
  const c = createRelayClient({
    url: r.url,
    relayKey: r.keyBytes,
    ...(opts.masking ? { masking: opts.masking } : {}),
    nodePrivateKey: generatePrivateKey(),
    reconnect: opts.reconnect ?? { minDelayMs: 50, maxDelayMs: 400 },
    ...(opts.connectTimeoutMs ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
  });
  clients.push(c);
  return c;
}

async function raw(url: string): Promise<RawRelayClient> {
  const r = await RawRelayClient.connect(url);
  raws.push(r);
  return r;
}

async function relay(args: string[]): Promise<RelayProcess> {
  const r = await startRelayProcess(args);
  relays.push(r);
  return r;
}

after(async () => {
  for (const r of raws) r.close();
  await Promise.all(clients.map((c) => c.close()));
  for (const r of relays) {
    try { process.kill(r.pid, 'SIGCONT'); } catch { /* already gone */ }
    await r.stop('SIGKILL');
  }
});

const sameKey = (a: Uint8Array, b: Uint8Array) => Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;

/**
 * Sends `data` from → to in frames of varying size (1..maxFrame bytes), keeping at most `window`
 * bytes in flight (the test sees both ends), and resolves with what arrived, in order.
 */
async function transfer(from: RelayClient, to: RelayClient, data: Buffer, opts: { maxFrame?: number; window?: number; timeoutMs?: number } = {}): Promise<Buffer> {
  const maxFrame = opts.maxFrame ?? 1400;
  const window = opts.window ?? 256 * 1024;
  const parts: Buffer[] = [];
  let got = 0;
  let wake: (() => void) | null = null;
  const off = to.onRecv((src, d) => {
    if (!sameKey(src, from.nodeKey)) return;
    parts.push(Buffer.from(d));
    got += d.length;
    wake?.();
  });
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const waitProgress = () => new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`transfer stalled at ${got}/${data.length} bytes`)), Math.max(1, deadline - Date.now()));
    wake = () => { clearTimeout(t); wake = null; resolve(); };
  });
  try {
    let sent = 0;
    let i = 0;
    while (sent < data.length) {
      while (sent - got > window) await waitProgress();
      const n = Math.min(data.length - sent, 1 + ((i++ * 7919) % maxFrame));
      if (!from.send(to.nodeKey, data.subarray(sent, sent + n))) await once(from, 'drain');
      sent += n;
    }
    while (got < data.length) await waitProgress();
    return Buffer.concat(parts);
  } finally {
    off();
  }
}

function nextPeerGone(c: RelayClient, key: Uint8Array, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => { off(); reject(new Error('no peer-gone')); }, timeoutMs);
    const off = c.onPeerGone((k, reason) => {
      if (!sameKey(k, key)) return;
      clearTimeout(t);
      off();
      resolve(reason);
    });
  });
}

function nextDisconnect(c: RelayClient, timeoutMs = 5000): Promise<RelayDisconnect> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no disconnect')), timeoutMs);
    c.once('disconnect', (d) => { clearTimeout(t); resolve(d); });
  });
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('relay process: forwarding, refusals, liveness, STUN', () => {
  let r: RelayProcess;
  let a: RelayClient;
  let b: RelayClient;

  before(async () => {
    r = await relay(['--open', '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--keepalive', '300ms', '--idle-timeout', '1500ms', '--handshake-timeout', '1s', '--rate-limit', '0']);
    a = client(r);
    b = client(r, { masking: 'random' }); // both WebSocket masking modes in every exchange
    await Promise.all([a.ready(), b.ready()]);
  });

  test('two clients exchange 1 MB each way by node key, bytes intact', async () => {
    const ab = randomBytes(1 << 20);
    const ba = randomBytes(1 << 20);
    const [atB, atA] = await Promise.all([transfer(a, b, ab), transfer(b, a, ba)]);
    assert.equal(sha(atB), sha(ab));
    assert.equal(sha(atA), sha(ba));
    const h = await r.healthz();
    assert.equal(h.counters.clients, 2);
    assert.ok(h.counters.packetsForwarded >= 2 * 1500, `forwarded ${h.counters.packetsForwarded} frames`);
    assert.equal(h.counters.drops.queueOverflow, 0);
  });

  test('ping measures the round trip to the relay', async () => {
    const rtt = await a.ping();
    assert.ok(rtt > 0 && rtt < 1000, `rtt ${rtt}`);
    assert.equal(a.latencyMs, rtt);
    const median = await a.measureLatency({ samples: 5 });
    assert.ok(median > 0 && median < 1000);
  });

  test('a client that does not prove its key is refused and counted', async () => {
    const before = (await r.healthz()).counters.refused;
    // Sends data before client-info.
    const eager = await raw(r.url);
    await eager.next('server-key');
    eager.sendFrame({ type: 'send', priority: false, dst: b.nodeKey, data: Buffer.from('let me in') });
    const n1 = await eager.next('notice');
    assert.equal(n1.code, NOTICE.unauthenticated);
    assert.equal((await eager.closed).code, 4000 + NOTICE.unauthenticated);
    // Says nothing at all: closed after --handshake-timeout.
    const silent = await raw(r.url);
    const t0 = Date.now();
    assert.equal((await silent.closed).code, 4000 + NOTICE.unauthenticated);
    assert.ok(Date.now() - t0 >= 900, 'not before the handshake timeout');
    const after = (await r.healthz()).counters.refused;
    assert.equal(after.unauthenticated - before.unauthenticated, 2);
  });

  test('a wrong proof, or someone else\'s key, is refused and counted', async () => {
    const before = (await r.healthz()).counters.refused.badProof;
    const forger = await raw(r.url);
    await forger.next('server-key');
    forger.sendFrame({ type: 'client-info', version: RELAY_PROTOCOL_VERSION, nodeKey: forger.keys.publicKey, clientNonce: randomBytes(32), proof: randomBytes(16) });
    assert.equal((await forger.next('notice')).code, NOTICE.unauthenticated);
    assert.equal((await forger.closed).code, 4000 + NOTICE.unauthenticated);
    // Claims b's key with a proof made from its own private key.
    const thief = await raw(r.url);
    await thief.authenticate({ nodeKey: b.nodeKey, wait: false });
    assert.equal((await thief.closed).code, 4000 + NOTICE.unauthenticated);
    assert.equal((await r.healthz()).counters.refused.badProof - before, 2);
    assert.ok(b.connected, 'b keeps its connection');
  });

  test('an oversized frame disconnects that client and is counted; others carry on', async () => {
    const before = (await r.healthz()).counters.oversized;
    const big = await raw(r.url);
    await big.authenticate();
    const frame = new Uint8Array(5 + 70_000);
    frame.set([FRAME.SEND, 0, 1, 0x11, 0x70]);
    big.sendBytes(frame);
    const notice = await big.next('notice');
    assert.equal(notice.code, NOTICE.oversized);
    assert.equal((await big.closed).code, 4000 + NOTICE.oversized);
    assert.equal((await r.healthz()).counters.oversized - before, 1);
    const echo = await transfer(a, b, Buffer.from('still here'));
    assert.equal(echo.toString(), 'still here');
  });

  test('junk frames from an authenticated client are counted and ignored; text messages close it', async () => {
    const before = (await r.healthz()).counters.drops.badFrame;
    const junk = await raw(r.url);
    await junk.authenticate();
    let expectBad = 0;
    for (let i = 0; i < 2000; i++) {
      const type = 0x0a + (i % 200); // types the relay does not take from clients, and unknown ones
      const payload = randomBytes(i % 97);
      const f = new Uint8Array(5 + payload.length);
      f[0] = type;
      new DataView(f.buffer).setUint32(1, payload.length);
      f.set(payload, 5);
      junk.sendBytes(f);
      expectBad++;
    }
    junk.sendFrame({ type: 'ping', data: randomBytes(8) });
    assert.equal((await junk.next('pong')).type, 'pong', 'still served after the junk');
    assert.equal((await r.healthz()).counters.drops.badFrame - before, expectBad);
    junk.ws.send('a text message');
    assert.equal((await junk.closed).code, 4000 + NOTICE['protocol-error']);
    assert.equal(r.proc.exitCode, null);
    assert.equal((await transfer(a, b, Buffer.from('unharmed'))).toString(), 'unharmed');
  });

  test('a frame to an unknown key is dropped, counted, and answered with peer-gone(not-here)', async () => {
    const before = (await r.healthz()).counters.drops.unknownDestination;
    const nobody = randomBytes(32);
    const gone = nextPeerGone(a, nobody);
    a.send(nobody, Buffer.from('hello?'));
    assert.equal(await gone, 'not-here');
    assert.equal((await r.healthz()).counters.drops.unknownDestination - before, 1);
  });

  test('when a client disconnects, those that sent to it get peer-gone(disconnected)', async () => {
    const c = client(r);
    await c.ready();
    assert.equal((await transfer(a, c, Buffer.from('hi c'))).toString(), 'hi c');
    const bHeard: Uint8Array[] = [];
    const offB = b.onPeerGone((k) => bHeard.push(k));
    const gone = nextPeerGone(a, c.nodeKey);
    await c.close();
    assert.equal(await gone, 'disconnected');
    await new Promise((res) => setTimeout(res, 200));
    offB();
    assert.equal(bHeard.filter((k) => sameKey(k, c.nodeKey)).length, 0, 'b never sent to c: no notice');
  });

  test('keepalives keep quiet clients connected; a client that sends nothing is closed at the idle timeout', async () => {
    const mute = await raw(r.url);
    await mute.authenticate();
    const t0 = Date.now();
    const { code } = await mute.closed;
    assert.equal(code, 4000 + NOTICE['idle-timeout']);
    assert.ok(Date.now() - t0 >= 1400, `closed after ${Date.now() - t0} ms`);
    assert.ok(mute.frames.filter((f) => f.type === 'keepalive').length >= 3, 'the relay sent keepalives');
    // a and b have been idle for longer than the idle timeout at times, yet stay connected.
    await new Promise((res) => setTimeout(res, 2000));
    assert.ok(a.connected && b.connected);
    assert.equal(a.stats.connects, 1);
    assert.ok((await r.healthz()).counters.idleTimeouts >= 1);
  });

  test('aborting a client\'s signal closes it for good', async () => {
    const ac = new AbortController();
    const c = createRelayClient({ url: r.url, relayKey: r.keyBytes, nodePrivateKey: generatePrivateKey(), signal: ac.signal });
    clients.push(c);
    await c.ready();
    const gone = nextPeerGone(a, c.nodeKey);
    a.send(c.nodeKey, Buffer.from('x'));
    const d = nextDisconnect(c);
    ac.abort();
    assert.equal((await d).willReconnect, false);
    assert.equal(c.connected, false);
    assert.equal(c.send(a.nodeKey, Buffer.from('late')), false);
    await assert.rejects(c.ready(), /closed/);
    assert.equal(await gone, 'disconnected');
  });

  test('STUN: a binding request gets our address as XOR-MAPPED-ADDRESS', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((res) => sock.bind(0, '127.0.0.1', () => res()));
    try {
      const stun = new StunClient({ send: (p, port, address) => { sock.send(p, port, address); } });
      sock.on('message', (m, rinfo) => stun.handlePacket(m, rinfo));
      const res = await stun.request(r.stun[0]!);
      assert.deepEqual(res.mapped, { family: 4, address: '127.0.0.1', port: sock.address().port });
      assert.deepEqual(res.from, r.stun[0]);
    } finally {
      sock.close();
    }
  });

  test('STUN: garbage is dropped and counted, the process stays up and keeps answering', async () => {
    const before = (await r.healthz()).counters.stun;
    const sock = createSocket('udp4');
    await new Promise<void>((res) => sock.bind(0, '127.0.0.1', () => res()));
    try {
      const send = (b: Uint8Array) => new Promise<void>((res) => sock.send(b, r.stun[0]!.port, r.stun[0]!.address, () => res()));
      const JUNK = 150;
      const MALFORMED = 50;
      for (let i = 0; i < JUNK; i++) {
        const b = randomBytes(1 + (i * 37) % 600);
        b[0] = 0x40 | b[0]!; // never a STUN header (top bits set)
        await send(b);
        if (i % 20 === 19) await new Promise((res) => setTimeout(res, 5));
      }
      for (let i = 0; i < MALFORMED; i++) {
        // A real header and cookie, then an attribute that runs past the end.
        const b = Buffer.alloc(20 + 8);
        b.writeUInt16BE(0x0001, 0);
        b.writeUInt16BE(8, 2);
        b.writeUInt32BE(0x2112a442, 4);
        randomBytes(12).copy(b, 8);
        b.writeUInt16BE(0x0020, 20);
        b.writeUInt16BE(200 + i, 22);
        await send(b);
        if (i % 20 === 19) await new Promise((res) => setTimeout(res, 5));
      }
      await eventually(async () => {
        const s = (await r.healthz()).counters.stun;
        assert.equal(s.notStun - before.notStun, JUNK);
        assert.equal(s.malformed - before.malformed, MALFORMED);
      });
      assert.equal(r.proc.exitCode, null, 'relay still running');
      const stun = new StunClient({ send: (p, port, address) => { sock.send(p, port, address); } });
      sock.on('message', (m, rinfo) => stun.handlePacket(m, rinfo));
      assert.equal((await stun.request(r.stun[0]!)).mapped.port, sock.address().port);
    } finally {
      sock.close();
    }
  });
});

describe('relay process: a receiver that stops reading', () => {
  test('its queue drops the oldest data frames and keeps every priority frame', async (t) => {
    const r = await relay(['--open', '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--queue-frames', '64', '--queue-bytes', '64Mi', '--rate-limit', '0', '--write-timeout', '2m']);
    const receiver = await raw(r.url);
    await receiver.authenticate();
    receiver.ws.pause(); // stop reading: the kernel buffers fill, then the relay's queue
    const sender = client(r);
    await sender.ready();
    const N = 1000;
    const PRIORITY_EVERY = 50;
    const base = (await r.healthz()).counters;
    for (let i = 0; i < N; i++) {
      const priority = i % PRIORITY_EVERY === 0;
      const p = Buffer.alloc(priority ? 100 : 32 * 1024); // disco-sized priority frames, data-sized others
      p.writeUInt32BE(i, 0);
      if (!sender.send(receiver.keys.publicKey, p, { priority })) await once(sender, 'drain');
    }
    await eventually(async () => {
      assert.equal((await r.healthz()).counters.packetsForwarded - base.packetsForwarded, N);
    }, 20_000);
    const count = receiver.frames.length;
    receiver.ws.resume();
    // Read until nothing more arrives.
    let last = -1;
    while (receiver.frames.length !== last) {
      last = receiver.frames.length;
      await new Promise((res) => setTimeout(res, 400));
    }
    assert.ok(receiver.frames.length > count);
    const seqs = receiver.frames.filter((f): f is Extract<RelayFrame, { type: 'recv' }> => f.type === 'recv').map((f) => Buffer.from(f.data).readUInt32BE(0));
    const prio = seqs.filter((s) => s % PRIORITY_EVERY === 0);
    const data = seqs.filter((s) => s % PRIORITY_EVERY !== 0);
    assert.equal(prio.length, N / PRIORITY_EVERY, 'every priority frame arrived');
    const dataSent = N - N / PRIORITY_EVERY;
    const h = (await r.healthz()).counters;
    const dropped = h.drops.queueOverflow - base.drops.queueOverflow;
    assert.ok(dropped > 0, 'the queue overflowed');
    t.diagnostic(`data frames sent ${dataSent}, delivered ${data.length}, dropped (oldest) ${dropped}; priority ${prio.length}/${N / PRIORITY_EVERY}`);
    assert.equal(data.length, dataSent - dropped, 'every data frame either arrived or was counted as dropped');
    assert.equal(h.drops.priorityOverflow - base.drops.priorityOverflow, 0);
    for (let i = 1; i < data.length; i++) assert.ok(data[i]! > data[i - 1]!, 'order kept');
    const newest = Array.from({ length: N }, (_, i) => i).filter((i) => i % PRIORITY_EVERY !== 0).slice(-64);
    for (const s of newest) assert.ok(data.includes(s), `newest data frame ${s} kept`);
  });
});

describe('relay process: per-client rate limit', () => {
  test('a sender is held to --rate-limit bytes/s', async (t) => {
    const LIMIT = 1_000_000;
    const r = await relay(['--open', '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--rate-limit', String(LIMIT), '--rate-burst', '64Ki']);
    const s = client(r);
    const d = client(r);
    await Promise.all([s.ready(), d.ready()]);
    assert.equal(s.serverInfo!.rateBytesPerSec, LIMIT);
    const data = randomBytes(3_000_000);
    const t0 = performance.now();
    const got = await transfer(s, d, data, { maxFrame: 1200, window: 128 * 1024 });
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(sha(got), sha(data));
    const rate = data.length / seconds;
    t.diagnostic(`limit ${LIMIT} B/s, measured ${Math.round(rate)} B/s of payload over ${seconds.toFixed(2)} s`);
    assert.ok(rate <= LIMIT * 1.1, `measured ${Math.round(rate)} B/s, limit ${LIMIT}`);
    assert.ok(rate >= LIMIT * 0.7, `measured ${Math.round(rate)} B/s: far below the limit`);
    assert.ok((await r.healthz()).counters.rateLimitPauses > 0);
  });
});

describe('relay process: --coordinator authorization', () => {
  let coordinator: ScriptedControlServer;
  let dir: string;
  const coordinatorPrivate = generatePrivateKey();
  const known = new Set<string>();
  const requests: Array<{ path: string; caller: string }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pinhole-relay-'));
    // The coordinator's endpoint, scripted behind a real control channel (Noise, the relay's key as caller).
    coordinator = await startScriptedControlServer(coordinatorPrivate, {
      request: (req, res) => {
        requests.push({ path: req.url ?? '', caller: callerKeyOf(req) });
        const m = /^\/api\/v1\/relay\/nodes\/([A-Za-z0-9_-]{43})$/.exec(req.url ?? '');
        if (req.method !== 'GET' || !m) return void res.writeHead(400).end();
        if (!known.has(m[1]!)) return void res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"unknown node"}');
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ nodeKey: m[1] }));
      },
    });
  });

  after(async () => {
    await coordinator.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('only nodes the coordinator knows may connect; an unreachable coordinator refuses (fail closed)', async (t) => {
    const r = await relay(['--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--coordinator', coordinator.url, '--coordinator-key', coordinator.serverKey,
      '--key-file', join(dir, 'relay.key')]);

    const k1 = client(r);
    const k2 = client(r);
    const k3 = client(r, { reconnect: false });
    for (const c of [k1, k2, k3]) known.add(Buffer.from(c.nodeKey).toString('base64url'));
    await Promise.all([k1.ready(), k2.ready()]);
    assert.ok(requests.some((q) => q.path === `/api/v1/relay/nodes/${Buffer.from(k1.nodeKey).toString('base64url')}` && q.caller === r.key),
      'looked up inside a control channel opened with the relay\'s own key');
    assert.equal((await transfer(k1, k2, Buffer.from('authorized'))).toString(), 'authorized');

    const stranger = client(r, { reconnect: false });
    const refused = await nextDisconnect(stranger);
    assert.equal(refused.notice, 'not-authorized');
    assert.equal(refused.willReconnect, false);
    assert.equal(stranger.stats.connects, 0);
    assert.equal((await r.healthz()).counters.refused.notAuthorized, 1);

    // Coordinator gone: k3 is known but was never looked up, so the relay cannot tell.
    await k3.close();
    await coordinator.close();
    const k3again = createRelayClient({ url: r.url, relayKey: r.keyBytes, nodePrivateKey: generatePrivateKey(), reconnect: false });
    clients.push(k3again);
    known.add(Buffer.from(k3again.nodeKey).toString('base64url'));
    const tUnavailable = Date.now();
    const unavailable = await nextDisconnect(k3again);
    t.diagnostic(`refused as unavailable after ${Date.now() - tUnavailable} ms`);
    assert.equal(unavailable.notice, 'authorizer-unavailable');
    assert.equal((await r.healthz()).counters.refused.authorizerUnavailable, 1);
    assert.ok(k1.connected && k2.connected, 'connected nodes are not affected');
  });
});

describe('relay process: restart and a frozen relay', () => {
  test('clients reconnect by themselves after the relay is killed and restarted (same --key-file, same key), and after it freezes', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pinhole-relay-'));
    after(() => rm(dir, { recursive: true, force: true }));
    const keyFile = join(dir, 'relay.key');
    const args = (listen: string, stun: string) => ['--open', '--key-file', keyFile, '--listen', listen, '--stun', stun, '--keepalive', '200ms', '--idle-timeout', '1s'];
    const first = await relay(args('127.0.0.1:0', '127.0.0.1:0'));
    const a = client(first, { connectTimeoutMs: 3000 });
    const b = client(first, { connectTimeoutMs: 3000 });
    await Promise.all([a.ready(), b.ready()]);

    const lost = Promise.all([nextDisconnect(a), nextDisconnect(b)]);
    await first.stop('SIGKILL');
    for (const d of await lost) assert.equal(d.willReconnect, true);
    const second = await relay(args(`127.0.0.1:${first.httpPort}`, `127.0.0.1:${first.stun[0]!.port}`));
    assert.equal(second.key, first.key, 'the key file kept the relay\'s key');
    await Promise.all([a.ready(), b.ready()]);
    assert.equal(a.stats.connects, 2);
    assert.equal((await transfer(a, b, Buffer.from('after restart'))).toString(), 'after restart');

    // A relay that stops answering (SIGSTOP) is detected by the client's own idle timeout.
    const frozen = nextDisconnect(a, 5000);
    process.kill(second.pid, 'SIGSTOP');
    const t0 = Date.now();
    try {
      await frozen;
      assert.ok(Date.now() - t0 < 3000, `noticed after ${Date.now() - t0} ms`);
    } finally {
      process.kill(second.pid, 'SIGCONT');
    }
    await eventually(() => assert.ok(a.stats.connects >= 3 && a.connected && b.connected), 10_000);
    assert.equal((await transfer(b, a, Buffer.from('after freeze'))).toString(), 'after freeze');
    assert.equal(second.proc.exitCode, null);
  });
});


describe('relay command line', () => {
  const run = (args: string[]) => new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, [PINHOLE_BIN, 'relay', ...args], { timeout: 10_000 }, (err, _stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stderr });
    });
  });

  test('bad arguments and a busy port are one line on stderr and a non-zero exit', async () => {
    const noStun = await run(['--listen', '127.0.0.1:0']);
    assert.notEqual(noStun.code, 0);
    assert.match(noStun.stderr, /--stun/);
    const badListen = await run(['--listen', 'localhost', '--stun', '127.0.0.1:0']);
    assert.notEqual(badListen.code, 0);
    assert.equal(badListen.stderr.trim().split('\n').length, 1);
    assert.match(badListen.stderr, /^pinhole: --listen: expected IP:PORT/);
    const busy = createServer();
    await new Promise<void>((res) => busy.listen(0, '127.0.0.1', () => res()));
    try {
      const port = (busy.address() as AddressInfo).port;
      const r = await run(['--open', '--listen', `127.0.0.1:${port}`, '--stun', '127.0.0.1:0']);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^pinhole: cannot listen on 127\\.0\\.0\\.1:${port}: address in use`));
    } finally {
      busy.close();
    }
  });
});
