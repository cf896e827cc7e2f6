// The packet filter's established flows on the native data path. The tables are the JS filter's
// own typed arrays (agent/filter/flow-table.ts), shared, not copied: JS inserts new flows (it
// alone decides by the rules), the native path looks flows up and refreshes their expiry, with
// the same key layout, hash and probing as the JS code. Only plain packets are handled here:
// unfragmented IPv4 or IPv6 without extension headers, carrying TCP, UDP or an ICMP echo; anything
// else (fragments, ICMP errors, other protocols) is left to JS, which knows the rest of the rules.
#ifndef PH_FAST_FLOWS_H
#define PH_FAST_FLOWS_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

#define FP_FLOW_PROBE 8  // flow-table.ts PROBE

typedef struct fp_flow_table {
  int32_t *keys;
  double *expiry;
  uint32_t *gen;
  uint32_t mask, words;
  napi_ref refs[3];
} fp_flow_table;

typedef struct fp_filter {
  bool on;
  fp_flow_table v4, v6;
  uint32_t *generation;  // the filter's current rule generation (JS writes, native reads)
  napi_ref generation_ref;
  double tcp_ms, udp_ms, other_ms;
} fp_filter;

// What the native path may do with a packet under the filter.
typedef enum { FP_FLOW_JS = 0, FP_FLOW_PASS = 1 } fp_flow_verdict;

// A packet from the TUN (p, len: a whole IP packet): PASS when it needs no tracking (an echo reply
// or ICMP error) or belongs to a live flow, whose expiry is refreshed and which becomes valid in
// every generation (what JS trackOutbound does for a known flow); JS otherwise.
fp_flow_verdict ph_flow_outbound(const fp_filter *ff, const uint8_t *p, uint32_t len, double now);
// A decrypted packet for this node: PASS when it belongs to a live flow of this generation (expiry
// refreshed, as JS allowInbound's table lookup); JS otherwise (the rules, fragments, ICMP errors).
fp_flow_verdict ph_flow_inbound(const fp_filter *ff, const uint8_t *p, uint32_t len, double now);

// Replaces the filter from JS arguments (a[0..7], see fastpath.c setFilter); throws on bad ones.
bool ph_flow_set(napi_env env, fp_filter *ff, napi_value *a);
void ph_flow_clear(napi_env env, fp_filter *ff);

// flowVerdicts(...): the verdicts of the code above for a batch, for the differential test
// against the JS filter (test/unit/native-flows.test.ts).
napi_value ph_flow_define_check(napi_env env);

#endif
