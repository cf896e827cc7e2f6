// crypto_box_beforenm for disco: sodium-native has NaCl box's sealing with a precomputed key
// (crypto_secretbox_easy is crypto_box_easy_afternm) but not the precomputation itself.
#include "box.h"

#include <sodium.h>
#include <string.h>

#include "errors.h"
#include "napi_args.h"

napi_value ph_box_beforenm(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc < 3) {
    ph_throw(env, "ERR_MISSING_ARGS", 0, "boxBeforenm(out, theirPublic, ourSecret)");
    return NULL;
  }
  uint8_t *out, *pk, *sk;
  size_t out_len, pk_len, sk_len;
  if (!ph_arg_bytes(env, a[0], "out", &out, &out_len) || !ph_arg_bytes(env, a[1], "theirPublic", &pk, &pk_len) ||
      !ph_arg_bytes(env, a[2], "ourSecret", &sk, &sk_len))
    return NULL;
  if (out_len != crypto_box_BEFORENMBYTES || pk_len != crypto_box_PUBLICKEYBYTES || sk_len != crypto_box_SECRETKEYBYTES) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "boxBeforenm: 32-byte out, public key and secret key");
    return NULL;
  }
  if (sodium_init() < 0) {
    ph_throw(env, "ERR_CRYPTO", 0, "libsodium failed to initialise");
    return NULL;
  }
  bool ok = crypto_box_beforenm(out, pk, sk) == 0;
  if (!ok) sodium_memzero(out, out_len);
  napi_value result;
  PH_NAPI(env, napi_get_boolean(env, ok, &result));
  return result;
}
