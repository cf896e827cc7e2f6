// Curve25519 keys as `wg` handles them: 32 bytes, written as 44 characters of standard base64
// ending in a single '='. Decoding follows wireguard-tools' key_from_base64 (encoding.c),
// including its branch-free character decoding, since private keys pass through it.
import { sodium } from '../sodium.js';
import { DecodeError } from '../errors.js';

export const KEY_LEN = 32;
export const KEY_BASE64_LEN = 44;

/** Base64 value (0–63) of one ASCII character, or -1, without branching on the character. */
function decodeChar(c: number): number {
  return (
    -1 +
    (((((0x41 - 1 - c) & (c - (0x5a + 1))) >> 8) & (c - 64)) + // 'A'..'Z' → 0..25
      ((((0x61 - 1 - c) & (c - (0x7a + 1))) >> 8) & (c - 70)) + // 'a'..'z' → 26..51
      ((((0x30 - 1 - c) & (c - (0x39 + 1))) >> 8) & (c + 5)) + // '0'..'9' → 52..61
      ((((0x2b - 1 - c) & (c - (0x2b + 1))) >> 8) & 63) + // '+' → 62
      ((((0x2f - 1 - c) & (c - (0x2f + 1))) >> 8) & 64)) // '/' → 63
  );
}

/** Four characters → 24 bits; negative if any character is not base64. */
function decodeQuad(s: string, at: number, lastIsA: boolean): number {
  let val = 0;
  for (let i = 0; i < 4; i++) {
    const c = lastIsA && i === 3 ? 0x41 : s.charCodeAt(at + i);
    val |= decodeChar(c) << (18 - 6 * i);
  }
  return val;
}

/** Decodes a `wg`-style key; DecodeError (without echoing the text, which may be secret) otherwise. */
export function decodeKey(text: string): Uint8Array {
  if (typeof text !== 'string') throw new DecodeError('bad-type', 'key: expected a string');
  if (text.length !== KEY_BASE64_LEN || text.charCodeAt(KEY_BASE64_LEN - 1) !== 0x3d) {
    throw new DecodeError('bad-length', `key must be ${KEY_BASE64_LEN} base64 characters ending in "="`);
  }
  let bad = 0;
  // Characters outside ASCII would defeat the 8-bit arithmetic of decodeChar.
  for (let i = 0; i < KEY_BASE64_LEN - 1; i++) bad |= text.charCodeAt(i) >> 7;
  const key = new Uint8Array(KEY_LEN);
  let i = 0;
  for (; i < Math.floor(KEY_LEN / 3); i++) {
    const val = decodeQuad(text, i * 4, false);
    bad |= val >>> 31;
    key[i * 3] = val >> 16;
    key[i * 3 + 1] = val >> 8;
    key[i * 3 + 2] = val;
  }
  // Last group: 3 characters carry 18 bits for 2 bytes; the 2 spare bits must be zero (canonical).
  const val = decodeQuad(text, i * 4, true);
  bad |= (val >>> 31) | (val & 0xff);
  key[i * 3] = val >> 16;
  key[i * 3 + 1] = val >> 8;
  if (bad !== 0) {
    key.fill(0);
    throw new DecodeError('bad-value', 'key is not canonical base64 of 32 bytes');
  }
  return key;
}

/** Standard base64 of a 32-byte key: 44 characters, one '=' of padding. */
export function encodeKey(key: Uint8Array): string {
  if (key.length !== KEY_LEN) throw new RangeError(`a key has ${KEY_LEN} bytes, not ${key.length}`);
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('base64');
}

/** Clamps a Curve25519 private key in place (RFC 7748 §5) and returns it, as `wg genkey` does. */
export function clampPrivateKey(key: Uint8Array): Uint8Array {
  if (key.length !== KEY_LEN) throw new RangeError(`a key has ${KEY_LEN} bytes, not ${key.length}`);
  key[0] &= 248;
  key[31] = (key[31]! & 127) | 64;
  return key;
}

/** 32 random bytes from libsodium's CSPRNG, clamped. */
export function generatePrivateKey(): Uint8Array {
  const key = new Uint8Array(KEY_LEN);
  sodium().randombytes_buf(key);
  return clampPrivateKey(key);
}

/** X25519(priv, 9): the public key. X25519 clamps internally, so unclamped input gives wg's answer too. */
export function publicKeyFromPrivate(privateKey: Uint8Array): Uint8Array {
  if (privateKey.length !== KEY_LEN) throw new RangeError(`a key has ${KEY_LEN} bytes, not ${privateKey.length}`);
  const pub = new Uint8Array(KEY_LEN);
  sodium().crypto_scalarmult_base(pub, privateKey);
  return pub;
}
