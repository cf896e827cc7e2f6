// The control channel's pieces (proto/control/noise-*): the IK handshake agrees on keys and
// authenticates both statics, refuses a message addressed to another key or tampered with; the
// frame cipher round-trips and refuses replays/tampering; and every decoder that reads bytes from
// the network (message 1 and 2, the frame reader, the upgrade client) throws only its own errors
// on random and mutated input, never anything else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import { HandshakeError } from '../../proto/wireguard/noise-crypto.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import {
  initiatorMessage1, initiatorReadMessage2, responderMessage2, responderReadMessage1, sameHandshake,
} from '../../proto/control/noise-ik.js';
import { CipherState, ControlFrameReader, MAX_CONTROL_PLAINTEXT } from '../../proto/control/noise-transport.js';
import {
  ControlProtocolError, ControlRefusedError, CoordinatorKeyMismatchError, upgradeToControlChannel,
} from '../../proto/control/noise-upgrade.js';
import { keyFingerprint, parseAuthKey } from '../../proto/control/coordinator-key.js';

const pair = () => { const privateKey = generatePrivateKey(); return { privateKey, publicKey: publicKeyFromPrivate(privateKey) }; };
const server = pair();
const client = pair();

test('IK: both sides agree on keys; the responder learns the initiator\'s static key', () => {
  const { msg1, pending } = initiatorMessage1(server.publicKey, client.privateKey, client.publicKey, new TextEncoder().encode('hi'));
  const r = responderReadMessage1(msg1, [pair(), server]);
  assert.equal(r.keyIndex, 1, 'found under the second key (a rotation)');
  assert.deepEqual(Buffer.from(r.initiatorStatic), Buffer.from(client.publicKey));
  assert.equal(Buffer.from(r.payload).toString(), 'hi');
  const { msg2, keys: rk } = responderMessage2(r, new TextEncoder().encode('welcome'));
  const { payload, keys: ik } = initiatorReadMessage2(pending, msg2);
  assert.equal(Buffer.from(payload).toString(), 'welcome');
  assert.ok(sameHandshake(ik, rk));
  assert.deepEqual(Buffer.from(ik.sendKey), Buffer.from(rk.recvKey));
  assert.deepEqual(Buffer.from(ik.recvKey), Buffer.from(rk.sendKey));
});

test('IK: a message 1 for another key, or tampered with, does not open; a forged message 2 does not authenticate', () => {
  const { msg1, pending } = initiatorMessage1(server.publicKey, client.privateKey, client.publicKey, new Uint8Array(0));
  assert.throws(() => responderReadMessage1(msg1, [pair()]), HandshakeError);
  for (let i = 0; i < msg1.length; i += 7) {
    const bad = Uint8Array.from(msg1);
    bad[i]! ^= 1;
    assert.throws(() => responderReadMessage1(bad, [server]), HandshakeError, `byte ${i}`);
  }
  // An impostor that does not hold the server key answers with its own message 2.
  const impostor = pair();
  const { msg1: m1b } = initiatorMessage1(impostor.publicKey, client.privateKey, client.publicKey, new Uint8Array(0));
  const forged = responderMessage2(responderReadMessage1(m1b, [impostor]), new Uint8Array(0)).msg2;
  assert.throws(() => initiatorReadMessage2(pending, forged), HandshakeError);
});

test('frames: round trip, split at any point; tampering, replay and reordering are refused', () => {
  const key = new Uint8Array(32).fill(7);
  const tx = new CipherState(key);
  const rx = new CipherState(key);
  const msgs = [Buffer.from('one'), Buffer.alloc(MAX_CONTROL_PLAINTEXT, 2), Buffer.alloc(0)];
  const wire = Buffer.concat(msgs.map((m) => tx.seal(m)));
  const reader = new ControlFrameReader();
  const got: Buffer[] = [];
  for (let at = 0; at < wire.length; at += 777) reader.push(wire.subarray(at, at + 777), (ct) => got.push(rx.open(ct)));
  assert.deepEqual(got, msgs);
  const frame = new CipherState(key).seal(Buffer.from('x'));
  const again = new CipherState(key);
  again.open(frame.subarray(2));
  assert.throws(() => again.open(frame.subarray(2)), DecodeError, 'a replayed frame fails (counter moved on)');
  const flipped = Buffer.from(frame);
  flipped[5]! ^= 1;
  assert.throws(() => new CipherState(key).open(flipped.subarray(2)), DecodeError);
});

