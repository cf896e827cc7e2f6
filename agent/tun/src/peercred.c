// SO_PEERCRED + SO_PEERGROUPS: the kernel's record of the process that connect()ed to a unix
// socket, taken at connect time (so it cannot be swapped by a later exec or pid reuse), and
// getgrnam_r/getgrgid_r so group names resolve through NSS like everywhere else on the host.
#include "peercred.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "errors.h"
#include "napi_args.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

// Groups a process may hold (NGROUPS_MAX on Linux is 65536).
#define MAX_GROUPS 65536

static napi_value groups_array(napi_env env, int fd) {
  gid_t small[64];
  gid_t *buf = small;
  socklen_t len = sizeof small;
  napi_value out;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len) != 0) {
    if (errno == ENOPROTOOPT) {  // kernel before 4.13: the caller reads /proc instead
      PH_NAPI(env, napi_get_null(env, &out));
      return out;
    }
    if (errno != ERANGE || len > MAX_GROUPS * sizeof(gid_t)) {
      ph_throw_errno(env, errno, "getsockopt(SO_PEERGROUPS)");
      return NULL;
    }
    buf = malloc(len);  // len now holds the size needed
    if (!buf) {
      ph_throw_errno(env, ENOMEM, "getsockopt(SO_PEERGROUPS)");
      return NULL;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, buf, &len) != 0) {
      int e = errno;
      free(buf);
      ph_throw_errno(env, e, "getsockopt(SO_PEERGROUPS)");
      return NULL;
    }
  }
  size_t n = len / sizeof(gid_t);
  napi_value v;
  if (napi_create_array_with_length(env, n, &out) != napi_ok) goto fail;
  for (size_t i = 0; i < n; i++) {
    if (napi_create_uint32(env, buf[i], &v) != napi_ok || napi_set_element(env, out, (uint32_t)i, v) != napi_ok) goto fail;
  }
  if (buf != small) free(buf);
  return out;
fail:
  if (buf != small) free(buf);
  ph_throw_napi_failure(env, "groups array");
  return NULL;
}

napi_value ph_peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t fd;
  if (argc < 1 || !ph_arg_u32(env, argv[0], "fd", &fd)) return NULL;
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt((int)fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    ph_throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
    return NULL;
  }
  napi_value groups = groups_array(env, (int)fd);
  if (!groups) return NULL;
  napi_value out, pid, uid, gid;
  PH_NAPI(env, napi_create_object(env, &out));
  PH_NAPI(env, napi_create_int32(env, cred.pid, &pid));
  PH_NAPI(env, napi_create_uint32(env, cred.uid, &uid));
  PH_NAPI(env, napi_create_uint32(env, cred.gid, &gid));
  PH_NAPI(env, napi_set_named_property(env, out, "pid", pid));
  PH_NAPI(env, napi_set_named_property(env, out, "uid", uid));
  PH_NAPI(env, napi_set_named_property(env, out, "gid", gid));
  PH_NAPI(env, napi_set_named_property(env, out, "groups", groups));
  return out;
}

// Runs getgrnam_r/getgrgid_r with a buffer grown on ERANGE; returns the gid/name as a JS value or null.
static napi_value group_lookup(napi_env env, const char *name, gid_t gid) {
  size_t size = 1024;
  napi_value out;
  for (;;) {
    char *buf = malloc(size);
    if (!buf) {
      ph_throw_errno(env, ENOMEM, "group lookup");
      return NULL;
    }
    struct group gr, *found = NULL;
    int rc = name ? getgrnam_r(name, &gr, buf, size, &found) : getgrgid_r(gid, &gr, buf, size, &found);
    if (rc == ERANGE && size < (1u << 24)) {
      free(buf);
      size *= 4;
      continue;
    }
    napi_status st;
    if (rc != 0 || !found) st = napi_get_null(env, &out);  // no such group (or NSS failed): unknown
    else if (name) st = napi_create_uint32(env, found->gr_gid, &out);
    else st = napi_create_string_utf8(env, found->gr_name, NAPI_AUTO_LENGTH, &out);
    free(buf);
    if (st != napi_ok) {
      ph_throw_napi_failure(env, "group lookup");
      return NULL;
    }
    return out;
  }
}

napi_value ph_group_id(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[256];
  size_t n = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &n) != napi_ok) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "group name must be a string");
    return NULL;
  }
  if (n == 0 || n >= sizeof name - 1 || strlen(name) != n) {
    napi_value null;
    PH_NAPI(env, napi_get_null(env, &null));
    return null;
  }
  return group_lookup(env, name, 0);
}

napi_value ph_group_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  uint32_t gid;
  if (argc < 1 || !ph_arg_u32(env, argv[0], "gid", &gid)) return NULL;
  return group_lookup(env, NULL, (gid_t)gid);
}
