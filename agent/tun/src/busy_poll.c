// The BusyPoll group: an unref'd libuv idle handle kept active for a budget after each small
// delivery by a member (see busy_poll.h), its lifetime and its counters.
#include "busy_poll.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "errors.h"
#include "napi_args.h"

// Tells a BusyPoll object apart from the other wrapped classes.
static const napi_type_tag BUSY_POLL_TAG = {0x70696e686f6c6542ULL, 0x757379506f6c6c31ULL};

// Largest budget accepted: beyond a few ms busy polling only burns CPU.
#define MAX_BUDGET_US 100000
// A sched_yield() that kept us off the CPU this long means other tasks run on this CPU...
#define CONTENDED_NS 50000
// ...and the group then leaves the CPU to them (sleeps in epoll), at first for BACKOFF_MIN_NS,
// twice as long after each window cut short in a row.
#define BACKOFF_MIN_NS 20000000
#define BACKOFF_MAX_NS 1000000000

static void maybe_free(ph_busy_poll *g) {
  if (g->finalized && g->members == 0 && g->uv_closed) free(g);
}

static void stop_spinning(ph_busy_poll *g, uint64_t now) {
  if (!g->spinning) return;
  uv_idle_stop(&g->idle);
  g->spinning = 0;
  g->hot_ns += now - g->window_start;
}

static void on_idle(uv_idle_t *h) {
  ph_busy_poll *g = h->data;
  uint64_t now = uv_hrtime();
  if (g->lost_cpu) {  // the poll after that yield is done: leave the CPU to the others
    g->contended++;
    g->quiet_until = now + g->backoff_ns;
    g->backoff_ns = g->backoff_ns * 2 < BACKOFF_MAX_NS ? g->backoff_ns * 2 : BACKOFF_MAX_NS;
    stop_spinning(g, now);
    return;
  }
  if (now >= g->deadline || g->closed || g->members == 0) {
    g->backoff_ns = BACKOFF_MIN_NS;  // a whole window with the CPU to ourselves
    stop_spinning(g, now);
    return;
  }
  // libuv polls all fds with timeout 0 right after this; let other runnable tasks go first.
  sched_yield();
  if (uv_hrtime() - now >= CONTENDED_NS) g->lost_cpu = 1;
}

void ph_busy_poll_delivered(ph_busy_poll *g, uint32_t n) {
  if (g->closed) return;
  int32_t avg = (int32_t)g->batch_avg16;
  avg += ((int32_t)(n << 4) - avg) / 4;
  g->batch_avg16 = (uint32_t)avg;
  if (g->budget_ns == 0 || g->members == 0) return;
  uint64_t now = uv_hrtime();
  if (g->batch_avg16 > g->small_batch << 4) {  // bulk: the queues keep the loop busy anyway
    stop_spinning(g, now);
    return;
  }
  if (now < g->quiet_until) return;
  g->deadline = now + g->budget_ns;
  if (g->spinning) return;
  if (uv_idle_start(&g->idle, on_idle) < 0) return;
  g->spinning = 1;
  g->lost_cpu = 0;
  g->windows++;
  g->window_start = now;
}

static void on_uv_closed(uv_handle_t *h) {
  ph_busy_poll *g = h->data;
  g->uv_closed = 1;
  maybe_free(g);
}

// Stops spinning for good; safe to call repeatedly and from inside a member's callback.
static void close_group(ph_busy_poll *g) {
  if (g->closed) return;
  g->closed = 1;
  if (g->idle_inited) {
    stop_spinning(g, uv_hrtime());
    uv_close((uv_handle_t *)&g->idle, on_uv_closed);
  } else {
    g->uv_closed = 1;
  }
}

void ph_busy_poll_leave(ph_busy_poll *g) {
  g->members--;
  if (g->members == 0 && g->spinning) stop_spinning(g, uv_hrtime());
  maybe_free(g);
}

static void cleanup_hook(void *arg) {
  ph_busy_poll *g = arg;
  g->cleanup_hook = 0;
  close_group(g);
}

static void remove_cleanup_hook(ph_busy_poll *g) {
  if (!g->cleanup_hook) return;
  g->cleanup_hook = 0;
  napi_remove_env_cleanup_hook(g->env, cleanup_hook, g);
}

static void finalize(napi_env env, void *data, void *hint) {
  ph_busy_poll *g = data;
  remove_cleanup_hook(g);
  close_group(g);
  g->finalized = 1;
  maybe_free(g);
}

