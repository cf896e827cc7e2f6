// Poll loop, batch delivery to JS, close/finalize lifetime and counters of a ph_io.
#include "io_handle.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "errors.h"
#include "napi_args.h"


// Tells a Tun/Udp object apart from other wrapped classes (a BusyPoll passed as `this`).
static const napi_type_tag IO_TAG = {0x70696e686f6c6549ULL, 0x6f48616e646c6531ULL};

void ph_io_record_errno(ph_io *io, int err) { io->c.last_errno = err; }

bool ph_io_count_tx(ph_io *io, long r, size_t len) {
  if (r >= 0) {
    io->c.tx_packets++;
    io->c.tx_bytes += len;
    return true;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
    io->c.tx_drops++;
  } else {
    io->c.tx_errors++;  // e.g. EINVAL: a TUN write that is not an IPv4/IPv6 packet
    ph_io_record_errno(io, errno);
  }
  return false;
}

static void maybe_free(ph_io *io) {
  if (io->finalized && io->uv_closed) io->free_self(io);
}

static void on_uv_closed(uv_handle_t *h) {
  ph_io *io = h->data;
  if (--io->open_handles > 0) return;
  io->uv_closed = 1;
  maybe_free(io);
}

static void delete_ref(napi_env env, napi_ref *ref) {
  if (*ref) {
    napi_delete_reference(env, *ref);
    *ref = NULL;
  }
}

static void release_receiver(ph_io *io) {
  delete_ref(io->env, &io->slab_ref);
  delete_ref(io->env, &io->lengths_ref);
  delete_ref(io->env, &io->addrs_ref);
  delete_ref(io->env, &io->on_packets_ref);
  delete_ref(io->env, &io->on_error_ref);
  if (io->async_ctx) {
    napi_async_destroy(io->env, io->async_ctx);
    io->async_ctx = NULL;
  }
  io->slab = NULL;
  io->lengths = NULL;
  io->addrs = NULL;
  io->max_batch = 0;
}

// Stops polling and closes the fd; safe to call repeatedly and from inside a callback.
static void close_fd_and_poll(ph_io *io) {
  if (io->closed) return;
  io->closed = 1;
  io->polling = 0;
  if (io->poll_inited) {
    uv_poll_stop(&io->poll);
    uv_timer_stop(&io->flush);
    uv_close((uv_handle_t *)&io->poll, on_uv_closed);
    uv_close((uv_handle_t *)&io->flush, on_uv_closed);
  } else {
    io->uv_closed = 1;
  }
  if (io->fd >= 0) {
    close(io->fd);
    io->fd = -1;
  }
  if (io->busy) {
    ph_busy_poll_leave(io->busy);
    io->busy = NULL;
  }
  if (io->fast_detach) io->fast_detach(io->fast_ctx, io);
  io->fast = NULL;
  io->fast_detach = NULL;
  io->fast_ctx = NULL;
}

// Environment teardown (process exit, worker termination) with the handle still open: close
// while the loop can still finish uv_close. Touches no JS.
static void cleanup_hook(void *arg) {
  ph_io *io = arg;
  io->cleanup_hook = 0;
  close_fd_and_poll(io);
}

static void remove_cleanup_hook(ph_io *io) {
  if (!io->cleanup_hook) return;
  io->cleanup_hook = 0;
  napi_remove_env_cleanup_hook(io->env, cleanup_hook, io);
}

static void ph_io_close(ph_io *io) {
  if (io->closed) return;
  remove_cleanup_hook(io);
  close_fd_and_poll(io);
  release_receiver(io);
  delete_ref(io->env, &io->busy_ref);
  delete_ref(io->env, &io->self_ref);
}

static void finalize(napi_env env, void *data, void *hint) {
  ph_io *io = data;
  // Reached only after close() or at environment teardown; never call into JS here.
  remove_cleanup_hook(io);
  close_fd_and_poll(io);
  io->finalized = 1;
  maybe_free(io);
}

// Calls a JS function held by `ref` with `this` = the handle, through napi_make_callback so
// that microtasks and nextTick queued by JS run afterwards, like for any libuv callback.
static void call_js(ph_io *io, napi_ref ref, size_t argc, napi_value *argv) {
  napi_env env = io->env;
  napi_value fn, recv, result;
  if (!ref || !io->self_ref) return;
  if (napi_get_reference_value(env, ref, &fn) != napi_ok || !fn) return;
  if (napi_get_reference_value(env, io->self_ref, &recv) != napi_ok || !recv) return;
  napi_status s = napi_make_callback(env, io->async_ctx, recv, fn, argc, argv, &result);
  if (s != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);  // -> process 'uncaughtException', as for any callback
    }
  }
}

