// Two relay servers meshed on loopback (in this process, real WebSockets): a client of one relay
// reaches a client of the other both ways, a burst arrives intact and in order, a packet too large
// for the mesh is dropped and counted; a relay with another mesh credential is refused and
// learns nothing; a frame sent from the mesh for a key that is not here is dropped, not sent on.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createRelayClient, type RelayClient } from '../../agent/relay/relay-client.js';
import { startRelayServer, type RelayServer } from '../../relay/server.js';
import { MAX_PACKET_LEN } from '../../proto/relay/frames.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { eventually } from '../helpers/relay-process.js';

const cred = (c: string): Uint8Array => new TextEncoder().encode(c.repeat(40));
let r1: RelayServer;
let r2: RelayServer;
let r3: RelayServer | undefined;
const clients: RelayClient[] = [];

async function startPair(): Promise<void> {
  // r1 listens first; r2 dials r1 and r1 dials r2 once r2's port is known (a fresh r1 below).
  const probe = await startRelayServer({ listen: { address: '127.0.0.1', port: 0 } });
  const port1 = probe.http.port;
  await probe.close();
  r2 = await startRelayServer({ listen: { address: '127.0.0.1', port: 0 }, mesh: { peers: [`ws://127.0.0.1:${port1}/relay`], credential: cred('m') } });
  r1 = await startRelayServer({ listen: { address: '127.0.0.1', port: port1 }, mesh: { peers: [r2.url, `ws://127.0.0.1:${port1}/relay`], credential: cred('m') } });
}

function client(server: RelayServer): RelayClient {
  const c = createRelayClient({ url: server.url, relayKey: server.publicKey, nodePrivateKey: generatePrivateKey(), reconnect: false });
  clients.push(c);
  return c;
}

before(startPair);
after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
  await Promise.all([r1?.close(), r2?.close(), r3?.close()]);
});

test('clients of two meshed relays reach each other', async () => {
  await eventually(() => assert.ok(r1.counters.mesh.linksOut === 1 && r2.counters.mesh.linksOut === 1, 'both links up'), 10_000);
  const a = client(r1);
  const b = client(r2);
  await Promise.all([a.ready(), b.ready()]);
  await eventually(() => assert.ok(r1.counters.mesh.presence >= 1 && r2.counters.mesh.presence >= 1, 'presence learned'), 5000);
  const got: string[] = [];
  a.onRecv((src, d) => got.push(`a<-${Buffer.from(src).equals(Buffer.from(b.nodeKey)) ? 'b' : '?'}:${Buffer.from(d).toString()}`));
  b.onRecv((src, d) => got.push(`b<-${Buffer.from(src).equals(Buffer.from(a.nodeKey)) ? 'a' : '?'}:${Buffer.from(d).toString()}`));
  a.send(b.nodeKey, Buffer.from('hello b'));
  b.send(a.nodeKey, Buffer.from('hello a'));
  await eventually(() => assert.deepEqual(got.sort(), ['a<-b:hello a', 'b<-a:hello b']), 5000);
  assert.ok(r1.counters.mesh.forwardedOut >= 1 && r2.counters.mesh.forwardedIn >= 1);
  assert.ok(r2.counters.mesh.forwardedOut >= 1 && r1.counters.mesh.forwardedIn >= 1);
  assert.equal((r1.health() as { mesh: { peers: unknown[] } }).mesh.peers.length, 1, 'its own URL is skipped');
  // b leaves: r1 forgets it and answers a's next frame with not-here, as for any unknown key.
  await b.close();
  await eventually(() => assert.equal(r1.counters.mesh.presence, 0), 5000);
  const before = r1.counters.drops.unknownDestination;
  a.send(b.nodeKey, Buffer.from('gone'));
  await eventually(() => assert.equal(r1.counters.drops.unknownDestination, before + 1), 5000);
});

test('a burst crosses the mesh intact and in order; a packet too large for the mesh is counted, not fatal', async () => {
  const a = client(r1);
  const b = client(r2);
  await Promise.all([a.ready(), b.ready()]);
  await eventually(() => assert.ok(r1.counters.mesh.presence >= 1), 5000);
  const got: Buffer[] = [];
  b.onRecv((_src, d) => got.push(Buffer.from(d)));
  const sent: Buffer[] = [];
  for (let i = 0; i < 3000; i++) {
    const p = Buffer.alloc(2 + (i * 37) % 1500, i & 0xff);
    p.writeUInt16BE(i, 0);
    sent.push(p);
    a.send(b.nodeKey, p);
  }
  await eventually(() => assert.equal(got.length, sent.length), 10_000);
  assert.ok(got.every((g, i) => g.equals(sent[i]!)), 'every packet intact, in order');
  const before = r1.counters.mesh.drops.tooLarge;
  a.send(b.nodeKey, new Uint8Array(MAX_PACKET_LEN));
  a.send(b.nodeKey, Buffer.from('after'));
  await eventually(() => assert.ok(got.some((g) => g.toString() === 'after')), 5000);
  assert.equal(r1.counters.mesh.drops.tooLarge, before + 1);
});

test('a relay without the mesh credential is refused and learns nothing', async () => {
  r3 = await startRelayServer({ listen: { address: '127.0.0.1', port: 0 }, mesh: { peers: [r2.url], credential: cred('x') } });
  await eventually(() => assert.ok(r2.counters.mesh.refused.badCredential >= 1), 5000);
  assert.equal(r3.counters.mesh.linksOut, 0);
  assert.equal(r3.counters.mesh.presence, 0);
  const st = (r3.health() as { mesh: { peers: Array<{ state: string }> } }).mesh.peers[0]!;
  assert.notEqual(st.state, 'open');
});

test('pinhole relay refuses bad mesh flags with one clear line', async () => {
  const { spawnSync } = await import('node:child_process');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { PINHOLE_BIN } = await import('../../scripts/tunnels/paths.js');
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-meshcli-'));
  try {
    const open = join(dir, 'open.key');
    writeFileSync(open, `${'k'.repeat(40)}\n`, { mode: 0o644 });
    const short = join(dir, 'short.key');
    writeFileSync(short, 'tooshort\n', { mode: 0o600 });
    const base = ['relay', '--open', '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0'];
    const cases: Array<[string[], RegExp]> = [
      [['--mesh-with', 'ws://127.0.0.1:1/relay'], /--mesh-key-file F is required with --mesh-with/],
      [['--mesh-with', 'ftp://x/relay', '--mesh-key-file', short], /--mesh-with: not a ws/],
      [['--mesh-with', 'ws://127.0.0.1:1/relay', '--mesh-key-file', open], /readable by group or others/],
      [['--mesh-with', 'ws://127.0.0.1:1/relay', '--mesh-key-file', short], /at least 32 characters/],
    ];
    for (const [args, want] of cases) {
      const r = spawnSync(process.execPath, [PINHOLE_BIN, ...base, ...args], { encoding: 'utf8', timeout: 15_000 });
      assert.notEqual(r.status, 0, `${args.join(' ')} must fail`);
      assert.match(r.stderr, want);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
