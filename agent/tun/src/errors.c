// Error helpers: one-line messages, errno names from libuv's table.
#include "errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

const char *ph_errno_name(int errnum) {
  // libuv error codes on Unix are the negated errno values.
  const char *name = uv_err_name(-errnum);
  return name ? name : "EUNKNOWN";
}

napi_value ph_make_error(napi_env env, const char *code, int errnum, const char *message) {
  napi_value msg, code_v, err, errno_v;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v) != napi_ok) return NULL;
  if (napi_create_error(env, code_v, msg, &err) != napi_ok) return NULL;
  if (errnum != 0 && napi_create_int32(env, -errnum, &errno_v) == napi_ok) {
    napi_set_named_property(env, err, "errno", errno_v);
  }
  return err;
}

void ph_throw(napi_env env, const char *code, int errnum, const char *fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_value err = ph_make_error(env, code, errnum, buf);
  if (err) napi_throw(env, err);
}

void ph_throw_errno(napi_env env, int errnum, const char *prefix) {
  ph_throw(env, ph_errno_name(errnum), errnum, "%s: %s", prefix, strerror(errnum));
}

void ph_throw_napi_failure(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  ph_throw(env, "ERR_NATIVE", 0, "native call failed: %s (%s)", what,
           info && info->error_message ? info->error_message : "unknown");
}
