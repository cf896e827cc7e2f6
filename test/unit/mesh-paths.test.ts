// The coordinator's live mesh (coordinator/mesh-paths.ts) over a real registry on SQLite: reports
// stored per node with peers named by id, too-frequent reports dropped and counted, peers that
// are no node (or the reporter itself) skipped, a deleted node's report forgotten (subscribers
// told), the subscriber bound; and the admin reply built from it (admin-paths.ts) matches its schema.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { SqliteStore } from '../../coordinator/store/sqlite.js';
import { NodeRegistry } from '../../coordinator/registry.js';
import { MeshPaths, MIN_GAP_MS, MAX_SUBSCRIBERS } from '../../coordinator/mesh-paths.js';
import { adminPathsReply } from '../../coordinator/admin-paths.js';
import { AdminPaths } from '../../proto/control/mesh-paths.js';
import type { PeerPathReport, StreamPaths } from '../../proto/control/schemas.js';

const key = (i: number): string => Buffer.alloc(32, i).toString('base64');
const peer = (i: number, over: Partial<PeerPathReport> = {}): PeerPathReport => ({
  peer: key(i), path: 'relay', relay: 'lab', endpoint: null, latencyMs: 2.5, whyNotDirect: 'forced to relay (--force-relay / PINHOLE_FORCE_RELAY)',
  tried: { candidates: 1, pingsSent: 0, pongsReceived: 0 }, idleSeconds: 1, ...over,
});
const report = (peers: PeerPathReport[]): StreamPaths => ({ type: 'paths', natType: 'symmetric (address-and-port-dependent mapping)', peers });

test('mesh paths: stored, rate-limited, unknown peers skipped, forgotten on delete, subscribers bounded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'meshpaths-'));
  const store = await SqliteStore.open(join(dir, 'c.db'));
  t.after(async () => { await store.close(); await rm(dir, { recursive: true, force: true }); });
  let clock = 1_000_000;
  const registry = new NodeRegistry(store, [], 0, { nodeKeyExpiryMs: null, ephemeralTimeoutMs: 60_000, log: pino({ level: 'silent' }) });
  const ids: number[] = [];
  for (const i of [1, 2, 3]) {
    const { node } = await registry.register({ nodeKey: key(i), discoKey: key(100 + i), hostname: `n${i}`, advertisedRoutes: [], advertisedExitNode: false, os: null, version: null, authKey: null });
    ids.push(node.id);
  }
  const mesh = new MeshPaths(registry, () => clock);
  const changes: { nodeId: number; gone: boolean }[] = [];
  const unsubscribe = mesh.subscribe((c) => changes.push({ nodeId: c.nodeId, gone: c.paths === null }));

  // Node 1 reports on node 2 (direct), node 3 (relay), itself and a key that is no node.
  assert.equal(mesh.report(ids[0]!, report([peer(2, { path: 'direct', relay: null, endpoint: '198.51.100.2:41641', whyNotDirect: null }), peer(3), peer(1), peer(77)])), true);
  const r1 = mesh.get(ids[0]!)!;
  assert.deepEqual(r1.peers.map((p) => [p.peerId, p.path]), [[ids[1], 'direct'], [ids[2], 'relay']]);
  assert.equal(mesh.stats.unknownPeers, 2);
  assert.equal(r1.natType, 'symmetric (address-and-port-dependent mapping)');

  // Too soon after the previous report: dropped and counted, the stored one kept.
  clock += MIN_GAP_MS - 1;
  assert.equal(mesh.report(ids[0]!, report([])), false);
  assert.equal(mesh.stats.tooFrequent, 1);
  assert.equal(mesh.get(ids[0]!)!.peers.length, 2);
  clock += 1;
  assert.equal(mesh.report(ids[0]!, report([peer(2)])), true, 'at the gap it is taken');
  assert.equal(mesh.get(ids[0]!)!.peers.length, 1);
  assert.equal(mesh.get(ids[0]!)!.peers[0]!.pathSince, clock, 'direct → relay: the path kind changed now');
  const since = clock;
  clock += 1000;
  mesh.report(ids[0]!, report([peer(2, { latencyMs: 9 })]));
  assert.equal(mesh.get(ids[0]!)!.peers[0]!.pathSince, since, 'still relayed: since the earlier report');
  // Another node's report is not limited by node 1's.
  assert.equal(mesh.report(ids[1]!, report([peer(1)])), true);

  // The admin reply names the nodes and matches its schema.
  const reply = adminPathsReply(mesh, registry);
  assert.ok(AdminPaths.safeParse(reply).success);
  assert.deepEqual(reply.nodes.map((n) => [n.name, n.peers.map((p) => p.peerName)]), [['n1', ['n2']], ['n2', ['n1']]]);

  // A deleted node's report is forgotten, and subscribers hear it.
  await registry.delete(ids[0]!);
  assert.equal(mesh.get(ids[0]!), undefined);
  assert.deepEqual(changes.at(-1), { nodeId: ids[0], gone: true });
  assert.deepEqual(mesh.all().map((n) => n.nodeId), [ids[1]]);
  assert.equal(changes.filter((c) => !c.gone).length, 4, "one change per stored report");
  // The other node's report still names the deleted peer by id; the admin reply leaves it out.
  assert.deepEqual(adminPathsReply(mesh, registry).nodes[0]!.peers, []);

  // At most MAX_SUBSCRIBERS listeners; unsubscribing frees a place.
  const extra = Array.from({ length: MAX_SUBSCRIBERS - 1 }, () => mesh.subscribe(() => undefined));
  assert.throws(() => mesh.subscribe(() => undefined), /too many live mesh subscribers/);
  unsubscribe();
  const again = mesh.subscribe(() => undefined);
  again();
  for (const u of extra) u();
});
