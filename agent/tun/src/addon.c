// Module entry: exports the native classes { Tun, Udp, BusyPoll, Icmp, FastPath, checkDestinations },
// the socket-mark functions { markedTcpSocket, socketMark }, { peerCred, groupId, groupName } and
// the libsodium calls of sodium_calls.h (disco's precomputed box key among them).
#include <node_api.h>

#include "busy_poll.h"
#include "errors.h"
#include "fast_flows.h"
#include "tun_offload.h"
#include "fastpath.h"
#include "icmp.h"
#include "sockmark.h"
#include "sodium_calls.h"
#include "peercred.h"
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
  PH_NAPI(env, ph_sockmark_define(env, exports));
  static const struct { const char *name; napi_callback fn; } functions[] = {
    {"peerCred", ph_peer_cred}, {"groupId", ph_group_id}, {"groupName", ph_group_name},
    {"boxBeforenm", ph_box_beforenm},
    {"aeadSeal", ph_aead_seal}, {"aeadOpen", ph_aead_open}, {"scalarmult", ph_scalarmult}, {"scalarmultBase", ph_scalarmult_base},
    {"secretboxSeal", ph_secretbox_seal}, {"secretboxOpen", ph_secretbox_open}, {"randomBytes", ph_random_bytes}, {"bytesEqual", ph_bytes_equal},
  };
  if (!ph_sodium_ready()) {
    ph_throw(env, "ERR_CRYPTO", 0, "libsodium failed to initialise");
    return NULL;
  }
  for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
    napi_value fn;
    PH_NAPI(env, napi_create_function(env, functions[i].name, NAPI_AUTO_LENGTH, functions[i].fn, NULL, &fn));
    PH_NAPI(env, napi_set_named_property(env, exports, functions[i].name, fn));
  }
  napi_value check = ph_fast_define_check(env);
  if (!check) return NULL;
  PH_NAPI(env, napi_set_named_property(env, exports, "checkDestinations", check));
  if (!ph_offload_define_checks(env, exports)) return NULL;
  napi_value flows = ph_flow_define_check(env);
  if (!flows) return NULL;
  PH_NAPI(env, napi_set_named_property(env, exports, "flowVerdicts", flows));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
