// UDP socket: dual-stack open/bind with large buffers and GSO/GRO probing; the `Udp` class.
#include "udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "napi_args.h"
#include "sockmark.h"

static void udp_free(ph_io *io) {
  ph_udp_free_rx((ph_udp *)io);
  free(io);
}

// Large socket buffers absorb bursts; *BUFFORCE (root) lifts the rmem_max cap, else best effort.
static void set_buffer(int fd, int force_opt, int opt, int bytes) {
  if (bytes <= 0) return;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &bytes, sizeof bytes) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof bytes);
}

// Probes UDP_SEGMENT (Linux >= 4.18): getsockopt succeeds where the kernel knows the option.
static int gso_supported(int fd) {
  int v = 0;
  socklen_t l = sizeof v;
  return getsockopt(fd, SOL_UDP, UDP_SEGMENT, &v, &l) == 0;
}

static void describe(const uint8_t a[PH_ADDR20_SIZE], int family, uint16_t port, char *out, size_t n) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (a && a[0] == 4) inet_ntop(AF_INET, a + 4, ip, sizeof ip);
  else if (a && a[0] == 6) inet_ntop(AF_INET6, a + 4, ip, sizeof ip);
  else snprintf(ip, sizeof ip, "%s", family == AF_INET ? "0.0.0.0" : "::");
  snprintf(out, n, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
}

