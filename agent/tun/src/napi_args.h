// Argument parsing for the addon's methods. Each helper throws a TypeError/RangeError and
// returns false when the argument does not fit.
#ifndef PH_NAPI_ARGS_H
#define PH_NAPI_ARGS_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Bytes of a Buffer, any TypedArray, DataView or ArrayBuffer.
bool ph_arg_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *len);
// Elements of a Uint32Array.
bool ph_arg_u32array(napi_env env, napi_value v, const char *what, uint32_t **data, size_t *len);
bool ph_arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out);
bool ph_arg_function(napi_env env, napi_value v, const char *what);
// True when v is null or undefined.
bool ph_arg_is_nullish(napi_env env, napi_value v);

#endif
