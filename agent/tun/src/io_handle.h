// A pollable fd owned by a JS object: shared by the TUN device and the UDP socket.
//
// Receive path: JS hands over, once, a slab of `max_batch` slots of `slot_size` bytes each, a
// headroom and tailroom, a Uint32Array of lengths and (UDP only) a 20-byte-per-packet address
// array (layout in addr20.h). On each readable event the subclass's read_batch() fills slots
// 0..n-1 (packet i at i*slot_size + headroom, at most `capacity` bytes), then ONE JS call
// onPackets(n) lets JS process the slab in place. The slab layout is drawn in packet-slab.ts.
#ifndef PH_IO_HANDLE_H
#define PH_IO_HANDLE_H

#include <node_api.h>
#include <stdint.h>
#include <uv.h>

#include "busy_poll.h"

// Batches delivered per wake-up before yielding back to the event loop (fairness cap).
#define PH_MAX_BATCHES_PER_WAKE 4

typedef struct ph_counters {
  uint64_t rx_packets, rx_bytes, rx_batches, rx_drops, rx_errors;
  uint64_t rx_gro;  // packets that arrived inside a UDP GRO-coalesced datagram
  uint64_t tx_packets, tx_bytes, tx_drops, tx_errors;
  uint64_t tx_gso;  // packets that left as segments of a UDP GSO message
  int last_errno;  // last rx/tx errno other than EAGAIN, 0 if none
} ph_counters;

typedef struct ph_io ph_io;

// Reads up to io->max_batch packets into slots 0..n-1 and fills lengths (and addrs).
// Returns n; sets *drained when the fd has nothing more to read now; sets io->fatal_errno
// when the fd is unusable (the poll is then stopped and onError called).
typedef uint32_t (*ph_read_batch_fn)(ph_io *io, int *drained);

// True when packets were already read from the fd but not yet handed to JS (UDP GRO
// leftovers): no readable event will announce them, the flush timer delivers them.
typedef bool (*ph_has_pending_fn)(ph_io *io);

struct ph_io {
  napi_env env;
  uv_poll_t poll;
  uv_timer_t flush;  // zero-delay timer that drains pending packets (see ph_has_pending_fn)
  int open_handles;  // libuv handles not yet closed (poll, flush)
  int fd;
  int fatal_errno;
  unsigned poll_inited : 1, polling : 1, paused : 1, closed : 1, uv_closed : 1, finalized : 1,
      unrefed : 1, needs_addrs : 1, cleanup_hook : 1;
  napi_ref self_ref;  // strong while open: an open handle is not collected

  // receiver (set by setReceiver)
  napi_ref slab_ref, lengths_ref, addrs_ref, on_packets_ref, on_error_ref;
  napi_async_context async_ctx;
  uint8_t *slab;
  size_t slab_len;
  uint32_t slot_size, headroom, max_batch;
  uint32_t capacity;  // bytes a packet may fill: slot_size - headroom - tailroom
  uint32_t *lengths;
  uint8_t *addrs;

  ph_counters c;

  ph_busy_poll *busy;  // group kept hot after our deliveries (setBusyPoll), NULL if none
  napi_ref busy_ref;   // keeps the group's JS object alive while we are open

  // Native data path (fastpath.c), NULL if none: handles what it can of a batch before JS
  // sees it, setting the length of each packet it took to FP_TAKEN (fastpath.h); returns how many are left for JS.
  uint32_t (*fast)(void *ctx, ph_io *io, uint32_t n);
  void *fast_ctx;
  void (*fast_detach)(void *ctx, ph_io *io);  // called once when the io closes

  ph_read_batch_fn read_batch;
  ph_has_pending_fn has_pending;  // NULL: never any
  // Called after the receiver changed (UDP rebuilds its recvmmsg vectors); false = threw.
  bool (*on_receiver)(ph_io *io);
  // Frees the whole object (subclass memory included) once JS and libuv are both done with it.
  void (*free_self)(ph_io *io);
  const char *resource_name;
};

// Initialises the base after the subclass opened fd; wraps `js_this`.
napi_status ph_io_wrap(ph_io *io, napi_env env, napi_value js_this, int fd);

// Fetches the ph_io behind `this` and the arguments; throws if closed and require_open.
ph_io *ph_io_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                  bool require_open);

// The ph_io behind a JS Tun/Udp object; throws and returns NULL for anything else.
ph_io *ph_io_from_value(napi_env env, napi_value v);

void ph_io_record_errno(ph_io *io, int err);

// Counts the outcome of one write()/sendto() of len bytes that returned r (errno set when r < 0):
// sent, dropped (EAGAIN/ENOBUFS: the kernel queue is full) or failed. True when sent.
bool ph_io_count_tx(ph_io *io, long r, size_t len);

// Methods shared by both classes (setReceiver, setBusyPoll, pause, resume, ref, unref, close,
// counters). Writes up to 9 descriptors to out; returns how many.
size_t ph_io_methods(napi_property_descriptor *out);

#endif
