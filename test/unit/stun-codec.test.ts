// STUN codec: the RFC 5769 test vectors decode (FINGERPRINT verified) and our encoder writes their
// XOR-MAPPED-ADDRESS bytes exactly; RFC 5780 attributes round-trip; isStunMessage demultiplexes;
// 100k hostile inputs never make the decoder throw anything but DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import { ATTR } from '../../proto/stun/attributes.js';
import { encodeBindingError, encodeBindingRequest, encodeBindingSuccess } from '../../proto/stun/binding.js';
import { crc32 } from '../../proto/stun/crc32.js';
import {
  decodeStunMessage, encodeStunMessage, isStunMessage, messageType, METHOD_BINDING, newTransactionId,
  type StunMessage,
} from '../../proto/stun/message.js';

const RUNS = 100_000;
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

// RFC 5769 §2.1: Sample Request (software "STUN test client", ICE attributes, MESSAGE-INTEGRITY, FINGERPRINT).
const SAMPLE_REQUEST = hex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);
// RFC 5769 §2.2: Sample IPv4 Response, mapped address 192.0.2.1 port 32853.
const SAMPLE_IPV4_RESPONSE = hex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);
// RFC 5769 §2.3: Sample IPv6 Response, mapped address 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
const SAMPLE_IPV6_RESPONSE = hex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);
const TXID = hex('b7e7a701bc34d686fa87dfae');

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof DecodeError) return err.code;
    throw err;
  }
  return 'ok';
}

test('CRC-32 is the ISO-HDLC one (check value of "123456789")', () => {
  assert.equal(crc32(new TextEncoder().encode('123456789')), 0xcbf43926);
});

test('message types interleave the class bits as RFC 8489 §5 says', () => {
  assert.equal(messageType(METHOD_BINDING, 'request'), 0x0001);
  assert.equal(messageType(METHOD_BINDING, 'indication'), 0x0011);
  assert.equal(messageType(METHOD_BINDING, 'success'), 0x0101);
  assert.equal(messageType(METHOD_BINDING, 'error'), 0x0111);
  assert.equal(messageType(0xfff, 'request'), 0x3eef);
});

test('RFC 5769 sample request decodes, FINGERPRINT verified, ICE/auth attributes reported as not understood', () => {
  const m = decodeStunMessage(SAMPLE_REQUEST);
  assert.equal(m.class, 'request');
  assert.equal(m.method, METHOD_BINDING);
  assert.deepEqual(m.transactionId, TXID);
  assert.equal(m.software, 'STUN test client');
  assert.equal(m.fingerprint, true);
  // PRIORITY (0x0024), USERNAME and MESSAGE-INTEGRITY are comprehension-required and not ours:
  // a server answers 420 listing them. ICE-CONTROLLED (0x8029) is optional and silently skipped.
  assert.deepEqual(m.unknownRequired, [0x0024, ATTR.USERNAME, ATTR.MESSAGE_INTEGRITY]);
});

test('RFC 5769 sample IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853', () => {
  const m = decodeStunMessage(SAMPLE_IPV4_RESPONSE);
  assert.equal(m.class, 'success');
  assert.deepEqual(m.xorMappedAddress, { family: 4, address: '192.0.2.1', port: 32853 });
  assert.equal(m.software, 'test vector');
  assert.equal(m.fingerprint, true);
});

test('RFC 5769 sample IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853', () => {
  const m = decodeStunMessage(SAMPLE_IPV6_RESPONSE);
  assert.equal(m.class, 'success');
  assert.deepEqual(m.xorMappedAddress, { family: 6, address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 });
  assert.equal(m.fingerprint, true);
});

test('our encoder writes the vectors\' header and XOR-MAPPED-ADDRESS bytes exactly', () => {
  for (const [vector, address, attrAt, attrLen] of [
    [SAMPLE_IPV4_RESPONSE, '192.0.2.1', 36, 12],
    [SAMPLE_IPV6_RESPONSE, '2001:db8:1234:5678:11:2233:4455:6677', 36, 24],
  ] as const) {
    const ours = encodeStunMessage({ method: METHOD_BINDING, class: 'success', transactionId: TXID, xorMappedAddress: { address, port: 32853 } }, { fingerprint: false });
    assert.deepEqual(ours.subarray(20), vector.subarray(attrAt, attrAt + attrLen));
    assert.deepEqual(ours.subarray(0, 2), vector.subarray(0, 2));
    assert.deepEqual(ours.subarray(4, 20), vector.subarray(4, 20));
  }
});

