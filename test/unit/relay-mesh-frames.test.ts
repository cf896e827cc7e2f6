// Relay mesh frames and table: every mesh frame round-trips, forward→recv rewriting in place gives
// exactly the client protocol's recv frame, a forward-run built packet by packet (as a mesh link
// does) carries exactly the client protocol's recv frames, mesh proofs verify only under the same credential and
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
  decodeMeshFrame, encodeForward, encodeMeshFrame, forwardRunPackets, MAX_PRESENCE_ENTRIES, MAX_RUN_PACKET, MESH_FRAME, meshForwardToRecvInPlace,
  RUN_HEADER_LEN, type MeshFrame,
} from '../../proto/relay/mesh-frames.js';
import { ForwardRuns } from '../../relay/forward-runs.js';
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

test('forward-run: round-trips, and a run built packet by packet holds the recv frames the client would get', () => {
  const run: MeshFrame = { type: 'forward-run', priority: false, dst: key(), packets: [{ src: key(), data: new Uint8Array(randomBytes(100)) }, { src: key(), data: new Uint8Array(0) }] };
  assert.deepEqual(roundTrip(run), run);
  assert.throws(() => encodeMeshFrame({ type: 'forward-run', priority: false, dst: key(), packets: [] }), RangeError);
  fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3000 }), fc.boolean()), { minLength: 1, maxLength: 80 }), (ops) => {
    const dsts = [key(), key(), key()];
    const src = key();
    const runs: Array<{ run: Uint8Array; packets: number; priority: boolean }> = [];
    const builder = new ForwardRuns((r, packets, priority) => runs.push({ run: Uint8Array.from(r), packets, priority }));
    const sent: Array<{ dst: number; data: Uint8Array; priority: boolean }> = [];
    for (const [d, size, priority] of ops) {
      const data = new Uint8Array(randomBytes(size));
      builder.add(src, dsts[d]!, data, priority);
      sent.push({ dst: d, data, priority });
    }
    builder.close();
    // Every run decodes, packets arrive in order, each for the run's destination, and its recv frames are the client protocol's.
    const got: Array<{ dst: number; data: Uint8Array; priority: boolean }> = [];
    for (const r of runs) {
      const payload = r.run.subarray(FRAME_HEADER_LEN);
      assert.equal(forwardRunPackets(payload), r.packets);
      const f = decodeMeshFrame(r.run[0]!, payload);
      assert.ok(f.type === 'forward-run');
      assert.ok(!r.priority || r.packets === 1, 'a priority packet travels alone');
      let at = RUN_HEADER_LEN;
      for (const p of f.packets) {
        const recv = payload.subarray(at, at + FRAME_HEADER_LEN + 32 + p.data.length);
        assert.deepEqual(Buffer.from(recv), Buffer.from(encodeRelayFrame({ type: 'recv', src, data: p.data })));
        at += recv.length;
        got.push({ dst: dsts.findIndex((k) => Buffer.from(k).equals(Buffer.from(f.dst))), data: p.data, priority: f.priority });
      }
    }
    assert.deepEqual(got.map((g) => [g.dst, Buffer.from(g.data).toString('hex'), g.priority]), sent.map((g) => [g.dst, Buffer.from(g.data).toString('hex'), g.priority]));
  }), { numRuns: 300 });
  const big = new ForwardRuns(() => undefined);
  assert.throws(() => big.add(key(), key(), new Uint8Array(MAX_RUN_PACKET + 1), false), RangeError);
  big.add(key(), key(), new Uint8Array(MAX_RUN_PACKET), false);
});

test('forward-run: the fast check agrees with the decoder on hostile payloads', () => {
  const valid = encodeMeshFrame({ type: 'forward-run', priority: false, dst: key(), packets: [{ src: key(), data: new Uint8Array(5) }, { src: key(), data: new Uint8Array(7) }] }).subarray(FRAME_HEADER_LEN);
  fc.assert(fc.property(fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.tuple(fc.integer({ min: 0, max: valid.length - 1 }), fc.integer({ min: 0, max: 255 })).map(([i, v]) => { const b = Uint8Array.from(valid); b[i] = v; return b; }),
    fc.integer({ min: 0, max: valid.length }).map((n) => valid.subarray(0, n)),
  ), (payload) => {
    let decoded = true;
    try {
      decodeMeshFrame(MESH_FRAME.FORWARD_RUN, payload);
    } catch (err) {
      assert.ok(err instanceof DecodeError);
      decoded = false;
    }
    assert.equal(forwardRunPackets(payload) >= 1, decoded);
  }), { numRuns: 20_000 });
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
  const types = [MESH_FRAME.HELLO, MESH_FRAME.WELCOME, MESH_FRAME.PRESENCE, MESH_FRAME.FORWARD, MESH_FRAME.FORWARD_RUN, 0x00, 0x26, 0xff];
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
