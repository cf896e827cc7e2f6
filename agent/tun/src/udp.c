// UDP socket: dual-stack open/bind with large buffers, recvmmsg into the JS slab.
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

static uint32_t udp_read_batch(ph_io *io, int *drained) {
  ph_udp *u = (ph_udp *)io;
  const uint32_t max = io->max_batch;
  for (uint32_t i = 0; i < max; i++) {
    u->rx_msgs[i].msg_hdr.msg_namelen = sizeof(ph_sockaddr);
    u->rx_msgs[i].msg_hdr.msg_flags = 0;
  }
  int r;
  do r = recvmmsg(io->fd, u->rx_msgs, max, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    int err = errno;
    *drained = 1;
    if (err == EAGAIN || err == EWOULDBLOCK) return 0;
    if (err == EBADF || err == ENOTSOCK) {
      io->fatal_errno = err;
      return 0;
    }
    io->c.rx_errors++;  // e.g. a queued ICMP error; the next read goes on
    ph_io_record_errno(io, err);
    return 0;
  }
  uint32_t out = 0;
  for (uint32_t i = 0; i < (uint32_t)r; i++) {
    struct mmsghdr *m = &u->rx_msgs[i];
    if (m->msg_hdr.msg_flags & MSG_TRUNC) {
      io->c.rx_drops++;  // larger than a slot
      ph_io_record_errno(io, EMSGSIZE);
      continue;
    }
    uint32_t len = m->msg_len;
    if (out != i) {  // close the gap left by a dropped datagram (rare)
      memmove(io->slab + (size_t)out * io->slot_size + io->headroom,
              io->slab + (size_t)i * io->slot_size + io->headroom, len);
    }
    io->lengths[out] = len;
    ph_addr20_from_sockaddr(&u->rx_names[i], io->addrs + (size_t)out * PH_ADDR20_SIZE);
    io->c.rx_packets++;
    io->c.rx_bytes += len;
    out++;
  }
  *drained = (uint32_t)r < max;
  return out;
}

static void free_rx_vectors(ph_udp *u) {
  free(u->rx_msgs);
  free(u->rx_iov);
  free(u->rx_names);
  u->rx_msgs = NULL;
  u->rx_iov = NULL;
  u->rx_names = NULL;
}

// Builds the recvmmsg vectors for the new slab: one iovec per slot, once.
static bool udp_on_receiver(ph_io *io) {
  ph_udp *u = (ph_udp *)io;
  free_rx_vectors(u);
  u->rx_msgs = calloc(io->max_batch, sizeof *u->rx_msgs);
  u->rx_iov = calloc(io->max_batch, sizeof *u->rx_iov);
  u->rx_names = calloc(io->max_batch, sizeof *u->rx_names);
  if (!u->rx_msgs || !u->rx_iov || !u->rx_names) {
    free_rx_vectors(u);
    io->max_batch = 0;
    ph_throw(io->env, "ENOMEM", ENOMEM, "out of memory");
    return false;
  }
  for (uint32_t i = 0; i < io->max_batch; i++) {
    u->rx_iov[i].iov_base = io->slab + (size_t)i * io->slot_size + io->headroom;
    u->rx_iov[i].iov_len = io->capacity;
    u->rx_msgs[i].msg_hdr.msg_iov = &u->rx_iov[i];
    u->rx_msgs[i].msg_hdr.msg_iovlen = 1;
    u->rx_msgs[i].msg_hdr.msg_name = &u->rx_names[i];
  }
  return true;
}

static void udp_free(ph_io *io) {
  free_rx_vectors((ph_udp *)io);
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

// new Udp(family: 0|4|6, bind: Uint8Array(20) | null, port, bufferBytes)
//   family 0 = dual-stack IPv6 socket, falling back to IPv4 where IPv6 is unavailable.
static napi_value udp_construct(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value a[4], self;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, &self, NULL));
  uint32_t fam_arg, port, bufsize;
  uint8_t *bind_addr = NULL;
  size_t bind_len = 0;
  if (!ph_arg_u32(env, a[0], "family", &fam_arg) || !ph_arg_u32(env, a[2], "port", &port) ||
      !ph_arg_u32(env, a[3], "bufferBytes", &bufsize))
    return NULL;
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
  u->gso = gso_supported(fd) && !getenv("PINHOLE_NO_GSO");
  u->io.needs_addrs = 1;
  u->io.read_batch = udp_read_batch;
  u->io.on_receiver = udp_on_receiver;
  u->io.free_self = udp_free;
  u->io.resource_name = "PinholeUdp";
  if (ph_io_wrap(&u->io, env, self, fd) != napi_ok) {
    close(fd);
    free(u);
    ph_throw_napi_failure(env, "napi_wrap");
    return NULL;
  }
  napi_value v_local, v_family, v_dual;
  void *copy;
  PH_NAPI(env, napi_create_buffer_copy(env, PH_ADDR20_SIZE, local, &copy, &v_local));
  PH_NAPI(env, napi_create_uint32(env, family == AF_INET ? 4 : 6, &v_family));
  PH_NAPI(env, napi_get_boolean(env, v4mapped, &v_dual));
  napi_property_descriptor props[] = {
      {"localAddress", NULL, NULL, NULL, NULL, v_local, napi_enumerable, NULL},
      {"family", NULL, NULL, NULL, NULL, v_family, napi_enumerable, NULL},
      {"dualStack", NULL, NULL, NULL, NULL, v_dual, napi_enumerable, NULL},
  };
  PH_NAPI(env, napi_define_properties(env, self, 3, props));
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
