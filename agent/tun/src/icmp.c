// ICMP echo socket for the userspace NAT: the unprivileged ping socket
// (socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), allowed when the process's group is inside
// net.ipv4.ping_group_range), else a raw socket (root / CAP_NET_RAW) filtered to echo replies.
//
// Receive (shared ph_io slab): each slot holds one ICMP message starting at its type byte (the
// IPv4 header a raw socket delivers is stripped here), addrs the 20-byte source, port 0.
// Send: send(message, addr20) -> boolean; the message starts at the type byte. A ping socket
// replaces the echo identifier with its own (the `ident` property) and computes the checksum;
// a raw socket sends the message as given (ICMPv6 checksums are always filled by the kernel).
#include "icmp.h"

#include <errno.h>
#include <linux/icmp.h>
#include <netinet/icmp6.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr20.h"
#include "errors.h"
#include "io_handle.h"
#include "napi_args.h"

typedef struct ph_icmp {
  ph_io io;  // first member: a ph_icmp* is a ph_io*
  int family;
  int raw;
} ph_icmp;

static uint32_t icmp_read_batch(ph_io *io, int *drained) {
  ph_icmp *s = (ph_icmp *)io;
  uint32_t n = 0, dropped = 0;
  while (n < io->max_batch) {
    uint8_t *slot = io->slab + (size_t)n * io->slot_size + io->headroom;
    ph_sockaddr from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(io->fd, slot, io->capacity, MSG_TRUNC, &from.sa, &fl);
    if (r < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) { *drained = 1; break; }
      // ICMP errors queued on the socket (IP_RECVERR is off, so rarely): skip, keep reading.
      io->c.rx_errors++;
      ph_io_record_errno(io, err);
      if (++dropped > io->max_batch) { *drained = 1; break; }
      continue;
    }
    size_t len = (size_t)r;
    if (len > io->capacity) {  // truncated: the message did not fit the slot
      io->c.rx_drops++;
      if (++dropped > io->max_batch) { *drained = 1; break; }
      continue;
    }
    if (s->raw && s->family == AF_INET) {
      // Raw IPv4 sockets deliver the IP header: strip it so JS always sees the ICMP message.
      size_t ihl = len > 0 ? (size_t)(slot[0] & 0x0f) * 4 : 0;
      if (ihl < 20 || ihl > len) {
        io->c.rx_drops++;
        continue;
      }
      len -= ihl;
      memmove(slot, slot + ihl, len);
    }
    io->lengths[n] = (uint32_t)len;
    ph_addr20_from_sockaddr(&from, io->addrs + (size_t)n * PH_ADDR20_SIZE);
    io->addrs[(size_t)n * PH_ADDR20_SIZE + 2] = 0;
    io->addrs[(size_t)n * PH_ADDR20_SIZE + 3] = 0;
    io->c.rx_packets++;
    io->c.rx_bytes += len;
    n++;
  }
  return n;
}

static void icmp_free(ph_io *io) { free(io); }

// Opens the ping socket, or the raw one where the ping socket is not permitted.
static int open_icmp(int family, int *raw, int *err_out) {
  int proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd >= 0) {
    *raw = 0;
    return fd;
  }
  int first = errno;
  if (first != EACCES && first != EPERM) {
    *err_out = first;
    return -1;
  }
  fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) {
    *err_out = errno == EPERM || errno == EACCES ? first : errno;
    return -1;
  }
  *raw = 1;
  // A raw socket gets a copy of every ICMP message: keep only echo replies.
  if (family == AF_INET) {
    struct icmp_filter f = {.data = ~(1u << ICMP_ECHOREPLY)};
    setsockopt(fd, SOL_RAW, ICMP_FILTER, &f, sizeof f);
  } else {
    struct icmp6_filter f;
    ICMP6_FILTER_SETBLOCKALL(&f);
    ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
    setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof f);
  }
  return fd;
}

