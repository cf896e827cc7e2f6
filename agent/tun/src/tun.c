// TUN device: open + TUNSETIFF, batched reads into the JS slab, writeBatch (one write() each).
#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "errors.h"
#include "io_handle.h"
#include "napi_args.h"

typedef struct ph_tun {
  ph_io io;  // first member: a ph_tun* is a ph_io*
  char name[IFNAMSIZ];
} ph_tun;

// Errno values after which the fd will never read again (device deleted underneath us).
static int is_fatal(int err) { return err == EBADFD || err == EBADF || err == EIO || err == ENODEV || err == ENXIO; }

static uint32_t tun_read_batch(ph_io *io, int *drained) {
  uint32_t n = 0, dropped = 0;
  const uint32_t cap = io->capacity;
  while (n < io->max_batch) {
    uint8_t *slot = io->slab + (size_t)n * io->slot_size + io->headroom;
    ssize_t r = read(io->fd, slot, cap);
    if (r > 0) {
      io->lengths[n++] = (uint32_t)r;
      io->c.rx_packets++;
      io->c.rx_bytes += (uint64_t)r;
      continue;
    }
    if (r == 0) { *drained = 1; break; }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) { *drained = 1; break; }
    if (err == EFAULT || err == EMSGSIZE || err == EINVAL) {
      // The packet did not fit the slot: the kernel consumed and dropped it.
      io->c.rx_drops++;
      ph_io_record_errno(io, EMSGSIZE);
      if (++dropped > io->max_batch) { *drained = 1; break; }  // never spin on a stuck fd
      continue;
    }
    if (is_fatal(err)) { io->fatal_errno = err; break; }
    io->c.rx_errors++;
    ph_io_record_errno(io, err);
    *drained = 1;
    break;
  }
  return n;
}

static void tun_free(ph_io *io) { free(io); }

static void throw_open_error(napi_env env, int err, const char *name, int at_open) {
  const char *dev = name[0] ? name : "(kernel-chosen name)";
  const char *code = ph_errno_name(err);
  if (err == EPERM || err == EACCES) {
    ph_throw(env, code, err, "cannot create TUN device %s: permission denied (needs root or CAP_NET_ADMIN)", dev);
  } else if (at_open && (err == ENOENT || err == ENODEV || err == ENXIO)) {
    ph_throw(env, code, err, "cannot open /dev/net/tun: no such device (is the tun module loaded?)");
  } else if (err == EBUSY) {
    ph_throw(env, code, err, "TUN device %s is busy", dev);
  } else if (!at_open && err == EINVAL) {
    ph_throw(env, code, err, "cannot create TUN device %s: the name is taken by an interface that is not a TUN device", dev);
  } else if (at_open) {
    ph_throw(env, code, err, "cannot open /dev/net/tun: %s", strerror(err));
  } else {
    ph_throw(env, code, err, "cannot create TUN device %s: %s", dev, strerror(err));
  }
}

// new Tun(name: string)   ("" lets the kernel choose tunN)
static napi_value tun_construct(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  char name[64] = {0};
  size_t name_len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &name_len) != napi_ok) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "TUN device name must be a string");
    return NULL;
  }
  if (name_len >= IFNAMSIZ || strchr(name, '/') || strchr(name, ' ')) {
    ph_throw(env, "ERR_INVALID_ARG_VALUE", EINVAL,
             "invalid TUN device name \"%s\": at most %d characters, no '/' or spaces", name, IFNAMSIZ - 1);
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    throw_open_error(env, errno, name, 1);
    return NULL;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, name_len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    throw_open_error(env, err, name, 0);
    return NULL;
  }
  ph_tun *tun = calloc(1, sizeof *tun);
  if (!tun) {
    close(fd);
    ph_throw(env, "ENOMEM", ENOMEM, "out of memory");
    return NULL;
  }
  memcpy(tun->name, ifr.ifr_name, IFNAMSIZ);
  tun->name[IFNAMSIZ - 1] = 0;
  tun->io.read_batch = tun_read_batch;
  tun->io.free_self = tun_free;
  tun->io.resource_name = "PinholeTun";
  if (ph_io_wrap(&tun->io, env, self, fd) != napi_ok) {
    close(fd);
    free(tun);
    ph_throw_napi_failure(env, "napi_wrap");
    return NULL;
  }
  napi_value v;
  PH_NAPI(env, napi_create_string_utf8(env, tun->name, NAPI_AUTO_LENGTH, &v));
  napi_property_descriptor props[] = {
      {"name", NULL, NULL, NULL, NULL, v, napi_enumerable, NULL},
  };
  PH_NAPI(env, napi_define_properties(env, self, 1, props));
  return self;
}

uint32_t ph_tun_write_packets(ph_io *io, uint8_t *slab, const uint32_t *offsets, const uint32_t *lengths,
                              uint32_t count) {
  uint32_t written = 0;
  for (uint32_t i = 0; i < count; i++) {
    ssize_t r;
    do r = write(io->fd, slab + offsets[i], lengths[i]);
    while (r < 0 && errno == EINTR);
    if (ph_io_count_tx(io, r, lengths[i])) written++;
  }
  return written;
}

// writeBatch(slab, offsets: Uint32Array, lengths: Uint32Array, count) -> packets written
static napi_value tun_write_batch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value a[4];
  ph_io *io = ph_io_this(env, info, &argc, a, true);
  if (!io) return NULL;
  uint8_t *slab;
  size_t slab_len, n_off, n_len;
  uint32_t *offsets, *lengths, count;
  if (!ph_arg_bytes(env, a[0], "slab", &slab, &slab_len) ||
      !ph_arg_u32array(env, a[1], "offsets", &offsets, &n_off) ||
      !ph_arg_u32array(env, a[2], "lengths", &lengths, &n_len) ||
      !ph_arg_u32(env, a[3], "count", &count))
    return NULL;
  if (count > n_off || count > n_len) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "count exceeds offsets/lengths");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)offsets[i] + lengths[i] > slab_len) {
      ph_throw(env, "ERR_OUT_OF_RANGE", 0, "packet %u lies outside the slab", i);
      return NULL;
    }
  }
  uint32_t written = ph_tun_write_packets(io, slab, offsets, lengths, count);
  napi_value result;
  PH_NAPI(env, napi_create_uint32(env, written, &result));
  return result;
}

napi_value ph_tun_define(napi_env env) {
  napi_property_descriptor props[16];
  size_t n = ph_io_methods(props);
  props[n++] = (napi_property_descriptor){"writeBatch", NULL, tun_write_batch, NULL, NULL, NULL, napi_default, NULL};
  napi_value cls;
  PH_NAPI(env, napi_define_class(env, "Tun", NAPI_AUTO_LENGTH, tun_construct, NULL, n, props, &cls));
  return cls;
}
