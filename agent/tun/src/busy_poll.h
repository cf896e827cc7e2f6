// Busy polling: after a member handle (TUN device, UDP socket) delivered a small batch, keep
// the event loop from sleeping in epoll for a short budget, so that the next packet — typically
// the reply to the one just forwarded — is picked up within a few µs instead of after a wake-up
// of the thread (and, in a VM, of a halted vCPU).
//
// Mechanism: a libuv idle handle. While it is active libuv polls with timeout 0, so every fd of
// the loop (both members included) is checked each iteration and a ready one is delivered by
// its normal uv_poll callback: no second delivery path, no re-entrancy. The idle callback yields
// the CPU (sched_yield) so runnable processes are not starved, and stops the handle once the
// budget has passed without a delivery. Batches above `small_batch` packets (smoothed) mean bulk
// traffic, where queues do not empty and spinning would only take CPU from the senders. A yield
// that lost the CPU for a while means the CPU is shared: spinning cannot keep it awake for us
// then, and a yielding task waits out the others' time slices where a woken one would preempt
// them, so the group finishes that poll and sleeps in epoll for a backoff that doubles while
// the CPU stays shared (20 ms up to 1 s) and resets after a window that kept the CPU.
#ifndef PH_BUSY_POLL_H
#define PH_BUSY_POLL_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct ph_busy_poll {
  napi_env env;
  uv_idle_t idle;
  uint64_t budget_ns;    // 0: never spin
  uint32_t small_batch;  // smoothed batch size above which traffic counts as bulk
  uint32_t batch_avg16;  // moving average of delivered batch sizes, x16
  uint64_t deadline;     // uv_hrtime() after which the loop may sleep again
  uint64_t window_start;
  uint64_t quiet_until;  // no spinning before this uv_hrtime() (the CPU was contended)
  uint64_t backoff_ns;   // the next quiet period after a contended window
  int members;  // open handles in the group; each holds the struct alive
  unsigned idle_inited : 1, spinning : 1, closed : 1, uv_closed : 1, finalized : 1, cleanup_hook : 1,
      lost_cpu : 1;  // the last sched_yield() kept us off the CPU for CONTENDED_NS or more
  // counters
  uint64_t windows;      // times the loop was kept hot
  uint64_t hot_wakes;    // deliveries that found the loop hot: each one a wake-up from idle saved
  uint64_t hot_ns;       // time spent hot
  uint64_t contended;    // windows cut short because other tasks shared the CPU
} ph_busy_poll;

// A member delivered n packets in one wake-up: update the bulk estimate, (re)arm the budget.
void ph_busy_poll_delivered(ph_busy_poll *g, uint32_t n);

// Called by a member's poll callback before delivering: counts wake-ups the spin saved.
static inline void ph_busy_poll_note_wake(ph_busy_poll *g) {
  if (g->spinning) g->hot_wakes++;
}

// A member left (closed, or switched group): the struct is freed with its last holder.
void ph_busy_poll_leave(ph_busy_poll *g);

// The group behind a JS BusyPoll object (throws and returns NULL if it is not one), joined:
// the caller must ph_busy_poll_leave() it once.
ph_busy_poll *ph_busy_poll_join(napi_env env, napi_value v);

// Defines the native `BusyPoll` class.
napi_value ph_busy_poll_define(napi_env env);

#endif
