// The managed agent's state dir: keys created once with mode 0600 in a 0700 directory and kept
// across restarts; registration, prefs and netmap written atomically (a writer killed with -9
// never leaves a torn file); damaged files are set aside, a damaged key is never replaced.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import nacl from 'tweetnacl';
import { StateDir, StateFileError, type Registration } from '../../agent/daemon/state-dir.js';
import { writeFileAtomic } from '../../agent/daemon/atomic-file.js';
import { decodeKey, publicKeyFromPrivate, encodeKey } from '../../proto/wireguard/keys.js';
import type { Netmap } from '../../proto/control/schemas.js';

let root: string;
before(async () => { root = await mkdtemp(join(tmpdir(), 'pinhole-state-test-')); });
after(async () => { await rm(root, { recursive: true, force: true }); });

const mode = async (p: string): Promise<number> => (await stat(p)).mode & 0o777;

function netmapWith(peers: number, seq = 1): Netmap {
  const key = encodeKey(publicKeyFromPrivate(new Uint8Array(32).fill(7)));
  const peer = (i: number) => ({
    id: i + 2, name: `peer-${i}`, nodeKey: key, discoKey: key, ipv4: `100.64.${i >> 8}.${i & 255}`, ipv6: `fd7a:115c:a1e0::${i.toString(16)}`,
    endpoints: ['203.0.113.5:41641'], homeRelay: null, online: true, lastSeen: null, routes: [], exitNode: false, tags: [],
  });
  return {
    type: 'netmap', seq,
    self: { id: 1, name: 'self', nodeKey: key, ipv4: '100.64.0.1', ipv6: 'fd7a:115c:a1e0::1', keyExpiresAt: null, tags: [] },
    peers: Array.from({ length: peers }, (_, i) => peer(i)), packetFilter: null, relays: [],
  };
}

test('first open creates the dir 0700 and node + disco keys 0600; reopening keeps them', async () => {
  const dir = join(root, 'fresh', 'state');
  const s = await StateDir.open(dir);
  assert.equal(await mode(dir), 0o700);
  assert.equal(await mode(join(dir, 'node.key')), 0o600);
  assert.equal(await mode(join(dir, 'disco.key')), 0o600);
  // The node key is a WireGuard key as wg prints it, and its public half is what the state says.
  const priv = decodeKey((await readFile(join(dir, 'node.key'), 'utf8')).trim());
  assert.equal(encodeKey(publicKeyFromPrivate(priv)), s.keys.nodeKey);
  // The disco key is a NaCl box keypair.
  const disco = nacl.box.keyPair.fromSecretKey(s.keys.discoSecret);
  assert.equal(Buffer.from(disco.publicKey).toString('base64'), s.keys.discoKey);
  assert.notEqual(s.keys.discoKey, s.keys.nodeKey);

  const again = await StateDir.open(dir);
  assert.equal(again.keys.nodeKey, s.keys.nodeKey);
  assert.equal(again.keys.discoKey, s.keys.discoKey);
});

test('a key file someone made readable is tightened back to 0600, and a loose dir to 0700', async () => {
  const dir = join(root, 'loose');
  const s = await StateDir.open(dir);
  await chmod(join(dir, 'node.key'), 0o644);
  await chmod(dir, 0o755);
  const again = await StateDir.open(dir);
  assert.equal(again.keys.nodeKey, s.keys.nodeKey);
  assert.equal(await mode(join(dir, 'node.key')), 0o600);
  assert.equal(await mode(dir), 0o700);
});

test('registration, prefs and netmap round-trip, written 0600 without leftovers', async () => {
  const dir = join(root, 'roundtrip');
  const s = await StateDir.open(dir);
  assert.equal(await s.loadRegistration(), null);
  assert.deepEqual(await s.loadPrefs(), { wantUp: false, listenPort: null });
  assert.equal(await s.loadNetmap(), null);
  const reg: Registration = {
    coordinatorUrl: 'http://203.0.113.10:8080', serverKey: s.keys.nodeKey, hostname: 'alpha',
    node: { id: 3, name: 'alpha', nodeKey: s.keys.nodeKey, ipv4: '100.64.0.3', ipv6: 'fd7a:115c:a1e0::3', keyExpiresAt: null, tags: [] },
    registeredAt: new Date().toISOString(),
  };
  await s.saveRegistration(reg);
  await s.savePrefs({ wantUp: true, listenPort: 41641 });
  const nm = netmapWith(3);
  await s.saveNetmap(nm);
  for (const f of ['registration.json', 'prefs.json', 'netmap.json']) assert.equal(await mode(join(dir, f)), 0o600, f);
  assert.deepEqual((await readdir(dir)).sort(), ['disco.key', 'netmap.json', 'node.key', 'prefs.json', 'registration.json']);
  const again = await StateDir.open(dir);
  assert.deepEqual(await again.loadRegistration(), reg);
  assert.deepEqual(await again.loadPrefs(), { wantUp: true, listenPort: 41641 });
  assert.deepEqual(await again.loadNetmap(), nm);
});

