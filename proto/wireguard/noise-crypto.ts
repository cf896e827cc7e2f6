// The paper's primitives (section 5.4): HASH, MAC, HMAC, KDFn, DH, AEAD, XAEAD.
// Handshake-rate code: clarity over speed, small allocations are fine here.
import { sodium } from '../sodium.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { createHash, createHmac } from 'node:crypto';
import { KEY_LEN, MAC_LEN, TAG_LEN } from './constants.js';

const ZERO_NONCE = new Uint8Array(12);

/** BLAKE2s-256 of the parts in order (OpenSSL's, as for HMAC below; the JS one cost the coordinator more per handshake). */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Keyed BLAKE2s with a 16-byte output. */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  return blake2s(input, { key, dkLen: MAC_LEN });
}

/** HMAC-BLAKE2s (64-byte blocks); OpenSSL's is the same function and ~6x faster than the JS one here. */
export function hmacBlake2s(key: Uint8Array, input: Uint8Array): Uint8Array {
  return createHmac('blake2s256', key).update(input).digest();
}

/** KDF_n(key, input) from the paper: returns n 32-byte outputs. */
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = hmacBlake2s(key, input);
  const out: Uint8Array[] = [];
  let prev: Uint8Array = new Uint8Array(0);
  for (let i = 1; i <= n; i++) {
    const block = new Uint8Array(prev.length + 1);
    block.set(prev, 0);
    block[prev.length] = i;
    prev = hmacBlake2s(prk, block);
    out.push(prev);
  }
  prk.fill(0);
  return out;
}

export class HandshakeError extends Error {
  override name = 'HandshakeError';
}

/** X25519; an all-zero shared secret (low-order point) is refused as the paper requires. */
export function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  const out = Buffer.alloc(KEY_LEN);
  try {
    sodium().crypto_scalarmult(out, asBuffer(privateKey), asBuffer(publicKey));
  } catch {
    throw new HandshakeError('X25519 produced the all-zero secret');
  }
  return out;
}

export function dhGenerate(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const privateKey = Buffer.alloc(KEY_LEN);
  sodium().randombytes_buf(privateKey);
  privateKey[0]! &= 248;
  privateKey[31]! = (privateKey[31]! & 127) | 64;
  const publicKey = Buffer.alloc(KEY_LEN);
  sodium().crypto_scalarmult_base(publicKey, privateKey);
  return { privateKey, publicKey };
}

/** ChaCha20-Poly1305 with a 64-bit little-endian counter nonce (only counter 0 in handshakes). */
export function aeadEncrypt(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = Buffer.alloc(plaintext.length + TAG_LEN);
  sodium().crypto_aead_chacha20poly1305_ietf_encrypt(out, asBuffer(plaintext), asBuffer(ad), null, ZERO_NONCE, asBuffer(key));
  return out;
}

export function aeadDecrypt(key: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array {
  if (ciphertext.length < TAG_LEN) throw new HandshakeError('ciphertext shorter than its tag');
  const out = Buffer.alloc(ciphertext.length - TAG_LEN);
  try {
    sodium().crypto_aead_chacha20poly1305_ietf_decrypt(out, null, asBuffer(ciphertext), asBuffer(ad), ZERO_NONCE, asBuffer(key));
  } catch {
    throw new HandshakeError('authentication tag mismatch');
  }
  return out;
}

export function xaeadEncrypt(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = Buffer.alloc(plaintext.length + TAG_LEN);
  sodium().crypto_aead_xchacha20poly1305_ietf_encrypt(out, asBuffer(plaintext), asBuffer(ad), null, asBuffer(nonce), asBuffer(key));
  return out;
}

export function xaeadDecrypt(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array {
  if (ciphertext.length < TAG_LEN) throw new HandshakeError('ciphertext shorter than its tag');
  const out = Buffer.alloc(ciphertext.length - TAG_LEN);
  try {
    sodium().crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, asBuffer(ciphertext), asBuffer(ad), asBuffer(nonce), asBuffer(key));
  } catch {
    throw new HandshakeError('cookie authentication tag mismatch');
  }
  return out;
}

export function randomBytes(n: number): Uint8Array {
  const b = Buffer.alloc(n);
  sodium().randombytes_buf(b);
  return b;
}

/** Constant-time equality for secrets and MACs. */
export function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return sodium().sodium_memcmp(asBuffer(a), asBuffer(b));
}

export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