test('a FINGERPRINT that does not match, or an attribute after it, is refused', () => {
  for (let i = 20; i < SAMPLE_IPV4_RESPONSE.length - 4; i += 7) {
    const bad = Uint8Array.from(SAMPLE_IPV4_RESPONSE);
    bad[i]! ^= 0x01;
    // A flipped bit either breaks an attribute or the CRC; never silently accepted.
    assert.notEqual(codeOf(() => decodeStunMessage(bad)), 'ok', `bit flip at ${i}`);
  }
  const flipCrc = Uint8Array.from(SAMPLE_IPV6_RESPONSE);
  flipCrc[flipCrc.length - 1]! ^= 0xff;
  assert.equal(codeOf(() => decodeStunMessage(flipCrc)), 'bad-fingerprint');
  // A correct FINGERPRINT followed by another attribute: FINGERPRINT must be last.
  const body = encodeStunMessage({ method: METHOD_BINDING, class: 'request', transactionId: TXID }, { fingerprint: false });
  const after = new Uint8Array(body.length + 16);
  after.set(body);
  after[3] = 16; // length counts FINGERPRINT and the SOFTWARE after it
  const crc = (crc32(after, 0, body.length) ^ 0x5354554e) >>> 0;
  after.set([0x80, 0x28, 0x00, 0x04, crc >>> 24, (crc >>> 16) & 0xff, (crc >>> 8) & 0xff, crc & 0xff], body.length);
  after.set([0x80, 0x22, 0x00, 0x04, 0x61, 0x62, 0x63, 0x64], body.length + 8);
  assert.equal(codeOf(() => decodeStunMessage(after)), 'bad-value');
});

test('binding request with RFC 5780 CHANGE-REQUEST and RESPONSE-PORT round-trips', () => {
  const { transactionId, bytes } = encodeBindingRequest({ changeIp: true, changePort: true, responsePort: 40000, software: 'pinhole' });
  assert.equal(transactionId.length, 12);
  const m = decodeStunMessage(bytes);
  assert.equal(m.class, 'request');
  assert.deepEqual(m.transactionId, transactionId);
  assert.deepEqual(m.changeRequest, { changeIp: true, changePort: true });
  assert.equal(m.responsePort, 40000);
  assert.equal(m.software, 'pinhole');
  assert.equal(m.fingerprint, true);
  assert.deepEqual(m.unknownRequired, []);
  const portOnly = decodeStunMessage(encodeBindingRequest({ changePort: true }).bytes);
  assert.deepEqual(portOnly.changeRequest, { changeIp: false, changePort: true });
  assert.equal(decodeStunMessage(encodeBindingRequest().bytes).changeRequest, undefined);
});

test('binding success with OTHER-ADDRESS, RESPONSE-ORIGIN and MAPPED-ADDRESS round-trips (IPv4 and IPv6)', () => {
  const transactionId = newTransactionId();
  const m = decodeStunMessage(encodeBindingSuccess({
    transactionId,
    mapped: { address: '198.51.100.7', port: 61000 },
    plainMapped: true,
    responseOrigin: { address: '203.0.113.10', port: 3478 },
    otherAddress: { address: '192.0.2.10', port: 3479 },
    software: 'pinhole relay',
  }));
  assert.equal(m.class, 'success');
  assert.deepEqual(m.xorMappedAddress, { family: 4, address: '198.51.100.7', port: 61000 });
  assert.deepEqual(m.mappedAddress, { family: 4, address: '198.51.100.7', port: 61000 });
  assert.deepEqual(m.responseOrigin, { family: 4, address: '203.0.113.10', port: 3478 });
  assert.deepEqual(m.otherAddress, { family: 4, address: '192.0.2.10', port: 3479 });
  const v6 = decodeStunMessage(encodeBindingSuccess({ transactionId, mapped: { address: 'fd00:1::5', port: 1 } }));
  assert.deepEqual(v6.xorMappedAddress, { family: 6, address: 'fd00:1::5', port: 1 });
});

