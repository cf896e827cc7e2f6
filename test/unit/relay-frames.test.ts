// Relay frames: every frame type round-trips, send→recv rewriting in place is exact, the stream
// reader reassembles frames however the stream is cut and refuses an oversized frame at its
// header, the handshake frames have the documented byte layout, the node proof and the relay
// proof verify only for the right keys/challenge/nonce and cannot stand in for each other, and
// 100k hostile streams make the reader and decoder throw nothing but DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import { checkNodeProof, checkRelayProof, makeNodeProof, makeRelayProof, relayHandshakeKey, type RelayHandshake } from '../../proto/relay/auth.js';
import { RelayFrameReader } from '../../proto/relay/frame-reader.js';
import {
  CLIENT_INFO_LEN, decodeRelayFrame, encodeRelayFrame, FRAME, FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD, MAX_PACKET_LEN,
  RELAY_PROTOCOL_VERSION, SERVER_INFO_LEN, sendFrameToRecvInPlace, writeSendFrame, type RelayFrame,
} from '../../proto/relay/frames.js';
import { dhGenerate } from '../../proto/wireguard/noise-crypto.js';

const RUNS = 100_000;
const key = (): Uint8Array => new Uint8Array(randomBytes(32));

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof DecodeError) return err.code;
    throw err;
  }
  return 'ok';
}

/** Feeds chunks to a fresh reader and decodes every frame. */
function readAll(chunks: Uint8Array[]): RelayFrame[] {
  const reader = new RelayFrameReader();
  const out: RelayFrame[] = [];
  for (const c of chunks) reader.push(c, (type, payload) => out.push(decodeRelayFrame(type, payload)));
  assert.equal(reader.buffered, 0, 'no bytes left over');
  return out;
}

/** Plain objects with copies of every byte field, for deepEqual. */
function plain(f: RelayFrame): unknown {
  return Object.fromEntries(Object.entries(f).map(([k, v]) => [k, v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v]));
}

const SAMPLES: RelayFrame[] = [
  { type: 'server-key', version: 2, serverKey: key(), challenge: key() },
  { type: 'client-info', version: 2, nodeKey: key(), clientNonce: key(), proof: new Uint8Array(randomBytes(16)) },
  { type: 'server-info', keepaliveMs: 30_000, idleTimeoutMs: 75_000, rateBytesPerSec: 134217728, rateBurstBytes: 4194304, relayProof: new Uint8Array(randomBytes(16)) },
  { type: 'send', priority: false, dst: key(), data: new Uint8Array(randomBytes(1400)) },
  { type: 'send', priority: true, dst: key(), data: new Uint8Array(0) },
  { type: 'recv', src: key(), data: new Uint8Array(randomBytes(33)) },
  { type: 'keepalive' },
  { type: 'peer-gone', nodeKey: key(), reason: 'disconnected' },
  { type: 'peer-gone', nodeKey: key(), reason: 'not-here' },
  { type: 'ping', data: new Uint8Array(randomBytes(8)) },
  { type: 'pong', data: new Uint8Array(randomBytes(8)) },
  { type: 'notice', code: 3, message: 'frame of 70000 bytes — too big' },
];

test('every frame type round-trips, with the documented header', () => {
  for (const f of SAMPLES) {
    const bytes = encodeRelayFrame(f);
    const len = new DataView(bytes.buffer).getUint32(1);
    assert.equal(len, bytes.length - FRAME_HEADER_LEN, `${f.type} length field`);
    const [back] = readAll([bytes]);
    assert.deepEqual(plain(back!), plain(f));
  }
  assert.equal(encodeRelayFrame({ type: 'keepalive' })[0], FRAME.KEEPALIVE);
  assert.deepEqual([...encodeRelayFrame(SAMPLES[3]!).subarray(0, 6)], [0x04, 0, 0, 0x05, 0x99, 0x00]);
});

test('handshake frames have the byte layout of frames.ts (version 2)', () => {
  assert.equal(RELAY_PROTOCOL_VERSION, 2);
  const ci = SAMPLES[1] as Extract<RelayFrame, { type: 'client-info' }>;
  const b = encodeRelayFrame(ci);
  assert.equal(b.length, FRAME_HEADER_LEN + CLIENT_INFO_LEN);
  assert.equal(CLIENT_INFO_LEN, 1 + 32 + 32 + 16);
  assert.deepEqual([b[0], b[5]], [FRAME.CLIENT_INFO, 2]);
  assert.deepEqual(b.subarray(6, 38), ci.nodeKey);
  assert.deepEqual(b.subarray(38, 70), ci.clientNonce);
  assert.deepEqual(b.subarray(70, 86), ci.proof);
  const si = SAMPLES[2] as Extract<RelayFrame, { type: 'server-info' }>;
  const c = encodeRelayFrame(si);
  assert.equal(c.length, FRAME_HEADER_LEN + SERVER_INFO_LEN);
  assert.equal(new DataView(c.buffer).getUint32(5), 30_000);
  assert.equal(new DataView(c.buffer).getUint32(17), 4194304);
  assert.deepEqual(c.subarray(21, 37), si.relayProof);
  // The version-1 sizes no longer decode.
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.CLIENT_INFO, new Uint8Array(49))), 'bad-length');
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.SERVER_INFO, new Uint8Array(16))), 'bad-length');
});

