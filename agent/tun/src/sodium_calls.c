// libsodium for the agent's JavaScript (sodium_calls.h).
#include "sodium_calls.h"

#include <sodium.h>

#include "errors.h"
#include "napi_args.h"

#define MAX_ARGS 6

static uint8_t no_bytes[1];

typedef struct {
  uint8_t *p;
  size_t n;
} bytes;

// Fetches `want` arguments as bytes; an argument named with a leading '?' may be null or undefined
// (then p = NULL, n = 0). Throws and returns false on a missing or wrong argument.
static bool args(napi_env env, napi_callback_info info, size_t want, const char *const *names, bytes *out, napi_value *extra) {
  size_t argc = MAX_ARGS + 1;
  napi_value a[MAX_ARGS + 1];
  if (napi_get_cb_info(env, info, &argc, a, NULL, NULL) != napi_ok) {
    ph_throw_napi_failure(env, "napi_get_cb_info");
    return false;
  }
  if (argc < want + (extra ? 1 : 0)) {
    ph_throw(env, "ERR_MISSING_ARGS", 0, "expected %zu arguments", want + (extra ? 1 : 0));
    return false;
  }
  for (size_t i = 0; i < want; i++) {
    const char *name = names[i];
    out[i] = (bytes){NULL, 0};
    if (name[0] == '?') {
      name++;
      if (ph_arg_is_nullish(env, a[i])) continue;
    }
    if (!ph_arg_bytes(env, a[i], name, &out[i].p, &out[i].n)) return false;
    if (out[i].p == NULL) out[i].p = no_bytes;  // an empty array may have no storage: never pass NULL for it
  }
  if (extra) *extra = a[want];
  return true;
}

static bool sizes_ok(napi_env env, bool ok, const char *what) {
  if (!ok) ph_throw(env, "ERR_OUT_OF_RANGE", 0, "%s", what);
  return ok;
}

static napi_value number(napi_env env, double v) {
  napi_value r;
  if (napi_create_double(env, v, &r) != napi_ok) return NULL;
  return r;
}

static napi_value boolean(napi_env env, bool v) {
  napi_value r;
  if (napi_get_boolean(env, v, &r) != napi_ok) return NULL;
  return r;
}

static bool flag(napi_env env, napi_value v) {
  bool b = false;
  napi_get_value_bool(env, v, &b);  // anything but a boolean: false
  return b;
}

static const char *const AEAD_SEAL_ARGS[] = {"c", "m", "?ad", "npub", "k"};
static const char *const AEAD_OPEN_ARGS[] = {"m", "c", "?ad", "npub", "k"};

// The five byte arguments of an AEAD call and its sixth, xchacha; *npub is that AEAD's nonce length.
static bool aead_args(napi_env env, napi_callback_info info, const char *const *names, bytes *b, bool *xchacha, size_t *npub) {
  napi_value x;
  if (!args(env, info, 5, names, b, &x)) return false;
  *xchacha = flag(env, x);
  *npub = *xchacha ? crypto_aead_xchacha20poly1305_ietf_NPUBBYTES : crypto_aead_chacha20poly1305_ietf_NPUBBYTES;
  return true;
}

napi_value ph_aead_seal(napi_env env, napi_callback_info info) {
  bytes b[5];
  bool xchacha;
  size_t npub;
  if (!aead_args(env, info, AEAD_SEAL_ARGS, b, &xchacha, &npub)) return NULL;
  if (!sizes_ok(env, b[0].n == b[1].n + crypto_aead_chacha20poly1305_ietf_ABYTES && b[3].n == npub &&
                         b[4].n == crypto_aead_chacha20poly1305_ietf_KEYBYTES && b[0].n <= 0xffffffffu,
                "aeadSeal: c must be m.length + 16 bytes, npub 12 (24 for XChaCha20) and k 32"))
    return NULL;
  unsigned long long clen = 0;
  if (xchacha)
    crypto_aead_xchacha20poly1305_ietf_encrypt(b[0].p, &clen, b[1].p, b[1].n, b[2].p, b[2].n, NULL, b[3].p, b[4].p);
  else
    crypto_aead_chacha20poly1305_ietf_encrypt(b[0].p, &clen, b[1].p, b[1].n, b[2].p, b[2].n, NULL, b[3].p, b[4].p);
  return number(env, (double)clen);
}

napi_value ph_aead_open(napi_env env, napi_callback_info info) {
  bytes b[5];
  bool xchacha;
  size_t npub;
  if (!aead_args(env, info, AEAD_OPEN_ARGS, b, &xchacha, &npub)) return NULL;
  if (!sizes_ok(env, b[1].n >= crypto_aead_chacha20poly1305_ietf_ABYTES && b[0].n == b[1].n - crypto_aead_chacha20poly1305_ietf_ABYTES &&
                         b[3].n == npub && b[4].n == crypto_aead_chacha20poly1305_ietf_KEYBYTES && b[1].n <= 0xffffffffu,
                "aeadOpen: m must be c.length - 16 bytes, npub 12 (24 for XChaCha20) and k 32"))
    return NULL;
  unsigned long long mlen = 0;
  int rc = xchacha
    ? crypto_aead_xchacha20poly1305_ietf_decrypt(b[0].p, &mlen, NULL, b[1].p, b[1].n, b[2].p, b[2].n, b[3].p, b[4].p)
    : crypto_aead_chacha20poly1305_ietf_decrypt(b[0].p, &mlen, NULL, b[1].p, b[1].n, b[2].p, b[2].n, b[3].p, b[4].p);
  return number(env, rc == 0 ? (double)mlen : -1);
}