test('binding error 420 with UNKNOWN-ATTRIBUTES round-trips', () => {
  const transactionId = newTransactionId();
  const m = decodeStunMessage(encodeBindingError({ transactionId, code: 420, reason: 'Unknown Attribute', unknownAttributes: [0x0024, 0x0003] }));
  assert.equal(m.class, 'error');
  assert.deepEqual(m.errorCode, { code: 420, reason: 'Unknown Attribute' });
  assert.deepEqual(m.unknownAttributes, [0x0024, 0x0003]);
});

test('PADDING is understood and skipped; attribute values are padded to 4 bytes', () => {
  const msg: StunMessage = { method: METHOD_BINDING, class: 'request', transactionId: newTransactionId(), padding: 5, software: 'abc' };
  const b = encodeStunMessage(msg);
  assert.equal(b.length % 4, 0);
  const m = decodeStunMessage(b);
  assert.equal(m.padding, 5);
  assert.equal(m.software, 'abc');
  assert.deepEqual(m.unknownRequired, []);
});

test('isStunMessage: cookie, top bits and length decide; offsets work; WireGuard packets are not STUN', () => {
  assert.ok(isStunMessage(SAMPLE_REQUEST));
  const framed = new Uint8Array(SAMPLE_IPV4_RESPONSE.length + 10);
  framed.set(SAMPLE_IPV4_RESPONSE, 3);
  assert.ok(isStunMessage(framed, 3, SAMPLE_IPV4_RESPONSE.length));
  assert.ok(!isStunMessage(framed, 3, SAMPLE_IPV4_RESPONSE.length + 4), 'length field must match');
  // A WireGuard transport message whose receiver index equals the cookie: its header length field is 0.
  const wg = new Uint8Array(64);
  wg.set([4, 0, 0, 0, 0x21, 0x12, 0xa4, 0x42]);
  assert.ok(!isStunMessage(wg));
  const topBits = Uint8Array.from(SAMPLE_REQUEST);
  topBits[0] = 0x40;
  assert.ok(!isStunMessage(topBits));
  const noCookie = Uint8Array.from(SAMPLE_REQUEST);
  noCookie[5] = 0;
  assert.ok(!isStunMessage(noCookie));
  assert.ok(!isStunMessage(SAMPLE_REQUEST.subarray(0, 19)));
  assert.ok(!isStunMessage(SAMPLE_REQUEST, 100, 20), 'a window past the end is not a message');
});

test('short, oversized and garbled messages have distinct error codes', () => {
  assert.equal(codeOf(() => decodeStunMessage(SAMPLE_REQUEST.subarray(0, 19))), 'short');
  assert.equal(codeOf(() => decodeStunMessage(new Uint8Array(4096))), 'oversized');
  const notStun = Uint8Array.from(SAMPLE_REQUEST);
  notStun[4] = 0;
  assert.equal(codeOf(() => decodeStunMessage(notStun)), 'bad-type');
  assert.equal(codeOf(() => decodeStunMessage(SAMPLE_REQUEST.subarray(0, 104))), 'bad-length');
  const badFamily = Uint8Array.from(SAMPLE_IPV4_RESPONSE.subarray(0, 48));
  badFamily[3] = 28;
  badFamily[41] = 3;
  assert.equal(codeOf(() => decodeStunMessage(badFamily)), 'bad-value');
});

/** Inputs that get past the first checks: a real header, then attribute-shaped junk. */
const stunish = fc.tuple(
  fc.integer({ min: 0, max: 0x3fff }),
  fc.uint8Array({ minLength: 12, maxLength: 12 }),
  fc.array(fc.tuple(
    fc.constantFrom(0x0001, 0x0003, 0x0009, 0x000a, 0x0020, 0x0026, 0x0027, 0x8022, 0x802b, 0x802c, 0x8028, 0x0024),
    fc.uint8Array({ maxLength: 40 }),
    fc.integer({ min: -3, max: 3 }),
  ), { maxLength: 6 }),
  fc.boolean(),
).map(([type, txid, attrs, honestLength]) => {
  const parts: number[] = [];
  for (const [t, v, skew] of attrs) {
    const len = Math.max(0, Math.min(0xffff, v.length + skew));
    parts.push(t >> 8, t & 0xff, len >> 8, len & 0xff, ...v);
    while (parts.length % 4) parts.push(0);
  }
  const b = new Uint8Array(20 + parts.length);
  b[0] = type >> 8; b[1] = type & 0xff;
  const len = honestLength ? parts.length : (parts.length + 4) & 0xffff;
  b[2] = len >> 8; b[3] = len & 0xff;
  b.set([0x21, 0x12, 0xa4, 0x42], 4);
  b.set(txid, 8);
  b.set(parts, 20);
  return b;
});