test('send frames written into a batch buffer equal encodeRelayFrame\'s', () => {
  const dst = key();
  const data = new Uint8Array(randomBytes(100));
  const out = new Uint8Array(500);
  const n = writeSendFrame(out, 7, dst, data, true);
  assert.deepEqual(out.subarray(7, 7 + n), encodeRelayFrame({ type: 'send', priority: true, dst, data }));
  assert.throws(() => writeSendFrame(new Uint8Array(70_000), 0, dst, new Uint8Array(MAX_PACKET_LEN + 1), false), RangeError);
});

test('a send frame becomes the recv frame for its destination in place', () => {
  const src = key();
  const data = new Uint8Array(randomBytes(1280));
  const send = encodeRelayFrame({ type: 'send', priority: true, dst: key(), data });
  const recv = sendFrameToRecvInPlace(send, src);
  assert.deepEqual(recv, encodeRelayFrame({ type: 'recv', src, data }));
  assert.equal(recv.buffer, send.buffer, 'no copy');
});

test('the reader reassembles frames cut at every possible byte', () => {
  const stream = Buffer.concat(SAMPLES.map(encodeRelayFrame));
  const want = SAMPLES.map(plain);
  for (let cut = 0; cut <= stream.length; cut++) {
    assert.deepEqual(readAll([stream.subarray(0, cut), stream.subarray(cut)]).map(plain), want, `cut at ${cut}`);
  }
  // One byte at a time.
  assert.deepEqual(readAll([...stream].map((b) => Uint8Array.of(b))).map(plain), want);
});

test('an oversized frame is refused at its header, before its payload is buffered', () => {
  const reader = new RelayFrameReader();
  const header = Uint8Array.of(FRAME.SEND, 0, 1, 0x11, 0x70); // 70000 bytes
  let err: unknown;
  try {
    reader.push(header.subarray(0, 3), () => assert.fail('no frame'));
    reader.push(header.subarray(3), () => assert.fail('no frame'));
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DecodeError && err.code === 'oversized', String(err));
  assert.equal(reader.buffered, 0);
  assert.throws(() => reader.push(new Uint8Array(1), () => undefined), DecodeError, 'the stream stays failed');
  // Exactly the maximum is fine.
  const max = new Uint8Array(FRAME_HEADER_LEN + MAX_FRAME_PAYLOAD);
  max.set([FRAME.SEND, 0, 1, 0, 0]);
  let got = 0;
  new RelayFrameReader().push(max, (_t, p) => { got = p.length; });
  assert.equal(got, MAX_FRAME_PAYLOAD);
});

test('malformed payloads have distinct error codes', () => {
  assert.equal(codeOf(() => decodeRelayFrame(0x77, new Uint8Array(0))), 'bad-type');
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.CLIENT_INFO, new Uint8Array(48))), 'bad-length');
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.SEND, new Uint8Array(32))), 'bad-length');
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.SEND, Uint8Array.of(0x80, ...new Uint8Array(32)))), 'bad-value');
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.PEER_GONE, new Uint8Array(33))), 'bad-value');
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.NOTICE, Uint8Array.of(1, 0xff, 0xfe))), 'bad-value');
  assert.equal(codeOf(() => decodeRelayFrame(FRAME.PING, new Uint8Array(7))), 'bad-length');
});

test('the node proof and the relay proof verify only for the right keys, challenge and nonce', () => {
  const relay = dhGenerate();
  const node = dhGenerate();
  const other = dhGenerate();
  const hs: RelayHandshake = { nodeKey: node.publicKey, relayKey: relay.publicKey, challenge: key(), clientNonce: key() };
  const kNode = relayHandshakeKey(node.privateKey, relay.publicKey, hs)!;
  const kRelay = relayHandshakeKey(relay.privateKey, node.publicKey, hs)!;
  assert.deepEqual(kNode, kRelay, 'both ends derive one key');
  const nodeProof = makeNodeProof(kNode, hs);
  const relayProof = makeRelayProof(kRelay, hs);
  assert.equal(nodeProof.length, 16);
  assert.ok(checkNodeProof(kRelay, hs, nodeProof));
  assert.ok(checkRelayProof(kNode, hs, relayProof));
  assert.ok(!checkRelayProof(kNode, hs, nodeProof), 'a node proof reflected as the relay proof');
  assert.ok(!checkNodeProof(kRelay, hs, relayProof), 'a relay proof reflected as a node proof');
  // An impostor relay with its own key, presenting the real relay's key: its K differs.
  const kImpostor = relayHandshakeKey(other.privateKey, node.publicKey, hs)!;
  assert.ok(!checkRelayProof(kNode, hs, makeRelayProof(kImpostor, hs)), 'an impostor cannot prove the relay key');
  // A node claiming another node's key.
  const kThief = relayHandshakeKey(other.privateKey, relay.publicKey, hs)!;
  assert.ok(!checkNodeProof(kRelay, hs, makeNodeProof(kThief, hs)), 'claiming another key');
  for (const field of ['challenge', 'clientNonce', 'nodeKey', 'relayKey'] as const) {
    const changed = { ...hs, [field]: key() };
    assert.ok(!checkNodeProof(kRelay, changed, nodeProof), `node proof replayed with another ${field}`);
    assert.ok(!checkRelayProof(kNode, changed, relayProof), `relay proof replayed with another ${field}`);
  }
  assert.equal(relayHandshakeKey(relay.privateKey, new Uint8Array(32), hs), null, 'low-order (zero) key');
  assert.equal(relayHandshakeKey(relay.privateKey, node.publicKey, { ...hs, clientNonce: new Uint8Array(31) }), null, 'short nonce');
  const flipped = Uint8Array.from(relayProof);
  flipped[0]! ^= 1;
  assert.ok(!checkRelayProof(kNode, hs, flipped));
  assert.ok(!checkRelayProof(kNode, hs, relayProof.subarray(0, 15)), 'short proof');
});

