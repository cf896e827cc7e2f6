// A relay's identity, with real `pinhole relay` processes on loopback: --key-file (created 0600,
// kept across restarts, refused when others may read it or it holds no key), the key printed on
// start, no open relay without --open; and the agent's side: a relay presenting a key other than
// the published one gets nothing from the agent (not even client-info), an impostor presenting the
// published key but unable to prove it gets no data frame, and the agent's relay set shows the
// refusal in its status and keeps its home on a relay that proved its key.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { formatStatus } from '../../agent/cli/status-format.js';
import { RelaySet } from '../../agent/magicsock/relay-set.js';
import { createRelayClient, RelayRefusedError, type RelayClient, type RelayDisconnect } from '../../agent/relay/relay-client.js';
import type { AgentStatus } from '../../agent/static/status.js';
import { RelayFrameReader } from '../../proto/relay/frame-reader.js';
import { decodeRelayFrame, encodeRelayFrame, RELAY_PROTOCOL_VERSION, type RelayFrame } from '../../proto/relay/frames.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { eventually, startRelayProcess, type RelayProcess } from '../helpers/relay-process.js';

const relays: RelayProcess[] = [];
const clients: RelayClient[] = [];
const dirs: string[] = [];

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const r of relays) await r.stop('SIGKILL');
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'pinhole-relay-id-'));
  dirs.push(d);
  return d;
}

async function relay(args: string[]): Promise<RelayProcess> {
  const r = await startRelayProcess(['--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', ...args]);
  relays.push(r);
  return r;
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PINHOLE_BIN, 'relay', ...args], { timeout: 10_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function nextDisconnect(c: RelayClient, timeoutMs = 5000): Promise<RelayDisconnect> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no disconnect')), timeoutMs);
    c.once('disconnect', (d) => { clearTimeout(t); resolve(d); });
  });
}

const newPublicKey = (): Uint8Array => publicKeyFromPrivate(generatePrivateKey());

describe('relay command line: identity and --open', () => {
  test('no --coordinator and no --open: refused with one line; --coordinator needs --key-file', async () => {
    const open = await run(['--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0']);
    assert.notEqual(open.code, 0);
    assert.equal(open.stderr.trim().split('\n').length, 1, open.stderr);
    assert.match(open.stderr, /^pinhole: refusing to start an open relay: give --coordinator URL .* or --open/);
    assert.equal(open.stdout, '', 'nothing listened');
    const keyless = await run(['--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--coordinator', 'http://127.0.0.1:1']);
    assert.notEqual(keyless.code, 0);
    assert.equal(keyless.stderr.trim().split('\n').length, 1, keyless.stderr);
    assert.match(keyless.stderr, /--key-file is required with --coordinator/);
  });

  test('--key-file: created 0600 and printed; the same key after a restart; loose or malformed files refused', async () => {
    const dir = await tempDir();
    const file = join(dir, 'relay.key');
    const first = await relay(['--open', '--key-file', file]);
    assert.match(first.output(), /^pinhole relay: listening ws:\/\/\S+ stun=\S+ key=\S+\npinhole relay key [A-Za-z0-9+/]{43}=\n/);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await first.healthz()).relayKey, first.key);
    await first.stop();
    const second = await relay(['--open', '--key-file', file]);
    assert.equal(second.key, first.key, 'the key persists');
    await second.stop();
    // Without --key-file an --open relay gets a fresh key, and still prints it.
    const fresh = await relay(['--open']);
    assert.notEqual(fresh.key, first.key);
    await fresh.stop();

    await chmod(file, 0o644);
    const loose = await run(['--open', '--key-file', file, '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0']);
    assert.notEqual(loose.code, 0);
    assert.equal(loose.stderr.trim().split('\n').length, 1, loose.stderr);
    assert.match(loose.stderr, /--key-file: .* is readable by group or others \(mode 644\); chmod 600/);
    const bad = join(dir, 'bad.key');
    await writeFile(bad, 'not a key\n', { mode: 0o600 });
    const malformed = await run(['--open', '--key-file', bad, '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0']);
    assert.notEqual(malformed.code, 0);
    assert.equal(malformed.stderr.trim().split('\n').length, 1, malformed.stderr);
    assert.match(malformed.stderr, /--key-file: .* does not hold a key/);
    assert.ok(!malformed.stderr.includes('not a key\n'), 'the file\'s content is not echoed');
    // A key written by `pinhole genkey`-style tooling (base64 private key, mode 0600) is taken as is.
    const given = generatePrivateKey();
    const givenFile = join(dir, 'given.key');
    await writeFile(givenFile, `${encodeKey(given)}\n`, { mode: 0o600 });
    const withGiven = await relay(['--open', '--key-file', givenFile]);
    assert.equal(withGiven.key, encodeKey(publicKeyFromPrivate(given)));
  });
});

