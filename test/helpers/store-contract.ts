// What every ControlStore must do (coordinator/store/interface.ts), checked the same way on any
// store: `open` opens the same, initially empty database each time it is called, so a reopen
// shows what was durable.
import assert from 'node:assert/strict';
import { AuthKeyUsedError, IdentityTakenError, type AuthKeyRow, type ControlStore, type NodeRow } from '../../coordinator/store/interface.js';

const T0 = 1_760_000_000_000;

function authKey(id: number, reusable: boolean): AuthKeyRow {
  return {
    id, prefix: `${'0'.repeat(11)}${id}`, secretHash: 'ab'.repeat(32), reusable, ephemeral: false, tags: ['tag:ci'], user: 'ops@example.com',
    createdAt: T0, expiresAt: id === 2 ? T0 + 86_400_000 : null, usedCount: 0, revokedAt: null,
  };
}

function node(id: number, over: Partial<NodeRow> = {}): NodeRow {
  return {
    id, nodeKey: `nodekey-${id}`, discoKey: `disco-${id}`, hostname: `host${id}`, name: `host${id}`,
    ipv4: `100.64.0.${id}`, ipv6: `fd7a:1e57:9a3c::6440:${id}`, createdAt: T0 + id, keyExpiresAt: T0 + 1000, ephemeral: false,
    tags: ['tag:ci'], user: 'ops@example.com', authKeyId: 1, advertisedRoutes: ['198.18.5.0/24'], advertisedExitNode: true,
    approvedRoutes: [], endpoints: [], homeRelay: null, natKind: null, lastSeen: null, os: 'linux debian 12', version: '0.1.0', ...over,
  };
}

async function rejectsWith(p: Promise<unknown>, cls: typeof AuthKeyUsedError | typeof IdentityTakenError, field?: string, what = ''): Promise<void> {
  await assert.rejects(p, (err: Error) => {
    assert.ok(err instanceof cls, `${what}: expected ${cls.name}, got ${err.name}: ${err.message}`);
    if (field !== undefined) assert.equal((err as IdentityTakenError).field, field, what);
    return true;
  });
}