/** Real messages with a few bytes changed. */
const mutated = fc.tuple(
  fc.constantFrom(SAMPLE_REQUEST, SAMPLE_IPV4_RESPONSE, SAMPLE_IPV6_RESPONSE),
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
  fc.nat({ max: 120 }),
).map(([base, edits, cut]) => {
  const b = Uint8Array.from(base.subarray(0, Math.max(0, base.length - (cut % 8 === 0 ? cut % base.length : 0))));
  for (const [at, v] of edits) if (b.length) b[at % b.length] = v;
  return b;
});

test(`STUN decoder throws only DecodeError on ${RUNS} random inputs`, () => {
  const input = fc.oneof(fc.uint8Array({ maxLength: 200 }), stunish, mutated, fc.uint8Array({ minLength: 2040, maxLength: 2100 }));
  let accepted = 0;
  fc.assert(fc.property(input, (b) => {
    try {
      decodeStunMessage(b);
      accepted++;
    } catch (err) {
      return err instanceof DecodeError;
    }
    // isStunMessage never throws either and agrees with a successful decode.
    return isStunMessage(b);
  }), { numRuns: RUNS });
  assert.ok(accepted > 1000, `the generator should also produce valid messages (got ${accepted})`);
});

test('random valid messages round-trip through encode and decode', () => {
  const endpoint = fc.oneof(
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 65535 })),
    fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 65535 })),
  ).map(([address, port]) => ({ address, port }));
  fc.assert(fc.property(
    fc.record({
      cls: fc.constantFrom('request', 'indication', 'success', 'error') as fc.Arbitrary<StunMessage['class']>,
      method: fc.integer({ min: 0, max: 0xfff }),
      txid: fc.uint8Array({ minLength: 12, maxLength: 12 }),
      xor: fc.option(endpoint, { nil: undefined }),
      other: fc.option(endpoint, { nil: undefined }),
      software: fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
      change: fc.option(fc.record({ changeIp: fc.boolean(), changePort: fc.boolean() }), { nil: undefined }),
      fingerprint: fc.boolean(),
    }),
    (r) => {
      const msg: StunMessage = {
        method: r.method, class: r.cls, transactionId: r.txid,
        ...(r.xor ? { xorMappedAddress: r.xor } : {}),
        ...(r.other ? { otherAddress: r.other } : {}),
        ...(r.software !== undefined ? { software: r.software } : {}),
        ...(r.change ? { changeRequest: r.change } : {}),
      };
      const m = decodeStunMessage(encodeStunMessage(msg, { fingerprint: r.fingerprint }));
      assert.equal(m.method, r.method);
      assert.equal(m.class, r.cls);
      assert.deepEqual(m.transactionId, r.txid);
      assert.equal(m.fingerprint, r.fingerprint);
      assert.equal(m.software, r.software);
      assert.deepEqual(m.changeRequest, r.change ? { ...r.change } : undefined);
      for (const [got, want] of [[m.xorMappedAddress, r.xor], [m.otherAddress, r.other]] as const) {
        if (!want) assert.equal(got, undefined);
        else {
          assert.equal(got!.port, want.port);
          assert.equal(Buffer.compare(ipBytes(got!.address), ipBytes(want.address)), 0);
        }
      }
    },
  ), { numRuns: 10_000 });
});

/** Address text → comparable bytes (fast-check's IPv6 text is not canonical). */
function ipBytes(a: string): Buffer {
  const m = decodeStunMessage(encodeStunMessage({ method: 1, class: 'request', transactionId: new Uint8Array(12), mappedAddress: { address: a, port: 0 } }, { fingerprint: false }));
  return Buffer.from(m.mappedAddress!.address);
}
