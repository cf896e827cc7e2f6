// The agent daemon's libsodium calls go through the native addon (agent/tun/src/sodium_calls.c)
// instead of sodium-native: same bytes, same refusals, for every function proto/sodium.ts names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import sodiumNativeModule from 'sodium-native';
import { addonSodium, sodiumWhenBusy, useAddonSodium } from '../../agent/tun/addon-sodium.js';
import { sodium, sodiumNative } from '../../proto/sodium.js';
import { loadNative } from '../../agent/tun/native.js';

const ours = addonSodium(loadNative());
const ref = sodiumNativeModule;
/** A view at an odd offset into a larger buffer, so offsets are honoured. */
const view = (b: Uint8Array): Uint8Array => { const big = new Uint8Array(b.length + 7); big.set(b, 3); return big.subarray(3, 3 + b.length); };

test('ChaCha20-Poly1305 and XChaCha20-Poly1305: the same ciphertexts as sodium-native, and each opens the other\'s', () => {
  for (const x of [false, true]) {
    const seal = x ? 'crypto_aead_xchacha20poly1305_ietf_encrypt' : 'crypto_aead_chacha20poly1305_ietf_encrypt';
    const open = x ? 'crypto_aead_xchacha20poly1305_ietf_decrypt' : 'crypto_aead_chacha20poly1305_ietf_decrypt';
    for (const len of [0, 1, 15, 16, 17, 1400, 65_000]) {
      for (const ad of [null, randomBytes(32)]) {
        const m = view(randomBytes(len)), k = view(randomBytes(32)), npub = view(randomBytes(x ? 24 : 12));
        const c1 = new Uint8Array(len + 16), c2 = new Uint8Array(len + 16);
        assert.equal(ours[seal](c1, m, ad, null, npub, k), len + 16);
        ref[seal](c2, m, ad, null, npub, k);
        assert.deepEqual(c1, c2, `seal x=${x} len=${len}`);
        const back = new Uint8Array(len);
        assert.equal(ours[open](back, null, view(c2), ad, npub, k), len);
        assert.deepEqual(back, m);
        // A flipped bit anywhere, or other associated data, does not verify: sodium-native's error.
        const bad = Uint8Array.from(c1);
        bad[Math.floor(Math.random() * bad.length)]! ^= 1;
        assert.throws(() => ours[open](back, null, bad, ad, npub, k), /could not verify data/);
        assert.throws(() => ours[open](back, null, c1, ad ? null : randomBytes(1), npub, k), /could not verify data/);
      }
    }
  }
});

test('X25519: the same shared secrets and public keys; a low-order point throws and leaves zeros', () => {
  for (let i = 0; i < 50; i++) {
    const sk = randomBytes(32), peer = randomBytes(32);
    const p1 = new Uint8Array(32), p2 = new Uint8Array(32);
    ours.crypto_scalarmult_base(p1, sk);
    ref.crypto_scalarmult_base(p2, sk);
    assert.deepEqual(p1, p2);
    const q1 = new Uint8Array(32), q2 = new Uint8Array(32);
    ours.crypto_scalarmult(q1, sk, peer);
    ref.crypto_scalarmult(q2, sk, peer);
    assert.deepEqual(q1, q2);
  }
  const q = new Uint8Array(32).fill(7);
  assert.throws(() => ours.crypto_scalarmult(q, randomBytes(32), new Uint8Array(32)), /status/);
  assert.throws(() => ref.crypto_scalarmult(new Uint8Array(32), randomBytes(32), new Uint8Array(32)), /status/);
  assert.deepEqual(q, new Uint8Array(32));
});

test('secretbox: the same boxes as sodium-native; a changed box does not open', () => {
  for (const len of [0, 1, 100, 1300]) {
    const m = view(randomBytes(len)), n = randomBytes(24), k = randomBytes(32);
    const c1 = new Uint8Array(len + 16), c2 = new Uint8Array(len + 16);
    ours.crypto_secretbox_easy(c1, m, n, k);
    ref.crypto_secretbox_easy(c2, m, n, k);
    assert.deepEqual(c1, c2);
    const back = new Uint8Array(len);
    assert.equal(ours.crypto_secretbox_open_easy(back, c1, n, k), true);
    assert.deepEqual(back, m);
    c1[0]! ^= 0x80;
    assert.equal(ours.crypto_secretbox_open_easy(back, c1, n, k), false);
  }
});

test('random bytes fill the whole view and only it; equality is by content', () => {
  const big = new Uint8Array(80);
  ours.randombytes_buf(big.subarray(8, 72));
  assert.ok(big.subarray(0, 8).every((b) => b === 0) && big.subarray(72).every((b) => b === 0));
  assert.ok(big.subarray(8, 72).some((b) => b !== 0));
  const a = randomBytes(32);
  assert.equal(ours.sodium_memcmp(a, Uint8Array.from(a)), true);
  const b = Uint8Array.from(a);
  b[31]! ^= 1;
  assert.equal(ours.sodium_memcmp(a, b), false);
});

test('wrong lengths and types throw a clear error and write nothing', () => {
  const out = new Uint8Array(20);
  assert.throws(() => ours.crypto_aead_chacha20poly1305_ietf_encrypt(out, new Uint8Array(5), null, null, new Uint8Array(12), new Uint8Array(32)), /aeadSeal: c must be m.length \+ 16/);
  assert.throws(() => ours.crypto_aead_chacha20poly1305_ietf_encrypt(new Uint8Array(21), new Uint8Array(5), null, null, new Uint8Array(24), new Uint8Array(32)), /npub 12/);
  assert.throws(() => ours.crypto_aead_xchacha20poly1305_ietf_decrypt(new Uint8Array(0), null, new Uint8Array(10), null, new Uint8Array(24), new Uint8Array(32)), /aeadOpen/);
  assert.throws(() => ours.crypto_scalarmult_base(new Uint8Array(31), new Uint8Array(32)), /32 bytes/);
  assert.throws(() => ours.crypto_secretbox_open_easy(new Uint8Array(4), new Uint8Array(10), new Uint8Array(24), new Uint8Array(32)), /secretboxOpen/);
  assert.throws(() => ours.sodium_memcmp(new Uint8Array(2), new Uint8Array(3)), /same length/);
  assert.throws(() => loadNative().boxBeforenm(out.subarray(0, 31), new Uint8Array(32), new Uint8Array(32)), /boxBeforenm: 32-byte out/);
  assert.throws(() => ours.crypto_secretbox_easy('x' as unknown as Uint8Array, new Uint8Array(0), new Uint8Array(24), new Uint8Array(32)), { code: 'ERR_INVALID_ARG_TYPE' });
  assert.deepEqual(out, new Uint8Array(20));
});

test('the daemon starts on the addon and moves to sodium-native when busy; the bytes stay the same', () => {
  useAddonSodium();
  assert.notEqual(sodium(), sodiumNative());
  const k = randomBytes(32), n = randomBytes(12), m = randomBytes(64_000);
  const before = new Uint8Array(m.length + 16);
  sodium().crypto_aead_chacha20poly1305_ietf_encrypt(before, m, null, null, n, k);
  assert.equal(sodiumWhenBusy(), 'bulk crypto on sodium-native');
  assert.equal(sodium(), sodiumNative());
  const after = new Uint8Array(m.length + 16);
  sodium().crypto_aead_chacha20poly1305_ietf_encrypt(after, m, null, null, n, k);
  assert.deepEqual(after, before);
});
