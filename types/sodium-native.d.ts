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
  };
  export default sodium;
}
