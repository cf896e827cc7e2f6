// JS error construction for the addon: every thrown error is one line with a `code` property.
#ifndef PH_ERRORS_H
#define PH_ERRORS_H

#include <node_api.h>

// Creates `new Error(message)` with err.code = code (and err.errno = errnum when errnum != 0).
napi_value ph_make_error(napi_env env, const char *code, int errnum, const char *message);

// Throws an Error with the given code; the message is printf-formatted.
void ph_throw(napi_env env, const char *code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

// Throws an Error whose code is the errno name (EPERM, ...), message "<prefix>: <strerror>".
void ph_throw_errno(napi_env env, int errnum, const char *prefix);

// The symbolic name of an errno value ("EAGAIN"), never NULL.
const char *ph_errno_name(int errnum);

// Wraps a napi call inside a function returning napi_value: on failure throws and returns NULL.
#define PH_NAPI(env, call)                                                     \
  do {                                                                         \
    if ((call) != napi_ok) {                                                   \
      ph_throw_napi_failure(env, #call);                                       \
      return NULL;                                                             \
    }                                                                          \
  } while (0)

void ph_throw_napi_failure(napi_env env, const char *what);

#endif
