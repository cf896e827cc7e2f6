// UDP receive path: recvmmsg straight into the JS slab's slots or, with UDP GRO, into bounce
// buffers whose coalesced datagrams are split back into one packet per slot (one memcpy per
// packet, against one trip through the kernel stack per packet without GRO).
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "udp.h"

static inline uint8_t *slot(ph_io *io, uint32_t i) {
  return io->slab + (size_t)i * io->slot_size + io->headroom;
}

static void recv_failed(ph_io *io, int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) return;
  if (err == EBADF || err == ENOTSOCK) {
    io->fatal_errno = err;
    return;
  }
  io->c.rx_errors++;  // e.g. a queued ICMP error; the next read goes on
  ph_io_record_errno(io, err);
}

static int recv_some(ph_udp *u, uint32_t want) {
  ph_io *io = &u->io;
  for (uint32_t i = 0; i < want; i++) {
    struct msghdr *h = &u->rx_msgs[i].msg_hdr;
    h->msg_namelen = sizeof(ph_sockaddr);
    h->msg_flags = 0;
    if (u->gro) h->msg_controllen = PH_UDP_GRO_CTRL;
  }
  int r;
  do r = recvmmsg(io->fd, u->rx_msgs, want, MSG_DONTWAIT, NULL);
  while (r < 0 && errno == EINTR);
  if (r < 0) recv_failed(io, errno);
  return r;
}

static void drop_oversize(ph_io *io) {
  io->c.rx_drops++;
  ph_io_record_errno(io, EMSGSIZE);
}

// Without GRO: datagram i lands in slot i; a truncated one is dropped and the gap closed.
static uint32_t read_plain(ph_udp *u, int *drained) {
  ph_io *io = &u->io;
  int r = recv_some(u, io->max_batch);
  if (r < 0) {
    *drained = 1;
    return 0;
  }
  uint32_t out = 0;
  for (uint32_t i = 0; i < (uint32_t)r; i++) {
    struct mmsghdr *m = &u->rx_msgs[i];
    if (m->msg_hdr.msg_flags & MSG_TRUNC) {
      drop_oversize(io);
      continue;
    }
    uint32_t len = m->msg_len;
    if (out != i) memmove(slot(io, out), slot(io, i), len);  // rare: after a drop
    io->lengths[out] = len;
    ph_addr20_from_sockaddr(&u->rx_names[i], io->addrs + (size_t)out * PH_ADDR20_SIZE);
    io->c.rx_packets++;
    io->c.rx_bytes += len;
    out++;
  }
  *drained = (uint32_t)r < io->max_batch;
  return out;
}

// Segment size of a coalesced datagram, or 0 when the kernel delivered it whole.
static uint32_t gro_segment(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
      int v;
      memcpy(&v, CMSG_DATA(c), sizeof v);
      return v > 0 ? (uint32_t)v : 0;
    }
  }
  return 0;
}

// Copies the pending segments of the bounce buffers into slots n..max_batch-1.
static uint32_t split_pending(ph_udp *u, uint32_t n) {
  ph_io *io = &u->io;
  while (u->gro_msg < u->gro_count && n < io->max_batch) {
    struct mmsghdr *m = &u->rx_msgs[u->gro_msg];
    uint32_t total = m->msg_len;
    uint32_t seg = gro_segment(&m->msg_hdr);
    if (seg == 0 || seg > total) seg = total;
    uint32_t len = total - u->gro_off < seg ? total - u->gro_off : seg;
    const uint8_t *src = (const uint8_t *)m->msg_hdr.msg_iov[0].iov_base + u->gro_off;
    if (len > io->capacity) {
      drop_oversize(io);
    } else {
      memcpy(slot(io, n), src, len);
      io->lengths[n] = len;
      ph_addr20_from_sockaddr(&u->rx_names[u->gro_msg], io->addrs + (size_t)n * PH_ADDR20_SIZE);
      io->c.rx_packets++;
      io->c.rx_bytes += len;
      if (seg < total) io->c.rx_gro++;
      n++;
    }
    u->gro_off += len;
    if (u->gro_off >= total) {  // a zero-length datagram also ends here
      u->gro_msg++;
      u->gro_off = 0;
    }
  }
  return n;
}

