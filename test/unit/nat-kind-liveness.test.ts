// A node's NAT kind on the coordinator: reported with its endpoints, kept by the registry as a live
// field (one writer: setEndpoints), sent in peer records and in patches, written with the liveness
// batch, applied from another replica's rows as a live 'endpoints' change; a SQLite file at schema
// v4 migrates to v5 keeping its nodes, and a NAT kind the column holds that is none is read as null.
// The agent side: a patch's natKind reaches the netmap view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { pino } from 'pino';
import { SqliteStore } from '../../coordinator/store/sqlite.js';
import { MIGRATIONS, SCHEMA_VERSION } from '../../coordinator/store/migrations.js';
import { POSTGRES_MIGRATIONS } from '../../coordinator/store/postgres-migrations.js';
import { NodeRegistry, type NodeChange } from '../../coordinator/registry.js';
import { CHANGED_ENDPOINTS, PeerRecords } from '../../coordinator/peer-records.js';
import { NetmapView } from '../../agent/daemon/netmap-view.js';
import { Netmap, Peer, PeerPatch } from '../../proto/control/schemas.js';

const key = (i: number): string => Buffer.alloc(32, i).toString('base64');
const log = pino({ level: 'silent' });

function sql(db: sqlite3.Database, text: string, params: unknown[] = []): Promise<void> {
  return new Promise((resolve, reject) => db.run(text, params, (err) => (err ? reject(err) : resolve())));
}
function exec(db: sqlite3.Database, text: string): Promise<void> {
  return new Promise((resolve, reject) => db.exec(text, (err) => (err ? reject(err) : resolve())));
}
function all<T>(db: sqlite3.Database, text: string): Promise<T[]> {
  return new Promise((resolve, reject) => db.all<T>(text, [], (err, rows) => (err ? reject(err) : resolve(rows))));
}
function openRaw(path: string): Promise<sqlite3.Database> {
  return new Promise((resolve, reject) => { const d = new sqlite3.Database(path, (err) => (err ? reject(err) : resolve(d))); });
}
const closeRaw = (db: sqlite3.Database): Promise<void> => new Promise((resolve) => db.close(() => resolve()));

test('schema v5 is nat_kind in both dialects', () => {
  assert.equal(SCHEMA_VERSION, 6);
  const v5 = (list: typeof MIGRATIONS) => list.find((m) => m.version === 5)!;
  assert.match(v5(MIGRATIONS).sql, /ADD COLUMN nat_kind TEXT/);
  assert.match(v5(POSTGRES_MIGRATIONS).sql, /ADD COLUMN nat_kind TEXT/);
});