static void stop_with_error(ph_io *io, int err) {
  if (io->poll_inited && io->polling) {
    uv_poll_stop(&io->poll);
    uv_timer_stop(&io->flush);
  }
  io->polling = 0;
  io->c.rx_errors++;
  ph_io_record_errno(io, err);
  char msg[160];
  snprintf(msg, sizeof msg, "%s read failed: %s", io->resource_name, strerror(err));
  napi_value e = ph_make_error(io->env, ph_errno_name(err), err, msg);
  if (e) call_js(io, io->on_error_ref, 1, &e);
}

static bool has_pending(ph_io *io) { return io->has_pending && io->has_pending(io); }

static void on_flush(uv_timer_t *t);

// Packets left over after this wake-up are delivered on the next loop iteration.
static void schedule_flush(ph_io *io) {
  if (!io->closed && io->polling && has_pending(io)) uv_timer_start(&io->flush, on_flush, 0, 0);
}

// Delivers up to PH_MAX_BATCHES_PER_WAKE batches, one onPackets call each for what the native
// fast path (if any) left. A batch the fast path took whole costs no N-API call at all: that
// keeps a wake-up from idle off V8's and N-API's cold code (see docs/protocol.md, Latency).
static void drain(ph_io *io) {
  napi_handle_scope scope = NULL;
  if (io->busy) ph_busy_poll_note_wake(io->busy);
  uint32_t delivered = 0;
  for (int b = 0; b < PH_MAX_BATCHES_PER_WAKE; b++) {
    int drained = 0;
    uint32_t n = io->read_batch(io, &drained);
    if (n > 0) {
      io->c.rx_batches++;
      delivered += n;
      uint32_t left = io->fast ? io->fast(io->fast_ctx, io, n) : n;
      if (left > 0 && (scope || napi_open_handle_scope(io->env, &scope) == napi_ok)) {
        napi_value count;
        napi_create_uint32(io->env, n, &count);
        call_js(io, io->on_packets_ref, 1, &count);
      }
    }
    if (io->closed || !io->polling) break;  // JS closed or paused us during the call
    if (io->fatal_errno) {
      if (scope || napi_open_handle_scope(io->env, &scope) == napi_ok) stop_with_error(io, io->fatal_errno);
      break;
    }
    if (drained && !has_pending(io)) break;
  }
  // io->busy is NULL if JS closed us or left the group during the calls
  if (delivered > 0 && io->busy) ph_busy_poll_delivered(io->busy, delivered);
  schedule_flush(io);
  if (scope) napi_close_handle_scope(io->env, scope);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  ph_io *io = h->data;
  if (io->closed || !io->polling) return;
  if (status < 0) {
    napi_handle_scope scope;
    if (napi_open_handle_scope(io->env, &scope) != napi_ok) return;
    stop_with_error(io, -status);
    napi_close_handle_scope(io->env, scope);
    return;
  }
  drain(io);
}

static void on_flush(uv_timer_t *t) {
  ph_io *io = t->data;
  if (!io->closed && io->polling) drain(io);
}

static bool start_polling(ph_io *io) {
  if (io->closed || io->paused || io->polling || !io->on_packets_ref) return true;
  if (!io->poll_inited) {
    uv_loop_t *loop;
    if (napi_get_uv_event_loop(io->env, &loop) != napi_ok) return false;
    int r = uv_poll_init(loop, &io->poll, io->fd);
    if (r < 0) {
      ph_throw_errno(io->env, -r, "cannot poll the file descriptor");
      return false;
    }
    uv_timer_init(loop, &io->flush);
    io->poll.data = io;
    io->flush.data = io;
    io->open_handles = 2;
    io->poll_inited = 1;
    if (io->unrefed) {
      uv_unref((uv_handle_t *)&io->poll);
      uv_unref((uv_handle_t *)&io->flush);
    }
  }
  int r = uv_poll_start(&io->poll, UV_READABLE, on_poll);
  if (r < 0) {
    ph_throw_errno(io->env, -r, "cannot poll the file descriptor");
    return false;
  }
  io->polling = 1;
  schedule_flush(io);
  return true;
}

napi_status ph_io_wrap(ph_io *io, napi_env env, napi_value js_this, int fd) {
  io->env = env;
  io->fd = fd;
  napi_status s = napi_type_tag_object(env, js_this, &IO_TAG);
  if (s != napi_ok) return s;
  s = napi_wrap(env, js_this, io, finalize, NULL, NULL);
  if (s != napi_ok) return s;
  if (napi_add_env_cleanup_hook(env, cleanup_hook, io) == napi_ok) io->cleanup_hook = 1;
  return napi_create_reference(env, js_this, 1, &io->self_ref);
}