test('decoders throw only their own errors on 20,000 random and mutated inputs', () => {
  const valid = initiatorMessage1(server.publicKey, client.privateKey, client.publicKey, new Uint8Array(0)).msg1;
  const mutated = fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 1, max: 255 }), fc.integer({ min: -40, max: 40 }))
    .map(([i, x, cut]) => { const b = Uint8Array.from(valid); b[i]! ^= x; return cut >= 0 ? b : b.subarray(0, b.length + cut); });
  const input = fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated);
  fc.assert(fc.property(input, (b) => {
    try { responderReadMessage1(b, [server]); } catch (err) { assert.ok(err instanceof HandshakeError, String(err)); }
    const { pending } = initiatorMessage1(server.publicKey, client.privateKey, client.publicKey, new Uint8Array(0), { privateKey: server.privateKey, publicKey: server.publicKey });
    try { initiatorReadMessage2(pending, b); } catch (err) { assert.ok(err instanceof HandshakeError, String(err)); }
    const reader = new ControlFrameReader();
    try {
      reader.push(b, (ct) => { try { new CipherState(new Uint8Array(32)).open(ct); } catch (err) { assert.ok(err instanceof DecodeError); } });
    } catch (err) { assert.ok(err instanceof DecodeError, String(err)); }
    assert.ok(reader.buffered <= 0xffff + 2, 'the reader holds at most one frame');
    try { parseAuthKey(Buffer.from(b).toString('latin1')); } catch (err) { assert.ok(err instanceof DecodeError); }
  }), { numRuns: 20_000 });
});

test('the upgrade client: any server answer ends in a result or one of its three errors', async () => {
  const answers = [
    'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n',
    `HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: ${'{"error":"slow down now"}'.length}\r\n\r\n{"error":"slow down now"}`,
    'HTTP/1.1 403 Forbidden\r\npinhole-control: key-mismatch\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{"error":"no"}',
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: pinhole-control-v1\r\n\r\n\x00\x30' + 'A'.repeat(48),
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n',
    'SSH-2.0-OpenSSH_9.2\r\n',
  ];
  const expect = [ControlProtocolError, ControlRefusedError, CoordinatorKeyMismatchError, CoordinatorKeyMismatchError, ControlProtocolError, ControlProtocolError];
  const run = async (answer: Buffer): Promise<unknown> => {
    const conn = new PassThrough();
    const writes: Buffer[] = [];
    const duplex = Object.assign(conn, { write: (c: Buffer | string) => { writes.push(Buffer.from(c)); return true; } });
    const p = upgradeToControlChannel(duplex as never, {
      host: 'c', serverKey: server.publicKey, staticPrivate: client.privateKey, staticPublic: client.publicKey, signal: AbortSignal.timeout(2000),
    }).then(() => 'channel', (err: unknown) => err);
    conn.push(answer);
    conn.push(null);
    return p;
  };
  for (const [i, a] of answers.entries()) {
    const r = await run(Buffer.from(a, 'latin1'));
    assert.ok(r instanceof expect[i]!, `${JSON.stringify(a.slice(0, 30))}: ${String(r)}`);
  }
  await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (b) => {
    const r = await run(Buffer.concat([Buffer.from('HTTP/1.1 101 Switching Protocols\r\nUpgrade: pinhole-control-v1\r\n\r\n'), b]));
    assert.ok(r instanceof ControlProtocolError || r instanceof CoordinatorKeyMismatchError, String(r));
  }), { numRuns: 500 });
  assert.equal(keyFingerprint(server.publicKey).length, 32);
});