const anyFrame: fc.Arbitrary<RelayFrame> = fc.oneof(
  fc.record({ type: fc.constant('send' as const), priority: fc.boolean(), dst: fc.uint8Array({ minLength: 32, maxLength: 32 }), data: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ type: fc.constant('recv' as const), src: fc.uint8Array({ minLength: 32, maxLength: 32 }), data: fc.uint8Array({ maxLength: 300 }) }),
  fc.constant({ type: 'keepalive' as const }),
  fc.record({ type: fc.constantFrom('ping' as const, 'pong' as const), data: fc.uint8Array({ minLength: 8, maxLength: 8 }) }),
  fc.record({ type: fc.constant('peer-gone' as const), nodeKey: fc.uint8Array({ minLength: 32, maxLength: 32 }), reason: fc.constantFrom('disconnected' as const, 'not-here' as const) }),
  fc.record({ type: fc.constant('notice' as const), code: fc.integer({ min: 0, max: 255 }), message: fc.string({ maxLength: 40 }) }),
  fc.record({ type: fc.constant('server-key' as const), version: fc.integer({ min: 0, max: 255 }), serverKey: fc.uint8Array({ minLength: 32, maxLength: 32 }), challenge: fc.uint8Array({ minLength: 32, maxLength: 32 }) }),
  fc.record({
    type: fc.constant('client-info' as const), version: fc.integer({ min: 0, max: 255 }), nodeKey: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    clientNonce: fc.uint8Array({ minLength: 32, maxLength: 32 }), proof: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  }),
  fc.record({
    type: fc.constant('server-info' as const), keepaliveMs: fc.nat(), idleTimeoutMs: fc.nat(), rateBytesPerSec: fc.nat(), rateBurstBytes: fc.nat(),
    relayProof: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  }),
);

/** Cuts bytes at the given (sorted, deduplicated) offsets. */
function cutAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}

test(`${RUNS} random frame sequences, cut anywhere, come out whole and in order`, () => {
  fc.assert(fc.property(fc.array(anyFrame, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 5 }), (frames, cuts) => {
    const stream = Buffer.concat(frames.map(encodeRelayFrame));
    assert.deepEqual(readAll(cutAt(stream, cuts)).map(plain), frames.map(plain));
  }), { numRuns: RUNS });
});

test(`reader and decoder throw only DecodeError on ${RUNS} hostile streams`, () => {
  // Streams of plausible headers (known and unknown types, lengths around and over the limit) and junk.
  const header = fc.tuple(fc.integer({ min: 0, max: 12 }), fc.oneof(fc.integer({ min: 0, max: 80 }), fc.constantFrom(32, 65, 81, MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD + 1, 0xffffffff)), fc.uint8Array({ maxLength: 96 }))
    .map(([type, len, body]) => Uint8Array.from([type, len >>> 24, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff, ...body]));
  const stream = fc.array(fc.oneof({ arbitrary: header, weight: 4 }, { arbitrary: fc.uint8Array({ maxLength: 60 }), weight: 1 }), { maxLength: 5 }).map((parts) => Buffer.concat(parts));
  let frames = 0;
  fc.assert(fc.property(stream, fc.array(fc.nat(), { maxLength: 4 }), (bytes, cuts) => {
    const reader = new RelayFrameReader();
    try {
      for (const c of cutAt(bytes, cuts)) {
        reader.push(c, (type, payload) => {
          frames++;
          try {
            decodeRelayFrame(type, payload);
          } catch (err) {
            if (!(err instanceof DecodeError)) throw err;
          }
        });
      }
    } catch (err) {
      return err instanceof DecodeError && err.code === 'oversized';
    }
    return true;
  }), { numRuns: RUNS });
  assert.ok(frames > RUNS / 10, `hostile streams should contain frames too (${frames})`);
});
