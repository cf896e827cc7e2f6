// Disco's box key now comes from libsodium (crypto_box_beforenm in the native addon) and its box
// from sodium-native's secretbox, where tweetnacl did both before: the keys and packets must be the
// same bytes, so agents of either kind still talk to each other; a low-order disco key is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { discoSharedKey } from '../../agent/magicsock/disco-key.js';
import { DISCO_HEADER_LEN, DISCO_KEY_LEN, DISCO_MAGIC, DISCO_NONCE_LEN, decodeDiscoPayload, encodeDiscoPayload, openDisco, sealDisco } from '../../proto/disco/messages.js';

test('the shared key is tweetnacl\'s box.before, for 200 random key pairs', () => {
  for (let i = 0; i < 200; i++) {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    const k = discoSharedKey(b.publicKey, a.secretKey);
    assert.equal(k.usable, true);
    assert.deepEqual(k.key, nacl.box.before(b.publicKey, a.secretKey));
    assert.deepEqual(k.key, discoSharedKey(a.publicKey, b.secretKey).key, 'both ends compute the same key');
  }
});

test('packets sealed by tweetnacl (agents before this change) open here, and ours open with tweetnacl', () => {
  const a = nacl.box.keyPair();
  const b = nacl.box.keyPair();
  const payload = encodeDiscoPayload({ type: 'call-me-maybe', endpoints: [] }, 1_765_000_000_000_000);
  // The old sealDisco: magic | sender key | nonce | nacl.box(payload).
  const nonce = nacl.randomBytes(DISCO_NONCE_LEN);
  const old = new Uint8Array([...DISCO_MAGIC, ...a.publicKey, ...nonce, ...nacl.box(payload, nonce, b.publicKey, a.secretKey)]);
  assert.deepEqual(openDisco(old, discoSharedKey(a.publicKey, b.secretKey).key), decodeDiscoPayload(payload));

  const ours = sealDisco(payload, a.publicKey, discoSharedKey(b.publicKey, a.secretKey).key);
  assert.equal(ours.length, old.length);
  const opened = nacl.box.open(ours.subarray(DISCO_HEADER_LEN), ours.subarray(DISCO_MAGIC.length + DISCO_KEY_LEN, DISCO_HEADER_LEN), a.publicKey, b.secretKey);
  assert.ok(opened, 'tweetnacl opens what we seal');
  assert.deepEqual(opened, payload);
});

test('a low-order disco key gives no usable key (its shared secret would be all zeros)', () => {
  const ours = nacl.box.keyPair();
  // u = 0 and u = 1 are points of small order on Curve25519; X25519 with either is all zeros.
  for (const weak of [new Uint8Array(32), Uint8Array.from([1, ...new Uint8Array(31)])]) {
    const k = discoSharedKey(weak, ours.secretKey);
    assert.equal(k.usable, false);
    assert.notDeepEqual(k.key, nacl.box.before(weak, ours.secretKey), 'not the key anyone can compute');
    assert.equal(k.key.length, 32);
  }
});

test('a packet too short to hold a box is refused with a DecodeError, never reaches sodium (which would assert)', () => {
  const a = nacl.box.keyPair();
  const key = discoSharedKey(a.publicKey, nacl.box.keyPair().secretKey).key;
  const short = new Uint8Array(DISCO_HEADER_LEN + 10);
  short.set(DISCO_MAGIC);
  assert.throws(() => openDisco(short, key), (err: Error & { code?: string }) => err.name === 'DecodeError' && err.code === 'short');
});
