// TUN device: open + TUNSETIFF, batched reads into the JS slab, writeBatch (one write() each).
// With offloads (new Tun(name, true)): IFF_VNET_HDR + TUNSETOFFLOAD, super packets cut into
// MTU-sized packets on the way in and TCP segments glued back (GRO) on the way out (tun_offload.h).
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
#include "tun_offload.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#define TUN_F_USO6 0x40
#endif

#define WRITE_SCRATCH 1024  // the largest batch a handle writes
#define GRO_IOV (64 + 2)

typedef struct ph_tun {
  ph_io io;  // first member: a ph_tun* is a ph_io*
  char name[IFNAMSIZ];
  // Offloads: every read and write carries a virtio_net_hdr.
  bool vnet;
  uint32_t offloads;  // TUN_F_* granted
  uint8_t *rbuf;      // one super packet as read (vnet header + up to 64 KB)
  ph_gso gso;         // the super packet being cut into slots
  uint8_t **ptrs;     // scratch for a write batch: packet pointers, lengths, GRO groups
  uint32_t *lens, *groups;
  uint8_t vnet_hdr[PH_VNET_HDR_LEN], gro_hdr[128];
  struct iovec iov[GRO_IOV];
  struct { uint64_t super_in, segments_in, bad_super, gro_writes, gro_packets; } oc;
} ph_tun;

// Errno values after which the fd will never read again (device deleted underneath us).
static int is_fatal(int err) { return err == EBADFD || err == EBADF || err == EIO || err == ENODEV || err == ENXIO; }

// With offloads: one read() per (super) packet into rbuf; super packets are cut into as many
// slots as they need, the rest kept for the next batch (has_pending).
static uint32_t tun_read_vnet(ph_tun *t, int *drained) {
  ph_io *io = &t->io;
  uint32_t n = 0, dropped = 0;
  while (n < io->max_batch) {
    uint8_t *slot = io->slab + (size_t)n * io->slot_size + io->headroom;
    if (t->gso.active) {
      uint32_t len = ph_gso_next(&t->gso, slot);
      io->lengths[n++] = len;
      io->c.rx_packets++;
      io->c.rx_bytes += len;
      t->oc.segments_in++;
      continue;
    }
    ssize_t r = read(io->fd, t->rbuf, PH_VNET_HDR_LEN + PH_GSO_MAX);
    if (r > PH_VNET_HDR_LEN) {
      ph_vnet h;
      ph_vnet_read(t->rbuf, &h);
      uint8_t *pkt = t->rbuf + PH_VNET_HDR_LEN;
      uint32_t len = (uint32_t)r - PH_VNET_HDR_LEN;
      if (h.gso_type == PH_GSO_NONE) {
        if (len > io->capacity) {
          io->c.rx_drops++;
          ph_io_record_errno(io, EMSGSIZE);
          continue;
        }
        memcpy(slot, pkt, len);
        if ((h.flags & PH_VNET_NEEDS_CSUM) && !ph_csum_complete(slot, len, h.csum_start, h.csum_offset)) {
          io->c.rx_drops++;
          continue;
        }
        io->lengths[n++] = len;
        io->c.rx_packets++;
        io->c.rx_bytes += len;
        continue;
      }
      if (!ph_gso_start(&t->gso, &h, pkt, len, io->capacity)) {
        io->c.rx_drops++;
        t->oc.bad_super++;
        continue;
      }
      t->oc.super_in++;
      continue;
    }
    if (r >= 0) {
      if (r == 0) { *drained = 1; break; }
      io->c.rx_drops++;  // shorter than its vnet header
      if (++dropped > io->max_batch) { *drained = 1; break; }
      continue;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) { *drained = 1; break; }
    if (is_fatal(err)) { io->fatal_errno = err; break; }
    io->c.rx_errors++;
    ph_io_record_errno(io, err);
    *drained = 1;
    break;
  }
  return n;
}

static bool tun_has_pending(ph_io *io) { return ((ph_tun *)io)->gso.active; }