// new Udp(family: 0|4|6, bind: Uint8Array(20) | null, port, bufferBytes, flags, mark?)
//   family 0 = dual-stack IPv6 socket, falling back to IPv4 where IPv6 is unavailable.
//   flags: PH_UDP_NO_GSO | PH_UDP_NO_GRO
//   mark: SO_MARK for every packet sent (0 or absent: none), set before the first one leaves.
static napi_value udp_construct(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value a[6], self;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, &self, NULL));
  uint32_t fam_arg, port, bufsize, flags, mark = 0;
  uint8_t *bind_addr = NULL;
  size_t bind_len = 0;
  if (!ph_arg_u32(env, a[0], "family", &fam_arg) || !ph_arg_u32(env, a[2], "port", &port) ||
      !ph_arg_u32(env, a[3], "bufferBytes", &bufsize) || !ph_arg_u32(env, a[4], "flags", &flags))
    return NULL;
  if (argc >= 6 && !ph_arg_is_nullish(env, a[5]) && !ph_arg_u32(env, a[5], "mark", &mark)) return NULL;
  if (!ph_arg_is_nullish(env, a[1]) && !ph_arg_bytes(env, a[1], "bind", &bind_addr, &bind_len)) return NULL;
  if ((fam_arg != 0 && fam_arg != 4 && fam_arg != 6) || port > 65535 || (bind_addr && bind_len < PH_ADDR20_SIZE) ||
      (bind_addr && bind_addr[0] != 4 && bind_addr[0] != 6) || bufsize > (1u << 30)) {
    ph_throw(env, "ERR_INVALID_ARG_VALUE", EINVAL, "invalid UDP socket options");
    return NULL;
  }
  if (bind_addr) fam_arg = bind_addr[0];
  int family = fam_arg == 4 ? AF_INET : AF_INET6;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && fam_arg == 0 && errno == EAFNOSUPPORT) {
    family = AF_INET;
    fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (fd < 0) {
    ph_throw_errno(env, errno, "cannot create UDP socket");
    return NULL;
  }
  int v4mapped = 0;
  if (family == AF_INET6) {
    int v6only = fam_arg == 6 ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    v4mapped = !v6only;
  }
  if (ph_set_mark(fd, mark) < 0) {
    int err = errno;
    close(fd);
    ph_throw_mark_error(env, err, mark);
    return NULL;
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, (int)bufsize);
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, (int)bufsize);

  ph_sockaddr sa;
  socklen_t sl;
  memset(&sa, 0, sizeof sa);
  if (bind_addr) {
    uint8_t tmp[PH_ADDR20_SIZE];
    memcpy(tmp, bind_addr, PH_ADDR20_SIZE);
    tmp[2] = port >> 8;
    tmp[3] = port & 0xff;
    ph_addr20_to_sockaddr(tmp, family, 0, &sa, &sl);
  } else if (family == AF_INET) {
    sa.in4.sin_family = AF_INET;
    sa.in4.sin_port = htons(port);
    sl = sizeof sa.in4;
  } else {
    sa.in6.sin6_family = AF_INET6;
    sa.in6.sin6_port = htons(port);
    sl = sizeof sa.in6;
  }
  if (bind(fd, &sa.sa, sl) < 0) {
    int err = errno;
    close(fd);
    char where[80];
    describe(bind_addr, family, port, where, sizeof where);
    const char *why = err == EADDRINUSE ? "address already in use"
                    : err == EADDRNOTAVAIL ? "address not available on this host"
                    : err == EACCES ? "permission denied" : strerror(err);
    ph_throw(env, ph_errno_name(err), err, "cannot bind UDP socket to %s: %s", where, why);
    return NULL;
  }
  sl = sizeof sa;
  getsockname(fd, &sa.sa, &sl);
  uint8_t local[PH_ADDR20_SIZE];
  ph_addr20_from_sockaddr(&sa, local);

  ph_udp *u = calloc(1, sizeof *u);
  if (!u) {
    close(fd);
    ph_throw(env, "ENOMEM", ENOMEM, "out of memory");
    return NULL;
  }
  u->family = family;
  u->v4mapped = v4mapped;
  u->gso = !(flags & PH_UDP_NO_GSO) && gso_supported(fd);
  int one = 1;
  u->gro = !(flags & PH_UDP_NO_GRO) && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  u->io.needs_addrs = 1;
  u->io.read_batch = ph_udp_read_batch;
  u->io.has_pending = ph_udp_has_pending;
  u->io.on_receiver = ph_udp_on_receiver;
  u->io.free_self = udp_free;
  u->io.resource_name = "PinholeUdp";
  if (ph_io_wrap(&u->io, env, self, fd) != napi_ok) {
    close(fd);
    free(u);
    ph_throw_napi_failure(env, "napi_wrap");
    return NULL;
  }
  napi_value v_local, v_family, v_dual, v_gso, v_gro;
  void *copy;
  PH_NAPI(env, napi_create_buffer_copy(env, PH_ADDR20_SIZE, local, &copy, &v_local));
  PH_NAPI(env, napi_create_uint32(env, family == AF_INET ? 4 : 6, &v_family));
  PH_NAPI(env, napi_get_boolean(env, v4mapped, &v_dual));
  PH_NAPI(env, napi_get_boolean(env, u->gso, &v_gso));
  PH_NAPI(env, napi_get_boolean(env, u->gro, &v_gro));
  napi_property_descriptor props[] = {
      {"localAddress", NULL, NULL, NULL, NULL, v_local, napi_enumerable, NULL},
      {"family", NULL, NULL, NULL, NULL, v_family, napi_enumerable, NULL},
      {"dualStack", NULL, NULL, NULL, NULL, v_dual, napi_enumerable, NULL},
      {"gso", NULL, NULL, NULL, NULL, v_gso, napi_enumerable, NULL},
      {"gro", NULL, NULL, NULL, NULL, v_gro, napi_enumerable, NULL},
  };
  PH_NAPI(env, napi_define_properties(env, self, 5, props));
  return self;
}

napi_value ph_udp_define(napi_env env) {
  napi_property_descriptor props[16];
  size_t n = ph_io_methods(props);
  props[n++] = (napi_property_descriptor){"sendBatch", NULL, ph_udp_send_batch, NULL, NULL, NULL, napi_default, NULL};
  props[n++] = (napi_property_descriptor){"send", NULL, ph_udp_send, NULL, NULL, NULL, napi_default, NULL};
  napi_value cls;
  PH_NAPI(env, napi_define_class(env, "Udp", NAPI_AUTO_LENGTH, udp_construct, NULL, n, props, &cls));
  return cls;
}
