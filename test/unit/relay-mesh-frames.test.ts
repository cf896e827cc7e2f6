// Relay mesh frames and table: every mesh frame round-trips, forward→recv rewriting in place gives
// exactly the client protocol's recv frame, mesh proofs verify only under the same credential and
// role, hostile payloads make the decoder throw nothing but DecodeError, and the presence table
// never holds more than its bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import { decodeRelayFrame, encodeRelayFrame, FRAME_HEADER_LEN } from '../../proto/relay/frames.js';
import { checkMeshProof, makeMeshProof, meshKeyFromCredential, type MeshHandshake } from '../../proto/relay/mesh-auth.js';
import {
  decodeMeshFrame, encodeForward, encodeMeshFrame, MAX_PRESENCE_ENTRIES, MESH_FRAME, meshForwardToRecvInPlace, type MeshFrame,
} from '../../proto/relay/mesh-frames.js';
import { PresenceTable } from '../../relay/mesh-presence.js';

const key = (): Uint8Array => new Uint8Array(randomBytes(32));
const roundTrip = (f: MeshFrame): MeshFrame => {
  const b = encodeMeshFrame(f);
  return decodeMeshFrame(b[0]!, b.subarray(FRAME_HEADER_LEN));
};

test('mesh frames round-trip', () => {
  const hello: MeshFrame = { type: 'mesh-hello', version: 1, relayKey: key(), nonce: key(), keyProof: key().subarray(0, 16), meshProof: key().subarray(0, 16) };
  assert.deepEqual(roundTrip(hello), hello);
  const welcome: MeshFrame = { type: 'mesh-welcome', keyProof: key().subarray(0, 16), meshProof: key().subarray(0, 16) };
  assert.deepEqual(roundTrip(welcome), welcome);
  const presence: MeshFrame = { type: 'presence', entries: [{ connected: true, nodeKey: key() }, { connected: false, nodeKey: key() }] };
  assert.deepEqual(roundTrip(presence), presence);
  const fwd: MeshFrame = { type: 'forward', priority: true, dst: key(), src: key(), data: new Uint8Array(randomBytes(100)) };
  assert.deepEqual(roundTrip(fwd), fwd);
  assert.throws(() => encodeMeshFrame({ type: 'presence', entries: Array.from({ length: MAX_PRESENCE_ENTRIES + 1 }, () => ({ connected: true, nodeKey: key() })) }), RangeError);
});

test('forward → recv in place equals the client protocol recv frame', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), fc.boolean(), (data, priority) => {
    const src = key();
    const dst = key();
    const recv = meshForwardToRecvInPlace(encodeForward(dst, src, data, priority));
    assert.deepEqual(Buffer.from(recv), Buffer.from(encodeRelayFrame({ type: 'recv', src, data })));
    const d = decodeRelayFrame(recv[0]!, recv.subarray(FRAME_HEADER_LEN));
    assert.equal(d.type, 'recv');
  }), { numRuns: 2000 });
});

test('mesh proofs: only the same credential and role verify', () => {
  const h: MeshHandshake = { dialerKey: key(), dialledKey: key(), challenge: key(), nonce: key() };
  const m = meshKeyFromCredential(new TextEncoder().encode('a'.repeat(40)));
  const other = meshKeyFromCredential(new TextEncoder().encode('b'.repeat(40)));
  const p = makeMeshProof(m, h, 'dialer');
  assert.ok(checkMeshProof(m, h, 'dialer', p));
  assert.ok(!checkMeshProof(other, h, 'dialer', p), 'another credential');
  assert.ok(!checkMeshProof(m, h, 'dialled', p), 'reflected as the other role');
  assert.ok(!checkMeshProof(m, { ...h, nonce: key() }, 'dialer', p), 'another nonce');
  assert.ok(!checkMeshProof(m, h, 'dialer', p.subarray(0, 15)), 'short proof');
});

test('fuzz: the mesh decoder throws only DecodeError, and what it accepts re-encodes to the same bytes', () => {
  const types = [MESH_FRAME.HELLO, MESH_FRAME.WELCOME, MESH_FRAME.PRESENCE, MESH_FRAME.FORWARD, 0x00, 0x25, 0xff];
  fc.assert(fc.property(fc.constantFrom(...types), fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ minLength: 2, maxLength: 2 + 33 * 4 })), (type, payload) => {
    let f: MeshFrame;
    try {
      f = decodeMeshFrame(type, payload);
    } catch (err) {
      assert.ok(err instanceof DecodeError, `not a DecodeError: ${String(err)}`);
      return;
    }
    const again = encodeMeshFrame(f);
    assert.deepEqual(Buffer.from(again.subarray(FRAME_HEADER_LEN)), Buffer.from(payload));
  }), { numRuns: 50_000 });
  // Presence payloads shaped right but for their count and state bytes.
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), fc.array(fc.uint8Array({ minLength: 33, maxLength: 33 }), { maxLength: 8 }), (count, entries) => {
    const payload = new Uint8Array(2 + entries.length * 33);
    payload[0] = count >>> 8;
    payload[1] = count & 0xff;
    entries.forEach((e, i) => payload.set(e, 2 + i * 33));
    try {
      const f = decodeMeshFrame(MESH_FRAME.PRESENCE, payload);
      assert.equal(f.type === 'presence' && f.entries.length, count);
    } catch (err) {
      assert.ok(err instanceof DecodeError);
    }
  }), { numRuns: 20_000 });
});

test('presence table: bounded, per-peer withdrawal and drop', () => {
  const t = new PresenceTable<string>(3);
  assert.ok(t.announce('k1', 'A'));
  assert.ok(t.announce('k2', 'A'));
  assert.ok(t.announce('k3', 'B'));
  assert.equal(t.announce('k4', 'B'), false, 'full: refused');
  assert.equal(t.size, 3);
  assert.ok(t.announce('k1', 'B'), 'a key moving to another peer takes no new room');
  assert.equal(t.lookup('k1'), 'B');
  t.withdraw('k1', 'A');
  assert.equal(t.lookup('k1'), 'B', 'a stale withdrawal by the old peer is ignored');
  assert.equal(t.dropPeer('A'), 1);
  assert.equal(t.lookup('k2'), undefined);
  assert.equal(t.size, 2);
  assert.ok(t.announce('k4', 'B'));
  assert.throws(() => new PresenceTable(0), RangeError);
  // Random announce/withdraw/drop sequences never exceed the bound, and lookups agree with a model.
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('a', 'w', 'd'), fc.integer({ min: 0, max: 20 }), fc.constantFrom('P', 'Q', 'R')), { maxLength: 300 }), (ops) => {
    const table = new PresenceTable<string>(8);
    const model = new Map<string, string>();
    for (const [op, k, peer] of ops) {
      const id = `k${k}`;
      if (op === 'a') {
        const ok = table.announce(id, peer);
        if (ok) model.set(id, peer);
        else assert.ok(model.size >= 8 && !model.has(id));
      } else if (op === 'w') {
        table.withdraw(id, peer);
        if (model.get(id) === peer) model.delete(id);
      } else {
        table.dropPeer(peer);
        for (const [kk, p] of model) if (p === peer) model.delete(kk);
      }
      assert.ok(table.size <= 8);
      assert.equal(table.size, model.size);
    }
    for (const [id, p] of model) assert.equal(table.lookup(id), p);
  }), { numRuns: 500 });
});