static uint32_t tun_read_batch(ph_io *io, int *drained) {
  if (((ph_tun *)io)->vnet) return tun_read_vnet((ph_tun *)io, drained);
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

static void tun_free(ph_io *io) {
  ph_tun *t = (ph_tun *)io;
  free(t->rbuf);
  free(t->ptrs);
  free(t->lens);
  free(t->groups);
  free(io);
}

// IFF_VNET_HDR is on: asks for checksum, TSO and (kernel >= 6.2) USO offloads; returns what was granted.
static uint32_t enable_offloads(int fd) {
  int size = PH_VNET_HDR_LEN;
  if (ioctl(fd, TUNSETVNETHDRSZ, &size) < 0) return 0;
  unsigned int want = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6;
  if (ioctl(fd, TUNSETOFFLOAD, want) == 0) return want;
  want = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (ioctl(fd, TUNSETOFFLOAD, want) == 0) return want;
  return 0;
}

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

// new Tun(name: string, offload = false)   ("" lets the kernel choose tunN)
static napi_value tun_construct(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  bool offload = false;
  if (argc >= 2 && !ph_arg_is_nullish(env, argv[1]) && napi_get_value_bool(env, argv[1], &offload) != napi_ok) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "offload must be a boolean");
    return NULL;
  }
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
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, name, name_len);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    throw_open_error(env, err, name, 0);
    return NULL;
  }
  ph_tun *tun = calloc(1, sizeof *tun);
  if (tun && offload) {
    tun->vnet = true;
    tun->offloads = enable_offloads(fd);
    tun->rbuf = malloc(PH_VNET_HDR_LEN + PH_GSO_MAX);
    tun->ptrs = malloc(WRITE_SCRATCH * sizeof *tun->ptrs);
    tun->lens = malloc(WRITE_SCRATCH * sizeof *tun->lens);
    tun->groups = malloc(WRITE_SCRATCH * sizeof *tun->groups);
    if (!tun->rbuf || !tun->ptrs || !tun->lens || !tun->groups) {
      tun_free(&tun->io);
      tun = NULL;
    }
  }
  if (!tun) {
    close(fd);
    ph_throw(env, "ENOMEM", ENOMEM, "out of memory");
    return NULL;
  }
  memcpy(tun->name, ifr.ifr_name, IFNAMSIZ);
  tun->name[IFNAMSIZ - 1] = 0;
  tun->io.read_batch = tun_read_batch;
  if (tun->vnet) tun->io.has_pending = tun_has_pending;
  tun->io.free_self = tun_free;
  tun->io.resource_name = "PinholeTun";
  if (ph_io_wrap(&tun->io, env, self, fd) != napi_ok) {
    close(fd);
    free(tun);
    ph_throw_napi_failure(env, "napi_wrap");
    return NULL;
  }
  napi_value v, off;
  PH_NAPI(env, napi_create_string_utf8(env, tun->name, NAPI_AUTO_LENGTH, &v));
  char list[64] = "";
  if (tun->vnet) {
    static const struct { uint32_t bit; const char *name; } names[] = {
        {TUN_F_CSUM, "csum"}, {TUN_F_TSO4, "tso4"}, {TUN_F_TSO6, "tso6"}, {TUN_F_USO4, "uso4"}, {TUN_F_USO6, "uso6"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
      if (!(tun->offloads & names[i].bit)) continue;
      if (list[0]) strcat(list, ",");
      strcat(list, names[i].name);
    }
    if (!list[0]) strcpy(list, "vnet");
  }
  PH_NAPI(env, napi_create_string_utf8(env, list, NAPI_AUTO_LENGTH, &off));
  napi_property_descriptor props[] = {
      {"name", NULL, NULL, NULL, NULL, v, napi_enumerable, NULL},
      // The offloads the kernel granted ("" without offloads; "vnet" if it granted none).
      {"offloads", NULL, NULL, NULL, NULL, off, napi_enumerable, NULL},
  };
  PH_NAPI(env, napi_define_properties(env, self, 2, props));
  return self;
}

// With offloads: every write has a vnet header; runs of TCP segments of one flow go as one.
static uint32_t write_vnet(ph_tun *t, uint8_t *slab, const uint32_t *offsets, const uint32_t *lengths, uint32_t count) {
  ph_io *io = &t->io;
  uint32_t written = 0;
  for (uint32_t base = 0; base < count; base += WRITE_SCRATCH) {
    uint32_t m = count - base < WRITE_SCRATCH ? count - base : WRITE_SCRATCH;
    for (uint32_t i = 0; i < m; i++) {
      t->ptrs[i] = slab + offsets[base + i];
      t->lens[i] = lengths[base + i];
    }
    uint32_t writes = ph_gro_plan(t->ptrs, t->lens, m, t->groups);
    uint32_t at = 0;
    for (uint32_t w = 0; w < writes; w++) {
      uint32_t k = t->groups[w];
      uint32_t niov = ph_gro_iov(t->ptrs + at, t->lens + at, k, t->vnet_hdr, t->gro_hdr, t->iov);
      size_t want = 0;
      for (uint32_t v = 0; v < niov; v++) want += t->iov[v].iov_len;
      ssize_t r;
      do r = writev(io->fd, t->iov, (int)niov);
      while (r < 0 && errno == EINTR);
      if (k > 1) {
        t->oc.gro_writes++;
        t->oc.gro_packets += k;
      }
      // Counted per packet: k packets written, or k lost.
      bool ok = r >= 0 && (size_t)r == want;
      for (uint32_t j = 0; j < k; j++)
        if (ph_io_count_tx(io, ok ? (ssize_t)t->lens[at + j] : (r < 0 ? r : 0), t->lens[at + j])) written++;
      at += k;
    }
  }
  return written;
}

uint32_t ph_tun_write_packets(ph_io *io, uint8_t *slab, const uint32_t *offsets, const uint32_t *lengths,
                              uint32_t count) {
  if (((ph_tun *)io)->vnet) return write_vnet((ph_tun *)io, slab, offsets, lengths, count);
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

// offloadCounters() -> { superIn, segmentsIn, badSuper, groWrites, groPackets }
static napi_value tun_offload_counters(napi_env env, napi_callback_info info) {
  ph_io *io = ph_io_this(env, info, NULL, NULL, false);
  if (!io) return NULL;
  ph_tun *t = (ph_tun *)io;
  napi_value o, v;
  PH_NAPI(env, napi_create_object(env, &o));
#define SET(name, field)                                           \
  PH_NAPI(env, napi_create_double(env, (double)t->oc.field, &v)); \
  PH_NAPI(env, napi_set_named_property(env, o, name, v));
  SET("superIn", super_in)
  SET("segmentsIn", segments_in)
  SET("badSuper", bad_super)
  SET("groWrites", gro_writes)
  SET("groPackets", gro_packets)
#undef SET
  return o;
}

napi_value ph_tun_define(napi_env env) {
  napi_property_descriptor props[16];
  size_t n = ph_io_methods(props);
  props[n++] = (napi_property_descriptor){"writeBatch", NULL, tun_write_batch, NULL, NULL, NULL, napi_default, NULL};
  props[n++] = (napi_property_descriptor){"offloadCounters", NULL, tun_offload_counters, NULL, NULL, NULL, napi_default, NULL};
  napi_value cls;
  PH_NAPI(env, napi_define_class(env, "Tun", NAPI_AUTO_LENGTH, tun_construct, NULL, n, props, &cls));
  return cls;
}
