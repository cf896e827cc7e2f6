// HASH (noise-crypto.ts) is OpenSSL's BLAKE2s-256: the same function as the JS reference
// (@noble/hashes) on random inputs split at random points, and RFC 7693's test vector for "abc".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hash } from '../../proto/wireguard/noise-crypto.js';

test('hash is BLAKE2s-256: RFC 7693 appendix B and the JS reference on 500 random inputs', () => {
  assert.equal(Buffer.from(hash(Buffer.from('abc'))).toString('hex'), '508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982');
  for (let i = 0; i < 500; i++) {
    const data = randomBytes(Math.floor(Math.random() * 300));
    const cut = Math.floor(Math.random() * (data.length + 1));
    assert.deepEqual(Buffer.from(hash(data.subarray(0, cut), data.subarray(cut))), Buffer.from(blake2s(data, { dkLen: 32 })));
  }
});