// The ph_io wrapped by v, or NULL (no exception) if v is not a Tun/Udp/Icmp object.
static ph_io *unwrap_io(napi_env env, napi_value v) {
  bool tagged = false;
  void *data = NULL;
  if (napi_check_object_type_tag(env, v, &IO_TAG, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, v, &data) != napi_ok)
    return NULL;
  return data;
}

ph_io *ph_io_from_value(napi_env env, napi_value v) {
  ph_io *io = unwrap_io(env, v);
  if (!io) ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "expected a native Tun or Udp handle");
  return io;
}

ph_io *ph_io_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv,
                  bool require_open) {
  napi_value self;
  size_t zero = 0;
  if (napi_get_cb_info(env, info, argc ? argc : &zero, argv, &self, NULL) != napi_ok) return NULL;
  ph_io *io = unwrap_io(env, self);
  if (!io) {
    ph_throw(env, "ERR_INVALID_THIS", 0, "not a native pinhole handle");
    return NULL;
  }
  if (require_open && io->closed) {
    ph_throw(env, "ERR_CLOSED", 0, "%s is closed", io->resource_name);
    return NULL;
  }
  return io;
}

// setReceiver(slab, slotSize, headroom, tailroom, maxBatch, lengths, addrs|null, onPackets, onError)
static napi_value m_set_receiver(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value a[9];
  ph_io *io = ph_io_this(env, info, &argc, a, true);
  if (!io) return NULL;
  uint8_t *slab, *addrs = NULL;
  size_t slab_len, lengths_len, addrs_len = 0;
  uint32_t slot_size, headroom, tailroom, max_batch, *lengths;
  if (!ph_arg_bytes(env, a[0], "slab", &slab, &slab_len) ||
      !ph_arg_u32(env, a[1], "slotSize", &slot_size) ||
      !ph_arg_u32(env, a[2], "headroom", &headroom) ||
      !ph_arg_u32(env, a[3], "tailroom", &tailroom) ||
      !ph_arg_u32(env, a[4], "maxBatch", &max_batch) ||
      !ph_arg_u32array(env, a[5], "lengths", &lengths, &lengths_len) ||
      !ph_arg_function(env, a[7], "onPackets") || !ph_arg_function(env, a[8], "onError"))
    return NULL;
  bool has_addrs = !ph_arg_is_nullish(env, a[6]);
  if (has_addrs && !ph_arg_bytes(env, a[6], "addrs", &addrs, &addrs_len)) return NULL;
  if (io->needs_addrs && !has_addrs) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "addrs must be a Uint8Array of maxBatch*20 bytes");
    return NULL;
  }
  if (max_batch == 0 || max_batch > 1024 || (uint64_t)headroom + tailroom >= slot_size ||
      (uint64_t)max_batch * slot_size > slab_len || lengths_len < max_batch ||
      (has_addrs && addrs_len < (size_t)max_batch * 20)) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0,
             "receiver does not fit: need 1 <= maxBatch <= 1024, headroom + tailroom < slotSize, "
             "slab >= maxBatch*slotSize, lengths >= maxBatch, addrs >= maxBatch*20");
    return NULL;
  }
  release_receiver(io);
  napi_value name;
  PH_NAPI(env, napi_create_string_utf8(env, io->resource_name, NAPI_AUTO_LENGTH, &name));
  napi_value self;
  PH_NAPI(env, napi_get_reference_value(env, io->self_ref, &self));
  PH_NAPI(env, napi_async_init(env, self, name, &io->async_ctx));
  PH_NAPI(env, napi_create_reference(env, a[0], 1, &io->slab_ref));
  PH_NAPI(env, napi_create_reference(env, a[5], 1, &io->lengths_ref));
  if (has_addrs) PH_NAPI(env, napi_create_reference(env, a[6], 1, &io->addrs_ref));
  PH_NAPI(env, napi_create_reference(env, a[7], 1, &io->on_packets_ref));
  PH_NAPI(env, napi_create_reference(env, a[8], 1, &io->on_error_ref));
  io->slab = slab;
  io->slab_len = slab_len;
  io->slot_size = slot_size;
  io->headroom = headroom;
  io->capacity = slot_size - headroom - tailroom;
  io->max_batch = max_batch;
  io->lengths = lengths;
  io->addrs = addrs;
  if (io->on_receiver && !io->on_receiver(io)) return NULL;
  if (!start_polling(io)) return NULL;
  return NULL;
}