export async function checkStoreContract(open: () => Promise<ControlStore>): Promise<void> {
  let store = await open();
  try {
    // PostgreSQL adds the change feed's position (replicas); checked below.
    const { lastChangeId: _change, onlineElsewhere: _online, ...empty } = await store.load();
    assert.deepEqual(empty, {
      serverPrivateKey: null, nextServerPrivateKey: null, nodes: [], authKeys: [], policy: { json: null, updatedAt: null }, lastNodeId: 0, lastAuthKeyId: 0,
    });

    // The first coordinator key stored wins; a rotation replaces both.
    assert.equal(await store.initServerKey('key-a'), 'key-a');
    assert.equal(await store.initServerKey('key-b'), 'key-a', 'a second first key does not replace the stored one');
    await store.saveServerKeys('key-a', 'key-next');
    assert.equal((await store.load()).nextServerPrivateKey, 'key-next');

    await store.insertAuthKey(authKey(1, false));
    await store.insertAuthKey(authKey(2, true));
    await rejectsWith(store.insertAuthKey(authKey(1, true)), IdentityTakenError, 'id', 'auth key id reused');
    await rejectsWith(store.insertAuthKey({ ...authKey(3, true), prefix: authKey(1, true).prefix }), IdentityTakenError, 'prefix', 'auth key prefix reused');

    // A single-use key counts one use; the second registration with it changes nothing.
    await store.saveRegistration(node(1), 1);
    await rejectsWith(store.saveRegistration(node(2), 1), AuthKeyUsedError, undefined, 'single-use key used twice');
    await store.revokeAuthKey(2, T0 + 5);
    await rejectsWith(store.saveRegistration(node(2, { authKeyId: 2 }), 2), AuthKeyUsedError, undefined, 'revoked key');
    let snap = await store.load();
    assert.deepEqual(snap.nodes.map((n) => n.id), [1], 'refused registrations stored nothing');
    assert.deepEqual(snap.authKeys.map((k) => [k.id, k.usedCount, k.revokedAt]), [[1, 1, null], [2, 0, T0 + 5]]);
    assert.deepEqual(snap.nodes[0], node(1));

    // Identities are unique: id (for another node key), node key, name, address.
    await rejectsWith(store.saveRegistration(node(1, { nodeKey: 'other' , name: 'x', ipv4: '100.64.1.1', ipv6: 'fd7a:1e57:9a3c::6440:101' }), null), IdentityTakenError, 'id', 'id of another node key');
    await rejectsWith(store.saveRegistration(node(3, { nodeKey: 'nodekey-1' }), null), IdentityTakenError, 'nodeKey', 'node key twice');
    await rejectsWith(store.saveRegistration(node(3, { name: 'host1' }), null), IdentityTakenError, 'name', 'name twice');
    await rejectsWith(store.saveRegistration(node(3, { ipv4: '100.64.0.1' }), null), IdentityTakenError, 'address', 'address twice');
    await store.saveRegistration(node(3), null);

    // An admin's rename: names stay unique in the database; the renamed node's other columns stay.
    await rejectsWith(store.renameNode(3, 'host1'), IdentityTakenError, 'name', 'rename to a taken name');
    await store.renameNode(3, 'db-primary');
    assert.equal((await store.load()).nodes.find((n) => n.id === 3)?.name, 'db-primary');
    await rejectsWith(store.saveRegistration(node(4, { name: 'db-primary' }), null), IdentityTakenError, 'name', 'a registration with a renamed node\'s name');
    await store.renameNode(3, 'host3');

    // Liveness is written in batches and survives a re-registration; routes, expiry and policy stick.
    await store.saveLiveness([
      { id: 1, endpoints: ['203.0.113.9:41641'], homeRelay: 'r1', natKind: 'symmetric', lastSeen: T0 + 50 },
      { id: 3, endpoints: [], homeRelay: null, natKind: null, lastSeen: T0 + 51 },
    ]);
    // A re-registration replaces OS and version (an older agent that says nothing: null).
    await store.saveRegistration(node(1, { hostname: 'renamed', name: 'renamed', discoKey: 'disco-new', os: null, version: null }), null);
    await store.setApprovedRoutes([{ id: 1, approvedRoutes: ['198.18.5.0/24'] }]);
    await store.setNodeKeyExpiry(3, null);
    await store.savePolicy({ json: '{"acls":[]}', updatedAt: T0 + 60 }, [{ id: 3, approvedRoutes: ['0.0.0.0/0', '::/0'] }]);

    const taken = await store.takenIdentities();
    assert.equal(taken.lastNodeId, 3);
    assert.equal(taken.lastAuthKeyId, 2);
    assert.deepEqual(taken.nodes.sort((a, b) => a.id - b.id), [
      { id: 1, nodeKey: 'nodekey-1', name: 'renamed', ipv4: '100.64.0.1' }, { id: 3, nodeKey: 'nodekey-3', name: 'host3', ipv4: '100.64.0.3' },
    ]);

    await store.deleteNode(3);
    await store.saveServerKeys('key-next', null);
    const before = await store.load();
    if (store.feed) {
      // Every write committed one change, ids 1, 2, 3, ... without a gap, the last in the snapshot.
      const { changes, lastId } = await store.feed.changesAfter(0, 1000);
      assert.ok(changes.length > 5, `changes: ${changes.length}`);
      assert.deepEqual(changes.map((c) => c.id), changes.map((_, i) => i + 1));
      assert.equal(lastId, changes.length);
      assert.equal(before.lastChangeId, lastId);
      assert.ok(changes.every((c) => c.replica === store.feed!.replicaId));
      assert.deepEqual(changes.at(-2)!.nodeIds, [3], 'the one before the last is the delete of node 3');
      assert.deepEqual([changes.at(-1)!.serverKeys, changes.at(-1)!.nodeIds], [true, []], 'the last one is the coordinator key change');
      assert.equal(changes.filter((c) => c.serverKeys).length, 2, 'one key change per saveServerKeys, no other change marked as one');
      assert.deepEqual(await store.feed.loadServerKeys(), { current: 'key-next', next: null });
      assert.deepEqual((await store.feed.changesAfter(lastId - 1, 1000)).changes.map((c) => c.id), [lastId]);
    }
    await store.close();

    // Everything acknowledged is there after a reopen; ids are never reused.
    store = await open();
    snap = await store.load();
    assert.deepEqual(snap, before);
    assert.equal(snap.serverPrivateKey, 'key-next');
    assert.equal(snap.nextServerPrivateKey, null);
    assert.equal(snap.lastNodeId, 3, 'the deleted node 3 still counts as handed out');
    assert.deepEqual(snap.nodes, [node(1, {
      hostname: 'renamed', name: 'renamed', discoKey: 'disco-new', os: null, version: null, approvedRoutes: ['198.18.5.0/24'],
      endpoints: ['203.0.113.9:41641'], homeRelay: 'r1', natKind: 'symmetric', lastSeen: T0 + 50,
    })]);
    assert.deepEqual(snap.policy, { json: '{"acls":[]}', updatedAt: T0 + 60 });
    assert.equal(snap.authKeys[1]!.expiresAt, T0 + 86_400_000);
  } finally {
    await store.close();
  }
}