_Static_assert(crypto_scalarmult_BYTES == 32 && crypto_scalarmult_SCALARBYTES == 32 && crypto_box_BEFORENMBYTES == 32 &&
                   crypto_box_PUBLICKEYBYTES == 32 && crypto_box_SECRETKEYBYTES == 32, "X25519 sizes");

static const char *const SCALARMULT_ARGS[] = {"q", "n", "p"};

// X25519 shapes: three 32-byte arrays, an output and two keys; a failure (a low-order point)
// zeroes the output, as sodium-native does.
static napi_value x25519_call(napi_env env, napi_callback_info info, const char *const names[3],
                              int (*fn)(unsigned char *, const unsigned char *, const unsigned char *), const char *sizes) {
  bytes b[3];
  if (!args(env, info, 3, names, b, NULL)) return NULL;
  if (!sizes_ok(env, b[0].n == 32 && b[1].n == 32 && b[2].n == 32, sizes)) return NULL;
  bool ok = fn(b[0].p, b[1].p, b[2].p) == 0;
  if (!ok) sodium_memzero(b[0].p, b[0].n);
  return boolean(env, ok);
}

napi_value ph_scalarmult(napi_env env, napi_callback_info info) {
  return x25519_call(env, info, SCALARMULT_ARGS, crypto_scalarmult, "scalarmult: q, n and p are 32 bytes");
}

napi_value ph_scalarmult_base(napi_env env, napi_callback_info info) {
  bytes b[2];
  if (!args(env, info, 2, SCALARMULT_ARGS, b, NULL)) return NULL;
  if (!sizes_ok(env, b[0].n == crypto_scalarmult_BYTES && b[1].n == crypto_scalarmult_SCALARBYTES, "scalarmultBase: q and n are 32 bytes"))
    return NULL;
  crypto_scalarmult_base(b[0].p, b[1].p);
  return boolean(env, true);
}

static const char *const SECRETBOX_SEAL_ARGS[] = {"c", "m", "n", "k"};
static const char *const SECRETBOX_OPEN_ARGS[] = {"m", "c", "n", "k"};

napi_value ph_secretbox_seal(napi_env env, napi_callback_info info) {
  bytes b[4];
  if (!args(env, info, 4, SECRETBOX_SEAL_ARGS, b, NULL)) return NULL;
  if (!sizes_ok(env, b[0].n == b[1].n + crypto_secretbox_MACBYTES && b[2].n == crypto_secretbox_NONCEBYTES && b[3].n == crypto_secretbox_KEYBYTES,
                "secretboxSeal: c must be m.length + 16 bytes, n 24 and k 32"))
    return NULL;
  crypto_secretbox_easy(b[0].p, b[1].p, b[1].n, b[2].p, b[3].p);
  return boolean(env, true);
}

napi_value ph_secretbox_open(napi_env env, napi_callback_info info) {
  bytes b[4];
  if (!args(env, info, 4, SECRETBOX_OPEN_ARGS, b, NULL)) return NULL;
  if (!sizes_ok(env, b[1].n >= crypto_secretbox_MACBYTES && b[0].n == b[1].n - crypto_secretbox_MACBYTES &&
                         b[2].n == crypto_secretbox_NONCEBYTES && b[3].n == crypto_secretbox_KEYBYTES,
                "secretboxOpen: m must be c.length - 16 bytes, n 24 and k 32"))
    return NULL;
  return boolean(env, crypto_secretbox_open_easy(b[0].p, b[1].p, b[1].n, b[2].p, b[3].p) == 0);
}

static const char *const BOX_BEFORENM_ARGS[] = {"out", "theirPublic", "ourSecret"};

// crypto_box_beforenm for disco: sodium-native has NaCl box's sealing with a precomputed key
// (crypto_secretbox_easy is crypto_box_easy_afternm) but not the precomputation itself.
napi_value ph_box_beforenm(napi_env env, napi_callback_info info) {
  return x25519_call(env, info, BOX_BEFORENM_ARGS, crypto_box_beforenm, "boxBeforenm: 32-byte out, public key and secret key");
}

static const char *const ONE_ARG[] = {"buf"};
static const char *const TWO_ARGS[] = {"a", "b"};

napi_value ph_random_bytes(napi_env env, napi_callback_info info) {
  bytes b[1];
  if (!args(env, info, 1, ONE_ARG, b, NULL)) return NULL;
  randombytes_buf(b[0].p, b[0].n);
  return NULL;
}

napi_value ph_bytes_equal(napi_env env, napi_callback_info info) {
  bytes b[2];
  if (!args(env, info, 2, TWO_ARGS, b, NULL)) return NULL;
  if (!sizes_ok(env, b[0].n == b[1].n, "bytesEqual: a and b must have the same length")) return NULL;
  return boolean(env, sodium_memcmp(b[0].p, b[1].p, b[0].n) == 0);
}

bool ph_sodium_ready(void) {
  return sodium_init() >= 0;
}