test('a damaged netmap or registration is ignored with a warning; a damaged key refuses to start', async () => {
  const dir = join(root, 'damaged');
  await StateDir.open(dir);
  await writeFile(join(dir, 'netmap.json'), '{"type":"netmap","seq":');
  await writeFile(join(dir, 'registration.json'), JSON.stringify({ coordinatorUrl: 'not a url' }));
  const s = await StateDir.open(dir);
  assert.equal(await s.loadNetmap(), null);
  assert.equal(await s.loadRegistration(), null);
  assert.equal(s.warnings.length, 2);
  assert.match(s.warnings.join('\n'), /netmap\.json: not JSON/);
  assert.match(s.warnings.join('\n'), /registration\.json: coordinatorUrl/);

  await writeFile(join(dir, 'node.key'), 'garbage\n');
  await assert.rejects(StateDir.open(dir), (e: Error) => e instanceof StateFileError && /node\.key/.test(e.message));
  assert.equal(await readFile(join(dir, 'node.key'), 'utf8'), 'garbage\n', 'the damaged key is left for the user');
});

test('forgetNode removes the registration and netmap and gives the node new keys', async () => {
  const dir = join(root, 'forget');
  const s = await StateDir.open(dir);
  const oldKey = s.keys.nodeKey;
  await s.saveNetmap(netmapWith(1));
  await s.savePrefs({ wantUp: false, listenPort: 5 });
  await s.forgetNode();
  assert.notEqual(s.keys.nodeKey, oldKey);
  assert.equal(await s.loadNetmap(), null);
  assert.deepEqual((await readdir(dir)).sort(), ['disco.key', 'node.key', 'prefs.json']);
  assert.equal((await StateDir.open(dir)).keys.nodeKey, s.keys.nodeKey);
});

test('a writer killed with -9 mid-write never leaves a torn netmap, and its temp files are cleaned up', async () => {
  const dir = join(root, 'kill9');
  const s = await StateDir.open(dir);
  const target = join(dir, 'netmap.json');
  await s.saveNetmap(netmapWith(1));
  const atomic = fileURLToPath(new URL('../../agent/daemon/atomic-file.js', import.meta.url));
  // A child that rewrites a ~1.5 MB netmap as fast as it can; killed at a random moment, 6 times.
  const big = JSON.stringify(netmapWith(8000));
  const bigFile = join(root, 'big.json');
  await writeFile(bigFile, big);
  const code = `import { writeFileAtomic } from ${JSON.stringify(atomic)};
import { readFileSync } from 'node:fs';
const data = readFileSync(${JSON.stringify(bigFile)}, 'utf8');
process.stdout.write('ready\\n');
for (;;) await writeFileAtomic(${JSON.stringify(target)}, data);`;
  for (let round = 0; round < 6; round++) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 30 + Math.random() * 120));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('close', r));
    const text = await readFile(target, 'utf8');
    const parsed = JSON.parse(text) as Netmap; // throws on a torn file
    assert.ok(parsed.peers.length === 1 || parsed.peers.length === 8000);
  }
  const loaded = await (await StateDir.open(dir)).loadNetmap();
  assert.ok(loaded);
  assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp-')), [], 'no temp files left after open');
});

test('writeFileAtomic replaces the file in one step and respects the mode', async () => {
  const p = join(root, 'plain.txt');
  await writeFileAtomic(p, 'one', 0o640);
  assert.equal(await readFile(p, 'utf8'), 'one');
  assert.equal(await mode(p), 0o640);
  await Promise.all(Array.from({ length: 20 }, (_, i) => writeFileAtomic(p, `value ${i}`)));
  assert.match(await readFile(p, 'utf8'), /^value \d+$/);
  assert.deepEqual((await readdir(root)).filter((f) => f.includes('.tmp-')), []);
});