static ph_busy_poll *unwrap(napi_env env, napi_value v) {
  bool tagged = false;
  void *data = NULL;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_object ||
      napi_check_object_type_tag(env, v, &BUSY_POLL_TAG, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, v, &data) != napi_ok || !data) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "not a BusyPoll group");
    return NULL;
  }
  return data;
}

ph_busy_poll *ph_busy_poll_join(napi_env env, napi_value v) {
  ph_busy_poll *g = unwrap(env, v);
  if (!g) return NULL;
  if (g->closed) {
    ph_throw(env, "ERR_CLOSED", 0, "BusyPoll group is closed");
    return NULL;
  }
  g->members++;
  return g;
}

// new BusyPoll(budgetMicros, smallBatch)
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2], self;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, &self, NULL));
  uint32_t budget_us, small_batch;
  if (!ph_arg_u32(env, a[0], "budgetMicros", &budget_us) || !ph_arg_u32(env, a[1], "smallBatch", &small_batch))
    return NULL;
  if (budget_us > MAX_BUDGET_US || small_batch < 1 || small_batch > 1024) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "need 0 <= budgetMicros <= %d and 1 <= smallBatch <= 1024", MAX_BUDGET_US);
    return NULL;
  }
  uv_loop_t *loop;
  PH_NAPI(env, napi_get_uv_event_loop(env, &loop));
  ph_busy_poll *g = calloc(1, sizeof *g);
  if (!g) {
    ph_throw(env, "ENOMEM", ENOMEM, "out of memory");
    return NULL;
  }
  g->env = env;
  g->budget_ns = (uint64_t)budget_us * 1000;
  g->small_batch = small_batch;
  g->backoff_ns = BACKOFF_MIN_NS;
  if (uv_idle_init(loop, &g->idle) == 0) {
    g->idle.data = g;
    g->idle_inited = 1;
    uv_unref((uv_handle_t *)&g->idle);  // never keeps the process alive by itself
  } else {
    g->uv_closed = 1;
    g->budget_ns = 0;
  }
  if (napi_wrap(env, self, g, finalize, NULL, NULL) != napi_ok) {
    g->finalized = 1;
    close_group(g);
    maybe_free(g);
    ph_throw_napi_failure(env, "napi_wrap");
    return NULL;
  }
  PH_NAPI(env, napi_type_tag_object(env, self, &BUSY_POLL_TAG));
  if (napi_add_env_cleanup_hook(env, cleanup_hook, g) == napi_ok) g->cleanup_hook = 1;
  return self;
}

static ph_busy_poll *this_group(napi_env env, napi_callback_info info) {
  napi_value self;
  size_t argc = 0;
  if (napi_get_cb_info(env, info, &argc, NULL, &self, NULL) != napi_ok) return NULL;
  return unwrap(env, self);
}

static napi_value m_close(napi_env env, napi_callback_info info) {
  ph_busy_poll *g = this_group(env, info);
  if (!g) return NULL;
  remove_cleanup_hook(g);
  close_group(g);
  return NULL;
}

// counters() -> { windows, hotWakes, hotMicros, contended, spinning }
static napi_value m_counters(napi_env env, napi_callback_info info) {
  ph_busy_poll *g = this_group(env, info);
  if (!g) return NULL;
  uint64_t hot_ns = g->hot_ns + (g->spinning ? uv_hrtime() - g->window_start : 0);
  napi_value o, v;
  PH_NAPI(env, napi_create_object(env, &o));
  PH_NAPI(env, napi_create_double(env, (double)g->windows, &v));
  PH_NAPI(env, napi_set_named_property(env, o, "windows", v));
  PH_NAPI(env, napi_create_double(env, (double)g->hot_wakes, &v));
  PH_NAPI(env, napi_set_named_property(env, o, "hotWakes", v));
  PH_NAPI(env, napi_create_double(env, (double)(hot_ns / 1000), &v));
  PH_NAPI(env, napi_set_named_property(env, o, "hotMicros", v));
  PH_NAPI(env, napi_create_double(env, (double)g->contended, &v));
  PH_NAPI(env, napi_set_named_property(env, o, "contended", v));
  PH_NAPI(env, napi_get_boolean(env, g->spinning, &v));
  PH_NAPI(env, napi_set_named_property(env, o, "spinning", v));
  return o;
}

napi_value ph_busy_poll_define(napi_env env) {
  napi_property_descriptor props[] = {
      {"close", NULL, m_close, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, m_counters, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  PH_NAPI(env, napi_define_class(env, "BusyPoll", NAPI_AUTO_LENGTH, construct, NULL, 2, props, &cls));
  return cls;
}