// setBusyPoll(group: BusyPoll | null): joins the group, leaving the previous one.
static napi_value m_set_busy_poll(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  ph_io *io = ph_io_this(env, info, &argc, a, true);
  if (!io) return NULL;
  ph_busy_poll *g = NULL;
  if (argc >= 1 && !ph_arg_is_nullish(env, a[0])) {
    g = ph_busy_poll_join(env, a[0]);
    if (!g) return NULL;
  }
  napi_ref ref = NULL;
  if (g && napi_create_reference(env, a[0], 1, &ref) != napi_ok) {
    ph_busy_poll_leave(g);
    ph_throw_napi_failure(env, "napi_create_reference");
    return NULL;
  }
  if (io->busy) ph_busy_poll_leave(io->busy);
  delete_ref(env, &io->busy_ref);
  io->busy = g;
  io->busy_ref = ref;
  return NULL;
}

static napi_value m_pause(napi_env env, napi_callback_info info) {
  ph_io *io = ph_io_this(env, info, NULL, NULL, false);
  if (!io || io->closed) return NULL;
  io->paused = 1;
  if (io->polling) {
    uv_poll_stop(&io->poll);
    uv_timer_stop(&io->flush);
  }
  io->polling = 0;
  return NULL;
}

static napi_value m_resume(napi_env env, napi_callback_info info) {
  ph_io *io = ph_io_this(env, info, NULL, NULL, true);
  if (!io) return NULL;
  io->paused = 0;
  io->fatal_errno = 0;
  start_polling(io);
  return NULL;
}

static napi_value m_ref(napi_env env, napi_callback_info info) {
  ph_io *io = ph_io_this(env, info, NULL, NULL, false);
  if (!io) return NULL;
  io->unrefed = 0;
  if (io->poll_inited && !io->closed) {
    uv_ref((uv_handle_t *)&io->poll);
    uv_ref((uv_handle_t *)&io->flush);
  }
  return NULL;
}

static napi_value m_unref(napi_env env, napi_callback_info info) {
  ph_io *io = ph_io_this(env, info, NULL, NULL, false);
  if (!io) return NULL;
  io->unrefed = 1;
  if (io->poll_inited && !io->closed) {
    uv_unref((uv_handle_t *)&io->poll);
    uv_unref((uv_handle_t *)&io->flush);
  }
  return NULL;
}

static napi_value m_close(napi_env env, napi_callback_info info) {
  ph_io *io = ph_io_this(env, info, NULL, NULL, false);
  if (io) ph_io_close(io);
  return NULL;
}

static napi_value m_counters(napi_env env, napi_callback_info info) {
  ph_io *io = ph_io_this(env, info, NULL, NULL, false);
  if (!io) return NULL;
  napi_value o, v;
  PH_NAPI(env, napi_create_object(env, &o));
#define SET(name, field)                                        \
  PH_NAPI(env, napi_create_double(env, (double)io->c.field, &v)); \
  PH_NAPI(env, napi_set_named_property(env, o, name, v));
  SET("rxPackets", rx_packets)
  SET("rxBytes", rx_bytes)
  SET("rxBatches", rx_batches)
  SET("rxDrops", rx_drops)
  SET("rxErrors", rx_errors)
  SET("rxGro", rx_gro)
  SET("txPackets", tx_packets)
  SET("txBytes", tx_bytes)
  SET("txDrops", tx_drops)
  SET("txErrors", tx_errors)
  SET("txGso", tx_gso)
#undef SET
  if (io->c.last_errno) {
    PH_NAPI(env, napi_create_string_utf8(env, ph_errno_name(io->c.last_errno), NAPI_AUTO_LENGTH, &v));
  } else {
    PH_NAPI(env, napi_get_null(env, &v));
  }
  PH_NAPI(env, napi_set_named_property(env, o, "lastError", v));
  return o;
}

size_t ph_io_methods(napi_property_descriptor *out) {
  napi_property_descriptor d[] = {
      {"setReceiver", NULL, m_set_receiver, NULL, NULL, NULL, napi_default, NULL},
      {"setBusyPoll", NULL, m_set_busy_poll, NULL, NULL, NULL, napi_default, NULL},
      {"pause", NULL, m_pause, NULL, NULL, NULL, napi_default, NULL},
      {"resume", NULL, m_resume, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, m_ref, NULL, NULL, NULL, napi_default, NULL},
      {"unref", NULL, m_unref, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, m_close, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, m_counters, NULL, NULL, NULL, napi_default, NULL},
  };
  size_t n = sizeof d / sizeof d[0];
  memcpy(out, d, sizeof d);
  return n;
}
