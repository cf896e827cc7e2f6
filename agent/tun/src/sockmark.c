// Sockets whose packets carry a firewall mark (SO_MARK) from the very first one: the agent's own
// TCP connections (relays, coordinator) are created here, marked, then handed to Node (net.Socket
// {fd}) to connect, so the SYN already matches the "fwmark ... lookup main" rule and never enters
// an exit node's default route. Node's net.Socket cannot set SO_MARK itself.
#include "sockmark.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "napi_args.h"

int ph_set_mark(int fd, uint32_t mark) {
  if (mark == 0) return 0;
  return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark);
}

void ph_throw_mark_error(napi_env env, int err, uint32_t mark) {
  ph_throw(env, ph_errno_name(err), err, "cannot set socket mark 0x%x: %s", mark,
           err == EPERM ? "permission denied (needs CAP_NET_ADMIN)" : strerror(err));
}

// markedTcpSocket(family: 4|6, mark) -> fd of an unconnected, non-blocking TCP socket with SO_MARK
// set. Family 6 is dual-stack (IPV6_V6ONLY off): it reaches IPv4 through ::ffff:0:0/96.
static napi_value marked_tcp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  uint32_t family, mark;
  if (!ph_arg_u32(env, a[0], "family", &family) || !ph_arg_u32(env, a[1], "mark", &mark)) return NULL;
  if (family != 4 && family != 6) {
    ph_throw(env, "ERR_INVALID_ARG_VALUE", EINVAL, "family must be 4 or 6");
    return NULL;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ph_throw_errno(env, errno, "cannot create TCP socket");
    return NULL;
  }
  if (family == 6) {
    int off = 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off);
  }
  if (ph_set_mark(fd, mark) < 0) {
    int err = errno;
    close(fd);
    ph_throw_mark_error(env, err, mark);
    return NULL;
  }
  napi_value out;
  PH_NAPI(env, napi_create_int32(env, fd, &out));
  return out;
}

// socketMark(fd) -> the SO_MARK of a socket (tests and status: what the kernel will route by).
static napi_value socket_mark(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  uint32_t fd;
  if (!ph_arg_u32(env, a[0], "fd", &fd)) return NULL;
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt((int)fd, SOL_SOCKET, SO_MARK, &mark, &len) < 0) {
    ph_throw_errno(env, errno, "cannot read socket mark");
    return NULL;
  }
  napi_value out;
  PH_NAPI(env, napi_create_uint32(env, mark, &out));
  return out;
}

napi_status ph_sockmark_define(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"markedTcpSocket", NULL, marked_tcp_socket, NULL, NULL, NULL, napi_default, NULL},
      {"socketMark", NULL, socket_mark, NULL, NULL, NULL, napi_default, NULL},
  };
  return napi_define_properties(env, exports, 2, props);
}
