// The libsodium calls the agent's JavaScript makes (WireGuard's and the control protocol's Noise,
// the JS data path, disco, keys), so the agent daemon need not load sodium-native, which brings
// its own copy of libsodium and its loader (proto/sodium.ts, agent/tun/addon-sodium.ts).
// Every function checks its arguments' lengths and throws a RangeError on a mismatch.
#ifndef PH_SODIUM_CALLS_H
#define PH_SODIUM_CALLS_H
#include <node_api.h>
#include <stdbool.h>
// aeadSeal(c, m, ad | null, npub, k, xchacha) -> c.length: ChaCha20-Poly1305 (IETF; 12-byte nonce)
// or XChaCha20-Poly1305 (24-byte nonce); c is m.length + 16 bytes.
napi_value ph_aead_seal(napi_env env, napi_callback_info info);
// aeadOpen(m, c, ad | null, npub, k, xchacha) -> m.length, or -1 when c does not verify.
napi_value ph_aead_open(napi_env env, napi_callback_info info);
// scalarmult(q, n, p) -> boolean (false: p is of low order, q zeroed); scalarmultBase(q, n).
napi_value ph_scalarmult(napi_env env, napi_callback_info info);
napi_value ph_scalarmult_base(napi_env env, napi_callback_info info);
// secretboxSeal(c, m, n, k); secretboxOpen(m, c, n, k) -> boolean (XSalsa20-Poly1305, MAC first).
napi_value ph_secretbox_seal(napi_env env, napi_callback_info info);
napi_value ph_secretbox_open(napi_env env, napi_callback_info info);
// boxBeforenm(out, theirPublic, ourSecret) -> boolean: out (32 bytes) gets crypto_box_beforenm's
// key (X25519, then HSalsa20) for disco; false, and out zeroed, when their key is of low order (the
// shared secret would be all zeros, a key anyone can compute).
napi_value ph_box_beforenm(napi_env env, napi_callback_info info);
// randomBytes(buf); bytesEqual(a, b) -> boolean in constant time (same lengths).
napi_value ph_random_bytes(napi_env env, napi_callback_info info);
napi_value ph_bytes_equal(napi_env env, napi_callback_info info);
// sodium_init, once, before any of the above (addon.c's init): false if libsodium cannot start.
bool ph_sodium_ready(void);
#endif
