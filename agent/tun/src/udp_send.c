// UDP send path: sendBatch() via sendmmsg (partial sends resumed, EAGAIN drops the rest),
// send() for single control packets. Never throws per packet: failures are counted.
#include <errno.h>
#include <string.h>

#include "errors.h"
#include "napi_args.h"
#include "udp.h"

static bool is_congested(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

// Sends tx_msgs[0..n-1]. Returns packets sent; sets *congested when the socket is full.
static uint32_t send_chunk(ph_udp *u, uint32_t n, int *congested) {
  ph_io *io = &u->io;
  uint32_t done = 0, sent = 0;
  while (done < n) {
    int r = sendmmsg(io->fd, u->tx_msgs + done, n - done, 0);
    if (r > 0) {
      for (uint32_t k = done; k < done + (uint32_t)r; k++) io->c.tx_bytes += u->tx_msgs[k].msg_len;
      io->c.tx_packets += (uint32_t)r;
      sent += (uint32_t)r;
      done += (uint32_t)r;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (is_congested(err)) {
      io->c.tx_drops += n - done;
      *congested = 1;
      break;
    }
    io->c.tx_errors++;  // the error belongs to the first unsent message: skip it
    ph_io_record_errno(io, err);
    done++;
  }
  return sent;
}

napi_value ph_udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  ph_udp *u = (ph_udp *)ph_io_this(env, info, &argc, a, true);
  if (!u) return NULL;
  ph_io *io = &u->io;
  uint8_t *slab, *addrs;
  size_t slab_len, n_off, n_len, addrs_len;
  uint32_t *offsets, *lengths, count;
  if (!ph_arg_bytes(env, a[0], "slab", &slab, &slab_len) ||
      !ph_arg_u32array(env, a[1], "offsets", &offsets, &n_off) ||
      !ph_arg_u32array(env, a[2], "lengths", &lengths, &n_len) ||
      !ph_arg_bytes(env, a[3], "addrs", &addrs, &addrs_len) ||
      !ph_arg_u32(env, a[4], "count", &count))
    return NULL;
  if (count > n_off || count > n_len || (size_t)count * PH_ADDR20_SIZE > addrs_len) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "count exceeds offsets/lengths/addrs");
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    if ((uint64_t)offsets[i] + lengths[i] > slab_len) {
      ph_throw(env, "ERR_OUT_OF_RANGE", 0, "packet %u lies outside the slab", i);
      return NULL;
    }
  }
  uint32_t sent = 0, i = 0;
  int congested = 0;
  while (i < count && !congested) {
    uint32_t n = 0;
    for (; i < count && n < PH_UDP_TX_CHUNK; i++) {
      socklen_t sl;
      int err = ph_addr20_to_sockaddr(addrs + (size_t)i * PH_ADDR20_SIZE, u->family, u->v4mapped,
                                      &u->tx_names[n], &sl);
      if (err) {
        io->c.tx_errors++;
        ph_io_record_errno(io, err);
        continue;
      }
      u->tx_iov[n].iov_base = slab + offsets[i];
      u->tx_iov[n].iov_len = lengths[i];
      struct msghdr *h = &u->tx_msgs[n].msg_hdr;
      h->msg_name = &u->tx_names[n];
      h->msg_namelen = sl;
      h->msg_iov = &u->tx_iov[n];
      h->msg_iovlen = 1;
      h->msg_control = NULL;
      h->msg_controllen = 0;
      h->msg_flags = 0;
      n++;
    }
    if (n) sent += send_chunk(u, n, &congested);
  }
  if (congested) io->c.tx_drops += count - i;  // UDP semantics: the rest of the batch is lost
  napi_value result;
  PH_NAPI(env, napi_create_uint32(env, sent, &result));
  return result;
}

napi_value ph_udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  ph_udp *u = (ph_udp *)ph_io_this(env, info, &argc, a, true);
  if (!u) return NULL;
  ph_io *io = &u->io;
  uint8_t *buf, *addr;
  size_t len, addr_len;
  if (!ph_arg_bytes(env, a[0], "packet", &buf, &len) || !ph_arg_bytes(env, a[1], "addr", &addr, &addr_len))
    return NULL;
  if (addr_len < PH_ADDR20_SIZE) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "addr must be 20 bytes");
    return NULL;
  }
  ph_sockaddr sa;
  socklen_t sl;
  int err = ph_addr20_to_sockaddr(addr, u->family, u->v4mapped, &sa, &sl);
  bool ok = false;
  if (!err) {
    ssize_t r;
    do r = sendto(io->fd, buf, len, 0, &sa.sa, sl);
    while (r < 0 && errno == EINTR);
    ok = r >= 0;
    if (!ok) err = errno;
  }
  if (ok) {
    io->c.tx_packets++;
    io->c.tx_bytes += len;
  } else if (is_congested(err)) {
    io->c.tx_drops++;
  } else {
    io->c.tx_errors++;
    ph_io_record_errno(io, err);
  }
  napi_value result;
  PH_NAPI(env, napi_get_boolean(env, ok, &result));
  return result;
}
