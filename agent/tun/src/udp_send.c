// UDP send path: sendBatch() via sendmmsg (partial sends resumed, EAGAIN drops the rest),
// send() for single control packets. Never throws per packet: failures are counted.
//
// With UDP GSO (UDP_SEGMENT), consecutive packets to the same destination whose sizes are
// equal (the last may be shorter) go out as ONE message the kernel segments after a single
// trip through the stack. A message the kernel refuses as GSO is re-sent packet by packet.
#include <errno.h>
#include <netinet/udp.h>
#include <string.h>

#include "errors.h"
#include "napi_args.h"
#include "udp.h"

// Largest GSO payload: 64 KiB minus IPv6 + UDP headers, rounded down.
#define GSO_MAX_BYTES 65000
#define GSO_MAX_SEGMENTS 64

static bool is_congested(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS; }

static void count_error(ph_io *io, int err, uint32_t packets) {
  io->c.tx_errors += packets;
  ph_io_record_errno(io, err);
}

// Sends message m's packets one by one (fallback when the kernel refuses it as GSO).
// Returns packets sent; sets *congested when the socket is full.
static uint32_t send_unbatched(ph_udp *u, uint32_t m, int *congested) {
  ph_io *io = &u->io;
  struct msghdr *h = &u->tx_msgs[m].msg_hdr;
  uint32_t sent = 0;
  for (size_t k = 0; k < h->msg_iovlen; k++) {
    struct iovec *iov = &h->msg_iov[k];
    ssize_t r;
    do r = sendto(io->fd, iov->iov_base, iov->iov_len, 0, h->msg_name, h->msg_namelen);
    while (r < 0 && errno == EINTR);
    if (r >= 0) {
      sent++;
      io->c.tx_packets++;
      io->c.tx_bytes += iov->iov_len;
    } else if (is_congested(errno)) {
      io->c.tx_drops += h->msg_iovlen - k;
      *congested = 1;
      break;
    } else {
      count_error(io, errno, 1);
    }
  }
  return sent;
}

// Sends tx_msgs[0..n-1]. Returns packets sent; sets *congested when the socket is full.
static uint32_t send_chunk(ph_udp *u, uint32_t n, int *congested) {
  ph_io *io = &u->io;
  uint32_t done = 0, sent = 0;
  while (done < n) {
    int r = sendmmsg(io->fd, u->tx_msgs + done, n - done, 0);
    if (r > 0) {
      for (uint32_t k = done; k < done + (uint32_t)r; k++) {
        io->c.tx_bytes += u->tx_msgs[k].msg_len;
        io->c.tx_packets += u->tx_segs[k];
        if (u->tx_segs[k] > 1) io->c.tx_gso += u->tx_segs[k];
        sent += u->tx_segs[k];
      }
      done += (uint32_t)r;
      continue;
    }
    int err = r < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (is_congested(err)) {
      for (uint32_t k = done; k < n; k++) io->c.tx_drops += u->tx_segs[k];
      *congested = 1;
      break;
    }
    if (u->tx_segs[done] > 1) {
      // Refused as GSO: EIO means the path cannot offload at all; EINVAL/EMSGSIZE that this
      // message exceeds the path MTU (plain sends may still fragment).
      if (err == EIO) u->gso = 0;
      sent += send_unbatched(u, done, congested);
      if (*congested) {
        for (uint32_t k = done + 1; k < n; k++) io->c.tx_drops += u->tx_segs[k];
        break;
      }
    } else {
      count_error(io, err, 1);  // the error belongs to the first unsent message: skip it
    }
    done++;
  }
  return sent;
}

// Appends packet (p, len) to the message being built, or starts a new one.
// Returns false when the destination is unusable (counted).
static bool add_packet(ph_udp *u, uint32_t *n_msg, uint32_t n_pkt, uint8_t *p, uint32_t len,
                       const uint8_t *addr) {
  u->tx_iov[n_pkt].iov_base = p;
  u->tx_iov[n_pkt].iov_len = len;
  if (*n_msg > 0 && u->gso) {
    uint32_t m = *n_msg - 1;
    struct msghdr *h = &u->tx_msgs[m].msg_hdr;
    uint32_t seg = (uint32_t)h->msg_iov[0].iov_len;
    uint32_t last = (uint32_t)h->msg_iov[h->msg_iovlen - 1].iov_len;
    if (last == seg && len <= seg && len > 0 && u->tx_segs[m] < GSO_MAX_SEGMENTS &&
        (size_t)seg * (u->tx_segs[m] + 1) <= GSO_MAX_BYTES &&
        memcmp(u->tx_addr[m], addr, PH_ADDR20_SIZE) == 0) {
      h->msg_iovlen++;
      u->tx_segs[m]++;
      return true;
    }
  }
  uint32_t m = *n_msg;
  socklen_t sl;
  int err = ph_addr20_to_sockaddr(addr, u->family, u->v4mapped, &u->tx_names[m], &sl);
  if (err) {
    count_error(&u->io, err, 1);
    return false;
  }
  struct msghdr *h = &u->tx_msgs[m].msg_hdr;
  h->msg_name = &u->tx_names[m];
  h->msg_namelen = sl;
  h->msg_iov = &u->tx_iov[n_pkt];
  h->msg_iovlen = 1;
  h->msg_control = NULL;
  h->msg_controllen = 0;
  h->msg_flags = 0;
  u->tx_segs[m] = 1;
  u->tx_addr[m] = addr;
  (*n_msg)++;
  return true;
}

// Attaches the UDP_SEGMENT control message to every message that carries several packets.
static void finish_gso(ph_udp *u, uint32_t n_msg) {
  for (uint32_t m = 0; m < n_msg; m++) {
    if (u->tx_segs[m] < 2) continue;
    struct msghdr *h = &u->tx_msgs[m].msg_hdr;
    h->msg_control = u->tx_cmsg[m];
    h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
    struct cmsghdr *c = CMSG_FIRSTHDR(h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t seg = (uint16_t)h->msg_iov[0].iov_len;
    memcpy(CMSG_DATA(c), &seg, sizeof seg);
  }
}

uint32_t ph_udp_send_packets(ph_udp *u, uint8_t *slab, const uint32_t *offsets, const uint32_t *lengths,
                             const uint8_t *addrs, uint32_t count) {
  ph_io *io = &u->io;
  uint32_t sent = 0, i = 0;
  int congested = 0;
  while (i < count && !congested) {
    uint32_t n_msg = 0, n_pkt = 0;
    for (; i < count && n_pkt < PH_UDP_TX_CHUNK; i++) {
      if (add_packet(u, &n_msg, n_pkt, slab + offsets[i], lengths[i], addrs + (size_t)i * PH_ADDR20_SIZE)) n_pkt++;
    }
    if (!n_msg) continue;
    if (u->gso) finish_gso(u, n_msg);
    sent += send_chunk(u, n_msg, &congested);
  }
  if (congested) io->c.tx_drops += count - i;  // UDP semantics: the rest of the batch is lost
  return sent;
}

napi_value ph_udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5];
  ph_udp *u = (ph_udp *)ph_io_this(env, info, &argc, a, true);
  if (!u) return NULL;
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
  uint32_t sent = ph_udp_send_packets(u, slab, offsets, lengths, addrs, count);
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
    count_error(io, err, 1);
  }
  napi_value result;
  PH_NAPI(env, napi_get_boolean(env, ok, &result));
  return result;
}