test('registry: natKind is a live field written with the endpoints, carried in records and patches, flushed and read back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'natkind-'));
  const path = join(dir, 'c.db');
  let store = await SqliteStore.open(path);
  t.after(async () => { await store.close(); await rm(dir, { recursive: true, force: true }); });
  const registry = new NodeRegistry(store, [], 0, { nodeKeyExpiryMs: null, ephemeralTimeoutMs: 60_000, log });
  const changes: NodeChange[] = [];
  registry.onChange((c) => changes.push(c));
  const reg = (i: number) => registry.register({ nodeKey: key(i), discoKey: key(100 + i), hostname: `n${i}`, advertisedRoutes: [], advertisedExitNode: false, os: null, version: null, authKey: null });
  const { node: a } = await reg(1);
  const { node: b } = await reg(2);
  assert.equal(a.natKind, null, 'a new node has not reported one');
  const records = new PeerRecords(registry);
  assert.equal((Peer.parse(JSON.parse(records.record(a.id)!.toString())) as Peer).natKind, null);

  changes.length = 0;
  registry.setEndpoints(a.id, ['198.51.100.1:41641'], 'lab', 'symmetric');
  assert.deepEqual(changes.map((c) => c.kind === 'updated' && [c.live, c.membership]), [['endpoints', false]]);
  records.invalidate(a.id);
  const patch = PeerPatch.parse(JSON.parse(records.patch(a.id, CHANGED_ENDPOINTS)!.toString()));
  assert.deepEqual(patch, { id: a.id, endpoints: ['198.51.100.1:41641'], homeRelay: 'lab', natKind: 'symmetric' });
  assert.equal(Peer.parse(JSON.parse(records.record(a.id)!.toString())).natKind, 'symmetric');

  // Only the kind changes (a netcheck, same endpoints): still a change; an older agent (no field) keeps it; the same report is none.
  changes.length = 0;
  registry.setEndpoints(a.id, ['198.51.100.1:41641'], 'lab', 'port-restricted-cone');
  registry.setEndpoints(a.id, ['198.51.100.1:41641'], 'lab', undefined);
  registry.setEndpoints(a.id, ['198.51.100.1:41641'], 'lab', 'port-restricted-cone');
  assert.equal(changes.length, 1);
  assert.equal(registry.get(a.id)!.natKind, 'port-restricted-cone');
  registry.setEndpoints(b.id, [], null, null);

  // The agent's netmap view folds the patch in.
  const view = new NetmapView(Netmap.parse({
    type: 'netmap', seq: 0, self: { id: b.id, name: 'n2', nodeKey: key(2), ipv4: b.ipv4, ipv6: b.ipv6, keyExpiresAt: null, tags: [], routes: [] },
    peers: [JSON.parse(records.record(a.id)!.toString())], packetFilter: null, relays: [],
  }));
  records.invalidate(a.id);
  view.applyDelta({ type: 'delta', seq: 1, upserts: [], patches: [PeerPatch.parse(JSON.parse(records.patch(a.id, CHANGED_ENDPOINTS)!.toString()))], removals: [] });
  assert.equal(view.peers.get(a.id)!.natKind, 'port-restricted-cone');

  await registry.flushLiveness();
  await store.close();
  store = await SqliteStore.open(path);
  const snap = await store.load();
  assert.deepEqual(snap.nodes.map((n) => [n.id, n.natKind]), [[a.id, 'port-restricted-cone'], [b.id, null]]);

  // Another replica's row differing only in the kind: a live 'endpoints' change, not a membership one.
  const other = new NodeRegistry(store, snap.nodes, snap.lastNodeId, { nodeKeyExpiryMs: null, ephemeralTimeoutMs: 60_000, log });
  const seen: NodeChange[] = [];
  other.onChange((c) => seen.push(c));
  other.applyStored([a.id], [{ ...snap.nodes[0]!, natKind: 'symmetric' }], []);
  assert.deepEqual(seen.map((c) => c.kind === 'updated' && [c.live, c.membership]), [['endpoints', false]]);
  assert.equal(other.get(a.id)!.natKind, 'symmetric');
  other.applyStored([a.id], [{ ...snap.nodes[0]!, natKind: 'symmetric' }], []);
  assert.equal(seen.length, 1, 'the same row again changes nothing');
  other.close();
  registry.close();
});

test('a SQLite file at schema v4 migrates to v5 keeping its nodes; a nat_kind that is no NAT kind reads as null', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'natkind-mig-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'old.db');
  // A database as a v4 coordinator left it, with one node that reported endpoints.
  const raw = await openRaw(path);
  await sql(raw, 'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
  for (const m of MIGRATIONS.filter((x) => x.version <= 4)) {
    await exec(raw, m.sql);
    await sql(raw, 'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, 1]);
  }
  await sql(raw, `INSERT INTO nodes (node_key, disco_key, hostname, name, ipv4, ipv6, created_at, ephemeral, tags, advertised_routes,
    advertised_exit_node, approved_routes, endpoints, home_relay, last_seen, os, agent_version)
    VALUES (?, ?, 'old', 'old', '100.64.0.9', 'fd7a:115c:a1e0::9', 1, 0, '[]', '[]', 0, '[]', '["203.0.113.5:41641"]', 'lab', 5, 'linux', '0.1.0')`, [key(9), key(109)]);
  await closeRaw(raw);

  let store = await SqliteStore.open(path);
  let snap = await store.load();
  assert.equal(snap.nodes.length, 1);
  const n = snap.nodes[0]!;
  assert.deepEqual([n.name, n.endpoints, n.homeRelay, n.lastSeen, n.os, n.natKind], ['old', ['203.0.113.5:41641'], 'lab', 5, 'linux', null]);
  await store.saveLiveness([{ id: n.id, endpoints: n.endpoints, homeRelay: 'lab', natKind: 'full-cone', lastSeen: 6 }]);
  await store.close();

  const check = await openRaw(path);
  assert.deepEqual(await all(check, 'SELECT MAX(version) AS v FROM schema_migrations'), [{ v: SCHEMA_VERSION }]);
  assert.deepEqual(await all(check, 'SELECT nat_kind FROM nodes'), [{ nat_kind: 'full-cone' }]);
  await sql(check, "UPDATE nodes SET nat_kind = 'wormhole'");
  await closeRaw(check);
  store = await SqliteStore.open(path);
  snap = await store.load();
  assert.equal(snap.nodes[0]!.natKind, null, 'validated on the way in');
  await store.close();
});
