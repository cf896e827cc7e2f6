// Argument parsing shared by the TUN and UDP classes.
#include "napi_args.h"

#include "errors.h"

static bool type_error(napi_env env, const char *what, const char *expected) {
  ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "%s must be %s", what, expected);
  return false;
}

bool ph_arg_bytes(napi_env env, napi_value v, const char *what, uint8_t **data, size_t *len) {
  bool is = false;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
    napi_typedarray_type type;
    size_t length, offset;
    napi_value ab;
    if (napi_get_typedarray_info(env, v, &type, &length, &p, &ab, &offset) != napi_ok)
      return type_error(env, what, "a Buffer or TypedArray");
    size_t elem = 1;
    switch (type) {
      case napi_int16_array: case napi_uint16_array: elem = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
      default: elem = 1;
    }
    *data = p;
    *len = length * elem;
    return true;
  }
  if (napi_is_dataview(env, v, &is) == napi_ok && is) {
    size_t length, offset;
    napi_value ab;
    if (napi_get_dataview_info(env, v, &length, &p, &ab, &offset) != napi_ok)
      return type_error(env, what, "a Buffer or TypedArray");
    *data = p;
    *len = length;
    return true;
  }
  if (napi_is_arraybuffer(env, v, &is) == napi_ok && is) {
    size_t length;
    if (napi_get_arraybuffer_info(env, v, &p, &length) != napi_ok)
      return type_error(env, what, "an ArrayBuffer");
    *data = p;
    *len = length;
    return true;
  }
  return type_error(env, what, "a Buffer, TypedArray or ArrayBuffer");
}

bool ph_arg_u32array(napi_env env, napi_value v, const char *what, uint32_t **data, size_t *len) {
  bool is = false;
  napi_typedarray_type type;
  size_t length, offset;
  napi_value ab;
  void *p = NULL;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, &length, &p, &ab, &offset) != napi_ok ||
      type != napi_uint32_array)
    return type_error(env, what, "a Uint32Array");
  *data = p;
  *len = length;
  return true;
}

bool ph_arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out) {
  napi_valuetype t;
  double d;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return type_error(env, what, "a number");
  napi_get_value_double(env, v, &d);
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "%s must be an integer in 0..2^32-1", what);
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

bool ph_arg_function(napi_env env, napi_value v, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_function) return type_error(env, what, "a function");
  return true;
}

bool ph_arg_is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  return t == napi_null || t == napi_undefined;
}