// With GRO: leftovers first, then as many datagrams as there are free slots (each gives at
// least one packet); segments that do not fit stay pending for the next batch.
static uint32_t read_gro(ph_udp *u, int *drained) {
  ph_io *io = &u->io;
  uint32_t n = split_pending(u, 0);
  while (n < io->max_batch) {
    uint32_t want = io->max_batch - n;
    int r = recv_some(u, want);
    if (r <= 0) {
      *drained = 1;
      break;
    }
    u->gro_count = (uint32_t)r;
    u->gro_msg = 0;
    u->gro_off = 0;
    n = split_pending(u, n);
    if ((uint32_t)r < want) {
      *drained = 1;
      break;
    }
  }
  return n;
}

uint32_t ph_udp_read_batch(ph_io *io, int *drained) {
  ph_udp *u = (ph_udp *)io;
  return u->gro ? read_gro(u, drained) : read_plain(u, drained);
}

bool ph_udp_has_pending(ph_io *io) {
  ph_udp *u = (ph_udp *)io;
  return u->gro && u->gro_msg < u->gro_count;
}

void ph_udp_free_rx(ph_udp *u) {
  free(u->rx_msgs);
  free(u->rx_iov);
  free(u->rx_names);
  free(u->gro_bufs);
  free(u->gro_ctrl);
  u->rx_msgs = NULL;
  u->rx_iov = NULL;
  u->rx_names = NULL;
  u->gro_bufs = NULL;
  u->gro_ctrl = NULL;
  u->gro_count = u->gro_msg = u->gro_off = 0;
}

// Builds the recvmmsg vectors for a new receiver, once: one message per slot.
bool ph_udp_on_receiver(ph_io *io) {
  ph_udp *u = (ph_udp *)io;
  if (u->gro_msg < u->gro_count) io->c.rx_drops += u->gro_count - u->gro_msg;  // leftovers of the old slab
  ph_udp_free_rx(u);
  uint32_t n = io->max_batch;
  u->rx_msgs = calloc(n, sizeof *u->rx_msgs);
  u->rx_iov = calloc(n, sizeof *u->rx_iov);
  u->rx_names = calloc(n, sizeof *u->rx_names);
  if (u->gro) {
    u->gro_bufs = malloc((size_t)n * PH_UDP_GRO_BUF);  // large: mmap'd, pages touched on use
    u->gro_ctrl = calloc(n, PH_UDP_GRO_CTRL);
  }
  if (!u->rx_msgs || !u->rx_iov || !u->rx_names || (u->gro && (!u->gro_bufs || !u->gro_ctrl))) {
    ph_udp_free_rx(u);
    io->max_batch = 0;
    ph_throw(io->env, "ENOMEM", ENOMEM, "out of memory");
    return false;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct msghdr *h = &u->rx_msgs[i].msg_hdr;
    if (u->gro) {
      u->rx_iov[i].iov_base = u->gro_bufs + (size_t)i * PH_UDP_GRO_BUF;
      u->rx_iov[i].iov_len = PH_UDP_GRO_BUF;
      h->msg_control = u->gro_ctrl + (size_t)i * PH_UDP_GRO_CTRL;
      h->msg_controllen = PH_UDP_GRO_CTRL;
    } else {
      u->rx_iov[i].iov_base = slot(io, i);
      u->rx_iov[i].iov_len = io->capacity;
    }
    h->msg_iov = &u->rx_iov[i];
    h->msg_iovlen = 1;
    h->msg_name = &u->rx_names[i];
  }
  return true;
}
