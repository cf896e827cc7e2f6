// Module entry: exports the native classes { Tun, Udp, BusyPoll, Icmp, FastPath, checkDestinations }.
#include <node_api.h>

#include "busy_poll.h"
#include "errors.h"
#include "fastpath.h"
#include "icmp.h"
#include "tun.h"
#include "udp.h"

static napi_value init(napi_env env, napi_value exports) {
  napi_value tun = ph_tun_define(env);
  if (!tun) return NULL;
  napi_value udp = ph_udp_define(env);
  if (!udp) return NULL;
  PH_NAPI(env, napi_set_named_property(env, exports, "Tun", tun));
  PH_NAPI(env, napi_set_named_property(env, exports, "Udp", udp));
  napi_value busy_poll = ph_busy_poll_define(env);
  if (!busy_poll) return NULL;
  PH_NAPI(env, napi_set_named_property(env, exports, "BusyPoll", busy_poll));
  napi_value icmp = ph_icmp_define(env);
  if (!icmp) return NULL;
  PH_NAPI(env, napi_set_named_property(env, exports, "Icmp", icmp));
  napi_value fast = ph_fast_define(env);
  if (!fast) return NULL;
  PH_NAPI(env, napi_set_named_property(env, exports, "FastPath", fast));
  napi_value check = ph_fast_define_check(env);
  if (!check) return NULL;
  PH_NAPI(env, napi_set_named_property(env, exports, "checkDestinations", check));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
