// The subset of sodium-native (v5) that pinhole uses. The package ships no types of its own.
declare module 'sodium-native' {
  type Bytes = Uint8Array;
  const sodium: {
    randombytes_buf(buf: Bytes): void;
    sodium_memcmp(a: Bytes, b: Bytes): boolean;
    sodium_memzero(buf: Bytes): void;
    crypto_scalarmult_base(q: Bytes, n: Bytes): void;
    crypto_scalarmult(q: Bytes, n: Bytes, p: Bytes): void;
    crypto_aead_chacha20poly1305_ietf_encrypt(c: Bytes, m: Bytes, ad: Bytes | null, nsec: null, npub: Bytes, k: Bytes): number;
    crypto_aead_chacha20poly1305_ietf_decrypt(m: Bytes, nsec: null, c: Bytes, ad: Bytes | null, npub: Bytes, k: Bytes): number;
    crypto_aead_xchacha20poly1305_ietf_encrypt(c: Bytes, m: Bytes, ad: Bytes | null, nsec: null, npub: Bytes, k: Bytes): number;
    crypto_aead_xchacha20poly1305_ietf_decrypt(m: Bytes, nsec: null, c: Bytes, ad: Bytes | null, npub: Bytes, k: Bytes): number;
    crypto_box_keypair(pk: Bytes, sk: Bytes): void;
    /** XSalsa20-Poly1305: c is m.length + 16 bytes (MAC first), n 24 bytes, k 32. */
    crypto_secretbox_easy(c: Bytes, m: Bytes, n: Bytes, k: Bytes): void;
    /** false when c does not open under k (c must be at least 16 bytes; m is c.length - 16). */
    crypto_secretbox_open_easy(m: Bytes, c: Bytes, n: Bytes, k: Bytes): boolean;
  };
  export default sodium;
}
