// NaCl box's precomputation for disco (proto/disco/messages.ts), from libsodium.
#ifndef PH_BOX_H
#define PH_BOX_H
#include <node_api.h>
// boxBeforenm(out, theirPublic, ourSecret) -> boolean: out (32 bytes) gets crypto_box_beforenm's
// key (X25519, then HSalsa20); false, and out zeroed, when their key is of low order (the shared
// secret would be all zeros, a key anyone can compute).
napi_value ph_box_beforenm(napi_env env, napi_callback_info info);
#endif