// new Icmp(family: 4 | 6, bufferBytes)
static napi_value icmp_construct(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2], self;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, &self, NULL));
  uint32_t fam, bufsize;
  if (!ph_arg_u32(env, a[0], "family", &fam) || !ph_arg_u32(env, a[1], "bufferBytes", &bufsize)) return NULL;
  if ((fam != 4 && fam != 6) || bufsize > (1u << 30)) {
    ph_throw(env, "ERR_INVALID_ARG_VALUE", EINVAL, "invalid ICMP socket options");
    return NULL;
  }
  int family = fam == 4 ? AF_INET : AF_INET6;
  int raw = 0, err = 0;
  int fd = open_icmp(family, &raw, &err);
  if (fd < 0) {
    const char *why = err == EACCES || err == EPERM
                          ? "not permitted (needs net.ipv4.ping_group_range to include our group, or CAP_NET_RAW)"
                          : strerror(err);
    ph_throw(env, ph_errno_name(err), err, "cannot open an ICMPv%u socket: %s", fam, why);
    return NULL;
  }
  int bytes = (int)bufsize;
  if (bytes > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes);
  uint32_t ident = 0;
  if (!raw) {
    // Binding port 0 makes the kernel pick the echo identifier now, so JS can report it.
    ph_sockaddr sa;
    memset(&sa, 0, sizeof sa);
    socklen_t sl = family == AF_INET ? sizeof sa.in4 : sizeof sa.in6;
    sa.sa.sa_family = (sa_family_t)family;
    if (bind(fd, &sa.sa, sl) == 0 && getsockname(fd, &sa.sa, &sl) == 0)
      ident = ntohs(family == AF_INET ? sa.in4.sin_port : sa.in6.sin6_port);
  }
  ph_icmp *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    ph_throw(env, "ENOMEM", ENOMEM, "out of memory");
    return NULL;
  }
  s->family = family;
  s->raw = raw;
  s->io.needs_addrs = 1;
  s->io.read_batch = icmp_read_batch;
  s->io.free_self = icmp_free;
  s->io.resource_name = "PinholeIcmp";
  if (ph_io_wrap(&s->io, env, self, fd) != napi_ok) {
    close(fd);
    free(s);
    ph_throw_napi_failure(env, "napi_wrap");
    return NULL;
  }
  napi_value v_kind, v_family, v_ident;
  PH_NAPI(env, napi_create_string_utf8(env, raw ? "raw" : "dgram", NAPI_AUTO_LENGTH, &v_kind));
  PH_NAPI(env, napi_create_uint32(env, fam, &v_family));
  PH_NAPI(env, napi_create_uint32(env, ident, &v_ident));
  napi_property_descriptor props[] = {
      {"kind", NULL, NULL, NULL, NULL, v_kind, napi_enumerable, NULL},
      {"family", NULL, NULL, NULL, NULL, v_family, napi_enumerable, NULL},
      {"ident", NULL, NULL, NULL, NULL, v_ident, napi_enumerable, NULL},
  };
  PH_NAPI(env, napi_define_properties(env, self, 3, props));
  return self;
}

// send(message, addr20) -> true when the kernel took it, false when dropped or refused (counted)
static napi_value icmp_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  ph_io *io = ph_io_this(env, info, &argc, a, true);
  if (!io) return NULL;
  ph_icmp *s = (ph_icmp *)io;
  uint8_t *msg, *addr;
  size_t msg_len, addr_len;
  if (!ph_arg_bytes(env, a[0], "message", &msg, &msg_len) || !ph_arg_bytes(env, a[1], "addr", &addr, &addr_len))
    return NULL;
  if (addr_len < PH_ADDR20_SIZE || msg_len < 8 || msg_len > 65000) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "need an ICMP message of 8..65000 bytes and a 20-byte address");
    return NULL;
  }
  ph_sockaddr sa;
  socklen_t sl;
  bool ok = false;
  if (ph_addr20_to_sockaddr(addr, s->family, 0, &sa, &sl) != 0) {
    io->c.tx_errors++;
    ph_io_record_errno(io, EAFNOSUPPORT);
  } else {
    ssize_t r;
    do r = sendto(io->fd, msg, msg_len, 0, &sa.sa, sl);
    while (r < 0 && errno == EINTR);
    ok = ph_io_count_tx(io, r, msg_len);
  }
  napi_value result;
  PH_NAPI(env, napi_get_boolean(env, ok, &result));
  return result;
}

napi_value ph_icmp_define(napi_env env) {
  napi_property_descriptor props[16];
  size_t n = ph_io_methods(props);
  props[n++] = (napi_property_descriptor){"send", NULL, icmp_send, NULL, NULL, NULL, napi_default, NULL};
  napi_value cls;
  PH_NAPI(env, napi_define_class(env, "Icmp", NAPI_AUTO_LENGTH, icmp_construct, NULL, n, props, &cls));
  return cls;
}
