// Disco messages: ping/pong/call-me-maybe round-trip through the box; a packet opens only with the
// right key pair; the magic prefix never matches WireGuard or STUN; 100k hostile payloads and
// 100k hostile packets make the decoders throw nothing but DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { DecodeError } from '../../proto/errors.js';
import {
  BIRTHDAY_NATS, BIRTHDAY_PHASES, DISCO_TYPE, FEATURE_RELAY_TRAINS, MAX_FEATURES_EXTRA, decodeDiscoPayload, DiscoClock, MAX_BIRTHDAY_SOCKETS, discoSender, encodeDiscoPayload, isDiscoPacket, MAX_CALL_ENDPOINTS, openDisco, sealDisco,
  type DiscoMessage,
} from '../../proto/disco/messages.js';
import { messageType } from '../../proto/wireguard/messages.js';
import { discoSharedKey } from '../../agent/magicsock/disco-key.js';
import { isStunMessage } from '../../proto/stun/message.js';
import { encodeBindingRequest } from '../../proto/stun/binding.js';

const RUNS = 100_000;
const a = nacl.box.keyPair();
const b = nacl.box.keyPair();
const ab = discoSharedKey(b.publicKey, a.secretKey).key;
const ba = discoSharedKey(a.publicKey, b.secretKey).key;
const v4 = (x: number[], port: number) => ({ address: Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...x]), port });

function codeOf(f: () => unknown): string {
  try { f(); } catch (err) { if (err instanceof DecodeError) return err.code; throw err; }
  return 'ok';
}

test('ping, pong and call-me-maybe round-trip sealed by A and opened by B', () => {
  const msgs: DiscoMessage[] = [
    { type: 'ping', txid: new Uint8Array(12).fill(7), nodeKey: new Uint8Array(32).fill(9) },
    { type: 'pong', txid: new Uint8Array(12).fill(1), src: v4([203, 0, 113, 5], 41641) },
    { type: 'call-me-maybe', endpoints: [v4([198, 51, 100, 1], 1), v4([192, 0, 2, 9], 65535)] },
    { type: 'call-me-maybe', endpoints: [] },
  ];
  for (const m of msgs) {
    const sentAt = 1_765_000_000_000_000 + m.type.length;
    const packet = sealDisco(encodeDiscoPayload(m, sentAt), a.publicKey, ab);
    assert.ok(isDiscoPacket(packet));
    assert.deepEqual(discoSender(packet), a.publicKey);
    assert.deepEqual(openDisco(packet, ba), { sentAt, msg: m });
  }
});

test('a packet opens only with the key shared by its two ends', () => {
  const c = nacl.box.keyPair();
  const packet = sealDisco(encodeDiscoPayload({ type: 'call-me-maybe', endpoints: [] }, 1), a.publicKey, ab);
  assert.equal(codeOf(() => openDisco(packet, discoSharedKey(a.publicKey, c.secretKey).key)), 'bad-box');
  const flipped = Uint8Array.from(packet);
  flipped[flipped.length - 1]! ^= 1;
  assert.equal(codeOf(() => openDisco(flipped, ba)), 'bad-box');
});

test('call-me-maybe carries at most MAX_CALL_ENDPOINTS endpoints', () => {
  const many = Array.from({ length: 40 }, (_, i) => v4([198, 51, 100, i], 1000 + i));
  const m = decodeDiscoPayload(encodeDiscoPayload({ type: 'call-me-maybe', endpoints: many }, 1)).msg;
  assert.equal(m.type, 'call-me-maybe');
  assert.equal((m as { endpoints: unknown[] }).endpoints.length, MAX_CALL_ENDPOINTS);
});

test('disco, WireGuard and STUN are told apart on the one socket', () => {
  const disco = sealDisco(encodeDiscoPayload({ type: 'call-me-maybe', endpoints: [] }, 1), a.publicKey, ab);
  assert.equal(messageType(disco), 0);
  assert.equal(isStunMessage(disco), false);
  const stun = encodeBindingRequest().bytes;
  assert.equal(isDiscoPacket(stun), false);
  for (let t = 1; t <= 4; t++) {
    const wg = new Uint8Array(148);
    wg[0] = t;
    assert.equal(isDiscoPacket(wg), false);
  }
});

test('100k random payloads: decodeDiscoPayload throws only DecodeError', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 700 }), fc.integer({ min: 0, max: 5 }), (bytes, type) => {
    const p = Uint8Array.from(bytes);
    if (p.length > 0 && type > 0) p[0] = type;
    if (p.length > 1 && type > 0) p[1] = 1;
    codeOf(() => decodeDiscoPayload(p));
  }), { numRuns: RUNS });
});

