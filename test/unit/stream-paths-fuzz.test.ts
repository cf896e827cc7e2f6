// The coordinator's parser for {type:'paths'} (coordinator/stream.ts parseClientStreamMessage):
// garbage — random text, random JSON, valid reports with one field broken or extra — is refused
// with a one-line error; it never throws, and whatever it accepts is a StreamPaths the live mesh
// (mesh-paths.ts) stores without throwing either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseClientStreamMessage } from '../../coordinator/stream.js';
import { MeshPaths } from '../../coordinator/mesh-paths.js';
import { MAX_PATH_REPORT_PEERS, NAT_KINDS, StreamPaths } from '../../proto/control/schemas.js';
import type { NodeRegistry } from '../../coordinator/registry.js';

const key = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64'));
const endpoint = fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65535 })).map(([ip, port]) => `${ip}:${port}`);
const validPeer = fc.record({
  peer: key,
  path: fc.constantFrom('direct', 'relay', 'none'),
  relay: fc.option(fc.string({ maxLength: 64 }), { nil: null }),
  endpoint: fc.option(endpoint, { nil: null }),
  latencyMs: fc.option(fc.double({ min: 0, max: 600_000, noNaN: true }), { nil: null }),
  whyNotDirect: fc.option(fc.string({ maxLength: 200 }), { nil: null }),
  tried: fc.record({ candidates: fc.nat(1000), pingsSent: fc.nat(), pongsReceived: fc.nat() }),
  idleSeconds: fc.nat(1_000_000),
});
const validReport = fc.record({
  type: fc.constant('paths'), natType: fc.option(fc.string({ maxLength: 100 }), { nil: null }), peers: fc.array(validPeer, { maxLength: 6 }),
});
/** A valid report with one thing wrong: a field replaced by junk, removed, or an extra one. */
const brokenReport = fc.tuple(validReport, fc.nat(), fc.anything(), fc.constantFrom('replace', 'delete', 'extra', 'peer-replace', 'peer-delete')).map(([r, i, junk, how]) => {
  const msg = structuredClone(r) as Record<string, unknown> & { peers: Record<string, unknown>[] };
  const top = ['type', 'natType', 'peers'];
  const inPeer = ['peer', 'path', 'relay', 'endpoint', 'latencyMs', 'whyNotDirect', 'tried', 'idleSeconds'];
  if (how === 'replace') msg[top[i % 3]!] = junk;
  else if (how === 'delete') delete msg[top[i % 3]!];
  else if (how === 'extra') msg[`x${i}`] = junk ?? 1;
  else if (msg.peers.length > 0) {
    const p = msg.peers[i % msg.peers.length]!;
    if (how === 'peer-replace') p[inPeer[i % inPeer.length]!] = junk; else delete p[inPeer[i % inPeer.length]!];
  } else msg.peers = [junk as Record<string, unknown>];
  return msg;
});

const registry = { onChange() {}, getByKey: (k: string) => (k.startsWith('A') ? { id: k.length } : undefined) } as unknown as NodeRegistry;

function check(text: string): void {
  const r = parseClientStreamMessage(text);
  if (!r.ok) {
    assert.ok(r.error.length > 0 && !r.error.includes('\n'), `one-line error: ${JSON.stringify(r.error)}`);
    return;
  }
  if (r.msg.type !== 'paths') return;
  assert.ok(StreamPaths.safeParse(r.msg).success);
  new MeshPaths(registry, () => 0).report(1, r.msg);
}

test('valid reports are accepted and stored', () => {
  fc.assert(fc.property(validReport, (r) => {
    const p = parseClientStreamMessage(JSON.stringify(r));
    assert.ok(p.ok, p.ok ? '' : p.error);
    check(JSON.stringify(r));
  }), { numRuns: 2000 });
});

test('reports with one field broken, missing or extra: refused with an error or accepted as valid, never a throw', () => {
  let refused = 0;
  fc.assert(fc.property(brokenReport, (m) => {
    const text = JSON.stringify(m) ?? 'undefined';
    if (!parseClientStreamMessage(text).ok) refused++;
    check(text);
  }), { numRuns: 5000 });
  assert.ok(refused > 3000, `only ${refused} of 5000 broken reports refused`);
});

test('random JSON and random text never throw', () => {
  fc.assert(fc.property(fc.jsonValue(), (v) => check(JSON.stringify(v))), { numRuns: 3000 });
  fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => check(s)), { numRuns: 3000 });
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => check(`{"type":"paths","natType":null,"peers":[${s}]}`)), { numRuns: 3000 });
});

test('the bounds hold: too many peers, a reason or NAT type too long, a bad key or endpoint are refused', () => {
  const p = { peer: Buffer.alloc(32, 1).toString('base64'), path: 'relay', relay: 'lab', endpoint: null, latencyMs: 1, whyNotDirect: 'x', tried: { candidates: 0, pingsSent: 0, pongsReceived: 0 }, idleSeconds: 0 };
  const refused = (m: unknown): boolean => !parseClientStreamMessage(JSON.stringify(m)).ok;
  assert.equal(refused({ type: 'paths', natType: null, peers: [p] }), false);
  assert.ok(refused({ type: 'paths', natType: null, peers: Array.from({ length: MAX_PATH_REPORT_PEERS + 1 }, () => p) }));
  assert.ok(refused({ type: 'paths', natType: 'x'.repeat(101), peers: [] }));
  assert.ok(refused({ type: 'paths', natType: null, peers: [{ ...p, whyNotDirect: 'x'.repeat(201) }] }));
  assert.ok(refused({ type: 'paths', natType: null, peers: [{ ...p, peer: 'not-a-key' }] }));
  assert.ok(refused({ type: 'paths', natType: null, peers: [{ ...p, endpoint: 'example.com:80' }] }));
  assert.ok(refused({ type: 'paths', natType: null, peers: [{ ...p, latencyMs: -1 }] }));
  assert.ok(refused({ type: 'paths', natType: null, peers: [{ ...p, path: 'teleport' }] }));
});

test('endpoints with a NAT kind: each kind, null or absent accepted; anything else refused with one line, never a throw', () => {
  const base = { type: 'endpoints', endpoints: ['198.51.100.7:41641'], homeRelay: 'lab' };
  for (const natKind of [...NAT_KINDS, null, undefined]) {
    const r = parseClientStreamMessage(JSON.stringify({ ...base, natKind }));
    assert.ok(r.ok && r.msg.type === 'endpoints' && r.msg.natKind === natKind, `${String(natKind)}: ${r.ok ? '' : r.error}`);
  }
  for (const natKind of ['symmetric ', 'Symmetric', 'x'.repeat(10_000), 7, true, ['none'], { kind: 'none' }]) {
    const r = parseClientStreamMessage(JSON.stringify({ ...base, natKind }));
    assert.ok(!r.ok && r.error.length > 0 && !r.error.includes('\n'), JSON.stringify(natKind).slice(0, 40));
  }
  fc.assert(fc.property(fc.oneof(fc.constantFrom<unknown>(...NAT_KINDS, null), fc.jsonValue()), (natKind) => {
    const r = parseClientStreamMessage(JSON.stringify({ ...base, natKind }));
    if (!r.ok) { assert.ok(!r.error.includes('\n')); return; }
    assert.equal(r.msg.type, 'endpoints');
    const k = r.msg.type === 'endpoints' ? r.msg.natKind : undefined;
    assert.ok(k === undefined || k === null || (NAT_KINDS as readonly string[]).includes(k), String(k));
  }), { numRuns: 3000 });
});