describe('agent side: the relay must hold the published key', () => {
  test('a relay presenting another key is refused before the agent sends anything', async () => {
    const r = await relay(['--open']);
    const c = createRelayClient({ url: r.url, relayKey: newPublicKey(), nodePrivateKey: generatePrivateKey(), reconnect: false });
    clients.push(c);
    const d = await nextDisconnect(c);
    assert.equal(d.refused?.reason, 'key-mismatch');
    assert.match(d.refused!.message, new RegExp(`^key mismatch: relay presented ${r.key.replace(/[+/]/g, '\\$&')}, the netmap has `));
    assert.equal(c.stats.connects, 0);
    assert.equal(c.send(newPublicKey(), Buffer.from('data')), false, 'no data to a refused relay');
    await assert.rejects(c.ready(), RelayRefusedError);
    await eventually(async () => {
      const h = await r.healthz();
      assert.equal(h.counters.framesIn, 0, 'the relay never received a frame (no client-info)');
      assert.equal(h.counters.refused.unauthenticated, 1, 'the relay saw a connection close without client-info');
    });
  });

  test('an impostor presenting the published key cannot prove it: no data frame is sent to it', async () => {
    const published = newPublicKey();
    const impostor = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    const received: RelayFrame[] = [];
    impostor.on('connection', (ws: WebSocket) => {
      const reader = new RelayFrameReader();
      ws.on('message', (data: Buffer) => reader.push(data, (type, payload) => {
        const f = decodeRelayFrame(type, Uint8Array.from(payload));
        received.push(f);
        if (f.type === 'client-info') {
          ws.send(encodeRelayFrame({ type: 'server-info', keepaliveMs: 30_000, idleTimeoutMs: 75_000, rateBytesPerSec: 0, rateBurstBytes: 0, relayProof: randomBytes(16) }));
        }
      }));
      ws.send(encodeRelayFrame({ type: 'server-key', version: RELAY_PROTOCOL_VERSION, serverKey: published, challenge: randomBytes(32) }));
    });
    await new Promise((res) => impostor.once('listening', res));
    try {
      const port = (impostor.address() as AddressInfo).port;
      const c = createRelayClient({ url: `ws://127.0.0.1:${port}/relay`, relayKey: published, nodePrivateKey: generatePrivateKey(), reconnect: false });
      clients.push(c);
      const dst = newPublicKey();
      let sends = 0;
      const sending = setInterval(() => { c.send(dst, Buffer.from('secret-ish')); c.send(dst, Buffer.from('disco'), { priority: true }); sends++; }, 1);
      const d = await nextDisconnect(c).finally(() => clearInterval(sending));
      assert.equal(d.refused?.reason, 'bad-relay-proof');
      assert.ok(sends > 0);
      assert.deepEqual(received.map((f) => f.type), ['client-info'], 'only the handshake reached the impostor');
      assert.equal(c.stats.connects, 0);
    } finally {
      await new Promise((res) => impostor.close(res));
    }
  });

  test('the relay set: a mismatched relay is refused in status, the good one is home, sends to the bad one are dropped', async () => {
    const good = await relay(['--open']);
    const other = await relay(['--open']);
    const lines: string[] = [];
    const log = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s).msg as string); } });
    const homes: Array<string | null> = [];
    const set = new RelaySet({ nodePrivateKey: generatePrivateKey(), log, onRecv: () => undefined, onHomeChange: (h) => homes.push(h) });
    try {
      // 'bad' is listed first: it would stay home if its key were not checked.
      set.setRelays([
        { name: 'bad', url: other.url, stun: [], key: encodeKey(newPublicKey()) },
        { name: 'good', url: good.url, stun: [], key: good.key },
        { name: 'nokey', url: good.url, stun: [], key: '' },
      ]);
      await set.chooseHome();
      assert.equal(set.homeRelay, 'good');
      const st = set.status();
      const bad = st.find((r) => r.name === 'bad')!;
      assert.match(bad.refused ?? '', /^key mismatch: relay presented /);
      assert.equal(bad.connected, false);
      assert.equal(st.find((r) => r.name === 'nokey')!.refused, 'no key published for this relay');
      assert.equal(st.find((r) => r.name === 'good')!.refused, null);
      assert.ok(st.find((r) => r.name === 'good')!.connected);
      assert.equal(set.send('bad', newPublicKey(), Buffer.from('x')), false);
      assert.equal(set.usable('bad'), false);
      assert.ok(lines.some((l) => /^relay bad \(ws:\/\/\S+\) refused: key mismatch: relay presented .*; using other relays and direct paths$/.test(l)), lines.join('\n'));
      // Until its first connection attempt nothing tells 'bad' apart (it may be home for that
      // long); once refused it is never home again.
      assert.equal(homes.at(-1), 'good', `homes: ${homes.join(',')}`);
      await set.chooseHome();
      assert.equal(set.homeRelay, 'good');
      assert.equal((await other.healthz()).counters.framesIn, 0, 'the mismatched relay got nothing');
      // What `pinhole status` prints for these relays (the JSON is `relays` as above).
      const text = formatStatus({
        mode: 'managed', interface: { name: 'pt0', publicKey: 'k', listenPort: 1, addresses: [], mtu: 1280 }, peers: [], drops: {},
        relays: st,
      } as unknown as AgentStatus);
      assert.match(text, /^relays:$/m);
      assert.match(text, /^ {2}bad \(\S+\): refused \(key mismatch: relay presented /m);
      assert.match(text, /^ {2}good \(\S+\): connected, home/m);
    } finally {
      await set.close();
    }
  });
});