test('100k hostile packets with the magic prefix: openDisco throws only DecodeError', () => {
  const valid = sealDisco(encodeDiscoPayload({ type: 'ping', txid: new Uint8Array(12), nodeKey: new Uint8Array(32) }, 7), a.publicKey, ab);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 800 }), fc.nat(valid.length), fc.boolean(), (junk, cut, keepMagic) => {
    const packet = keepMagic ? Uint8Array.from([...valid.subarray(0, cut), ...junk]) : Uint8Array.from(junk);
    const same = packet.length === valid.length && packet.every((x, i) => x === valid[i]);
    assert.equal(codeOf(() => openDisco(packet, ba)) === 'ok', same, 'only the untouched packet opens');
  }), { numRuns: RUNS });
});

test('birthday: every valid message round-trips sealed; hostile birthday payloads throw only DecodeError', () => {
  const msg = fc.record({
    type: fc.constant('birthday' as const),
    nat: fc.constantFrom(...BIRTHDAY_NATS),
    phase: fc.constantFrom(...BIRTHDAY_PHASES),
    sockets: fc.integer({ min: 0, max: MAX_BIRTHDAY_SOCKETS }),
    round: fc.integer({ min: 0, max: 0xffffffff }),
    public: fc.record({ address: fc.uint8Array({ minLength: 16, maxLength: 16 }), port: fc.integer({ min: 0, max: 65535 }) }),
  });
  fc.assert(fc.property(msg, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (m, sentAt) => {
    assert.deepEqual(openDisco(sealDisco(encodeDiscoPayload(m, sentAt), a.publicKey, ab), ba), { sentAt, msg: { ...m, public: { ...m.public } } });
  }), { numRuns: 20_000 });
  // Payloads shaped like a birthday (type 4, version 1) with random bodies and lengths around the real one.
  const codes = new Set<string>();
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ minLength: 26, maxLength: 26, min: 0, max: 3 })), (body) => {
    const p = Uint8Array.from([4, 1, 0, 0, 0, 0, 0, 0, 0, 1, ...body]);
    const code = codeOf(() => decodeDiscoPayload(p));
    codes.add(code);
    if (code === 'ok') {
      const m = decodeDiscoPayload(p);
      assert.deepEqual(encodeDiscoPayload(m.msg, m.sentAt), p, 'what decodes re-encodes to the same bytes');
    }
  }), { numRuns: RUNS });
  assert.ok(codes.has('ok') && codes.has('bad-length') && codes.has('bad-value'), [...codes].join());
  assert.throws(() => encodeDiscoPayload({ type: 'birthday', nat: 'hard', phase: 'go', sockets: MAX_BIRTHDAY_SOCKETS + 1, round: 1, public: v4([203, 0, 113, 1], 1) }, 1), RangeError);
});

test('features: flags round-trip; later fields appended are ignored, within a bound; a short body is refused', () => {
  for (const flags of [0, FEATURE_RELAY_TRAINS, 0xffffffff]) {
    const packet = sealDisco(encodeDiscoPayload({ type: 'features', flags }, 5), a.publicKey, ab);
    assert.deepEqual(openDisco(packet, ba), { sentAt: 5, msg: { type: 'features', flags } });
  }
  const payload = (body: number): Uint8Array => {
    const p = new Uint8Array(10 + body);
    p[0] = DISCO_TYPE.FEATURES;
    p[1] = 1;
    p[13] = FEATURE_RELAY_TRAINS;
    return p;
  };
  assert.deepEqual(decodeDiscoPayload(payload(4 + MAX_FEATURES_EXTRA)).msg, { type: 'features', flags: FEATURE_RELAY_TRAINS });
  assert.equal(codeOf(() => decodeDiscoPayload(payload(4 + MAX_FEATURES_EXTRA + 1))), 'bad-length');
  assert.equal(codeOf(() => decodeDiscoPayload(payload(3))), 'bad-length');
  assert.throws(() => encodeDiscoPayload({ type: 'features', flags: -1 }, 1), RangeError);
});

test('version 0 payloads (no sent-at) are refused; sent-at round-trips up to 2^53 - 1 and not beyond', () => {
  const v1 = encodeDiscoPayload({ type: 'call-me-maybe', endpoints: [] }, Number.MAX_SAFE_INTEGER);
  assert.equal(decodeDiscoPayload(v1).sentAt, Number.MAX_SAFE_INTEGER);
  const v0 = Uint8Array.from([3, 0]);
  assert.equal(codeOf(() => decodeDiscoPayload(v0)), 'bad-type');
  const huge = Uint8Array.from(v1);
  huge[2] = 0xff;
  assert.equal(codeOf(() => decodeDiscoPayload(huge)), 'bad-value');
  assert.throws(() => encodeDiscoPayload({ type: 'call-me-maybe', endpoints: [] }, -1), RangeError);
});

test('DiscoClock: microseconds, strictly increasing even when the wall clock stands still or steps back', () => {
  let t = 1_000;
  const clock = new DiscoClock(() => t);
  const a1 = clock.next();
  assert.equal(a1, 1_000_000);
  assert.equal(clock.next(), 1_000_001);
  t = 999;
  assert.equal(clock.next(), 1_000_002);
  t = 2_000;
  assert.equal(clock.next(), 2_000_000);
});