/**
 * Registrations arriving together (the SQLite store commits them as one group): each one's
 * outcome is its own — a used single-use key or a taken name refuses only that registration —
 * and what was acknowledged is exactly what a reopened store holds.
 */
export async function checkConcurrentRegistrations(open: () => Promise<ControlStore>): Promise<void> {
  let store = await open();
  try {
    await store.insertAuthKey(authKey(1, false));
    await store.insertAuthKey(authKey(2, true));
    const attempts: [NodeRow, number | null, string][] = [
      ...Array.from({ length: 40 }, (_, i) => [node(i + 1, { authKeyId: 2 }), 2, 'ok'] as [NodeRow, number, string]),
      ...Array.from({ length: 5 }, (_, i) => [node(41 + i), 1, 'single-use'] as [NodeRow, number, string]),
      [node(46, { name: 'host1' }), null, 'name'],
      [node(47, { nodeKey: 'nodekey-2' }), null, 'nodeKey'],
    ];
    const results = await Promise.allSettled(attempts.map(([n, key]) => store.saveRegistration(n, key)));
    const ok = attempts.filter((_, i) => results[i]!.status === 'fulfilled').map(([n]) => n.id);
    const singleUse = ok.filter((id) => id > 40 && id <= 45);
    assert.equal(singleUse.length, 1, `one registration of five with the single-use key: ${singleUse.join(',')}`);
    assert.deepEqual(ok.filter((id) => id <= 40 || id > 45), Array.from({ length: 40 }, (_, i) => i + 1), 'every reusable-key registration, and neither taken identity');
    for (const [i, [, , what]] of attempts.entries()) {
      const r = results[i]!;
      if (r.status === 'fulfilled') continue;
      if (what === 'single-use') assert.ok(r.reason instanceof AuthKeyUsedError, `${what}: ${r.reason}`);
      else {
        assert.ok(r.reason instanceof IdentityTakenError, `${what}: ${r.reason}`);
        assert.equal((r.reason as IdentityTakenError).field, what);
      }
    }
    await store.close();
    store = await open();
    const snap = await store.load();
    assert.deepEqual(snap.nodes.map((n) => n.id).sort((a, b) => a - b), [...ok].sort((a, b) => a - b), 'the reopened store holds exactly what was acknowledged');
    assert.deepEqual(snap.authKeys.map((k) => [k.id, k.usedCount]), [[1, 1], [2, 40]]);
  } finally {
    await store.close();
  }
}
