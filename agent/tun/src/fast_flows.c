// Established flows on the native path (fast_flows.h): the key, hash and probing of
// agent/filter/flow-table.ts and the tuple rules of agent/filter/packet-tuple.ts, for plain packets.
#include "fast_flows.h"

#include <string.h>

#include "errors.h"
#include "napi_args.h"

#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58

static inline int32_t be32(const uint8_t *p) {
  return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

// What a plain packet is to the filter.
typedef enum { K_NONE, K_FLOW, K_ANSWER } key_kind;

// Fills key (tag, local, remote, ports) for a plain TCP/UDP/ICMP-echo packet; K_ANSWER for an echo
// reply or ICMP error going out (JS does not track those), K_NONE for anything JS must see.
static key_kind flow_key(const uint8_t *p, uint32_t len, bool inbound, int32_t *key, bool *v6) {
  uint8_t version = p[0] >> 4;
  uint32_t l4;
  uint8_t proto;
  if (version == 4) {
    if (len < 20) return K_NONE;
    uint32_t ihl = (p[0] & 15u) * 4u;
    if (ihl < 20 || ihl > len) return K_NONE;
    if ((p[6] & 0x3f) != 0 || p[7] != 0) return K_NONE;  // a fragment (MF or an offset)
    proto = p[9];
    l4 = ihl;
    *v6 = false;
  } else if (version == 6) {
    if (len < 40) return K_NONE;
    proto = p[6];  // extension headers (fragments among them) go to JS
    l4 = 40;
    *v6 = true;
  } else {
    return K_NONE;
  }
  uint32_t avail = len - l4;
  const uint8_t *t = p + l4;
  uint32_t sport = 0, dport = 0;
  if (proto == PROTO_TCP || proto == PROTO_UDP) {
    if (avail < (proto == PROTO_TCP ? 20u : 8u)) return K_NONE;
    sport = (uint32_t)t[0] << 8 | t[1];
    dport = (uint32_t)t[2] << 8 | t[3];
  } else if ((proto == PROTO_ICMP && !*v6) || (proto == PROTO_ICMPV6 && *v6)) {
    if (avail < 8) return K_NONE;
    uint8_t type = t[0];
    uint32_t id = (uint32_t)t[4] << 8 | t[5];
    bool request = type == (*v6 ? 128 : 8), reply = type == (*v6 ? 129 : 0);
    bool error = *v6 ? type >= 1 && type <= 4 : type == 3 || type == 11 || type == 12;
    if (!inbound && (reply || error)) return K_ANSWER;
    if (request) sport = id;
    else if (reply) dport = id;
    else return K_NONE;
  } else {
    return K_NONE;
  }
  uint32_t local_port = inbound ? dport : sport, remote_port = inbound ? sport : dport;
  key[0] = proto;  // KIND_FLOW (0) | protocol
  uint32_t src = version == 4 ? 12 : 8, dst = version == 4 ? 16 : 24, w = version == 4 ? 1 : 4;
  uint32_t local = inbound ? dst : src, remote = inbound ? src : dst;
  for (uint32_t i = 0; i < w; i++) {
    key[1 + i] = be32(p + local + 4 * i);
    key[1 + w + i] = be32(p + remote + 4 * i);
  }
  key[1 + 2 * w] = (int32_t)((local_port & 0xffff) << 16 | (remote_port & 0xffff));
  return K_FLOW;
}

static uint32_t flow_hash(const int32_t *k, uint32_t words, uint32_t mask) {
  uint32_t h = 0x811c9dc5u;
  for (uint32_t i = 0; i < words; i++) {
    h = (h ^ (uint32_t)k[i]) * 0x01000193u;
    h ^= h >> 15;
  }
  return ((h ^ (h >> 13)) * 0x5bd1e995u) & mask;
}

static inline bool matches(const fp_flow_table *t, uint32_t slot, const int32_t *k) {
  return memcmp(t->keys + (size_t)slot * t->words, k, t->words * 4) == 0;
}

static double timeout_of(const fp_filter *ff, int32_t proto) {
  return proto == PROTO_TCP ? ff->tcp_ms : proto == PROTO_UDP ? ff->udp_ms : ff->other_ms;
}

fp_flow_verdict ph_flow_outbound(const fp_filter *ff, const uint8_t *p, uint32_t len, double now) {
  int32_t key[10];
  bool v6 = false;
  key_kind kind = flow_key(p, len, false, key, &v6);
  if (kind == K_ANSWER) return FP_FLOW_PASS;
  if (kind == K_NONE) return FP_FLOW_JS;
  const fp_flow_table *t = v6 ? &ff->v6 : &ff->v4;
  if (!t->keys) return FP_FLOW_JS;
  double until = now + timeout_of(ff, key[0]);
  uint32_t start = flow_hash(key, t->words, t->mask);
  for (uint32_t i = 0; i < FP_FLOW_PROBE; i++) {
    uint32_t s = (start + i) & t->mask;
    if (!matches(t, s, key)) continue;
    // FlowTable.insert stops at the first slot with the key: live, it is refreshed; expired, JS re-inserts.
    if (!(t->expiry[s] > now)) return FP_FLOW_JS;
    if (t->expiry[s] < until) t->expiry[s] = until;
    t->gen[s] = 0;
    return FP_FLOW_PASS;
  }
  return FP_FLOW_JS;
}

fp_flow_verdict ph_flow_inbound(const fp_filter *ff, const uint8_t *p, uint32_t len, double now) {
  int32_t key[10];
  bool v6 = false;
  if (flow_key(p, len, true, key, &v6) != K_FLOW) return FP_FLOW_JS;
  const fp_flow_table *t = v6 ? &ff->v6 : &ff->v4;
  if (!t->keys) return FP_FLOW_JS;
  uint32_t generation = *ff->generation;
  double until = now + timeout_of(ff, key[0]);
  uint32_t start = flow_hash(key, t->words, t->mask);
  for (uint32_t i = 0; i < FP_FLOW_PROBE; i++) {
    uint32_t s = (start + i) & t->mask;
    uint32_t g = t->gen[s];
    if (t->expiry[s] > now && (g == 0 || g == generation) && matches(t, s, key)) {
      if (t->expiry[s] < until) t->expiry[s] = until;
      return FP_FLOW_PASS;
    }
  }
  return FP_FLOW_JS;
}

static void delete_ref(napi_env env, napi_ref *ref) {
  if (*ref && env) napi_delete_reference(env, *ref);
  *ref = NULL;
}

static void clear_table(napi_env env, fp_flow_table *t) {
  for (int i = 0; i < 3; i++) delete_ref(env, &t->refs[i]);
  memset(t, 0, sizeof *t);
}

void ph_flow_clear(napi_env env, fp_filter *ff) {
  clear_table(env, &ff->v4);
  clear_table(env, &ff->v6);
  delete_ref(env, &ff->generation_ref);
  memset(ff, 0, sizeof *ff);
}

// One typed array of `type` whose element count is returned in *len.
static bool typed(napi_env env, napi_value v, napi_typedarray_type want, const char *what, void **data, size_t *len) {
  bool is = false;
  napi_typedarray_type type;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) != napi_ok || type != want) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "%s has the wrong type", what);
    return false;
  }
  return true;
}

// keys: Int32Array (slots × words), expiry: Float64Array (slots), gen: Uint32Array (slots).
static bool table_from(napi_env env, napi_value *a, uint32_t words, fp_flow_table *t) {
  void *k, *e, *g;
  size_t nk, ne, ng;
  if (!typed(env, a[0], napi_int32_array, "keys", &k, &nk) || !typed(env, a[1], napi_float64_array, "expiry", &e, &ne) ||
      !typed(env, a[2], napi_uint32_array, "generation", &g, &ng))
    return false;
  if (ne < FP_FLOW_PROBE || (ne & (ne - 1)) != 0 || ng != ne || nk != ne * words) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "a flow table needs a power-of-two slot count and %u key words a slot", words);
    return false;
  }
  *t = (fp_flow_table){.keys = k, .expiry = e, .gen = g, .mask = (uint32_t)ne - 1, .words = words};
  for (int i = 0; i < 3; i++) {
    if (napi_create_reference(env, a[i], 1, &t->refs[i]) != napi_ok) {
      clear_table(env, t);
      ph_throw_napi_failure(env, "napi_create_reference");
      return false;
    }
  }
  return true;
}

// a: v4 keys, v4 expiry, v4 generation, v6 keys, v6 expiry, v6 generation,
//    state: Uint32Array [generation], timeouts: Float64Array [tcp, udp, other] (ms).
bool ph_flow_set(napi_env env, fp_filter *ff, napi_value *a) {
  fp_filter next = {0};
  void *gen, *timeouts;
  size_t ngen, ntimeouts;
  if (!typed(env, a[6], napi_uint32_array, "state", &gen, &ngen) ||
      !typed(env, a[7], napi_float64_array, "timeouts", &timeouts, &ntimeouts))
    return false;
  if (ngen < 1 || ntimeouts < 3) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "state needs 1 element and timeouts 3");
    return false;
  }
  if (!table_from(env, a, 4, &next.v4)) return false;
  if (!table_from(env, a + 3, 10, &next.v6)) {
    clear_table(env, &next.v4);
    return false;
  }
  if (napi_create_reference(env, a[6], 1, &next.generation_ref) != napi_ok) {
    clear_table(env, &next.v4);
    clear_table(env, &next.v6);
    ph_throw_napi_failure(env, "napi_create_reference");
    return false;
  }
  const double *to = timeouts;
  next.generation = gen;
  next.tcp_ms = to[0];
  next.udp_ms = to[1];
  next.other_ms = to[2];
  next.on = true;
  ph_flow_clear(env, ff);
  *ff = next;
  return true;
}

// flowVerdicts(tables 0..7 as for setFilter, slab, offsets, lengths, inbound: bool, nowMs, out: Uint8Array)
// out[i] = 1 when packet i passes natively, 0 when it is left to JS.
static napi_value m_flow_verdicts(napi_env env, napi_callback_info info) {
  size_t argc = 14;
  napi_value a[14];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  if (argc < 14) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "flowVerdicts(v4keys, v4expiry, v4gen, v6keys, v6expiry, v6gen, state, timeouts, slab, offsets, lengths, inbound, nowMs, out)");
    return NULL;
  }
  uint8_t *slab, *offs, *lens, *out;
  size_t slab_len, offs_len, lens_len, out_len;
  bool inbound = false;
  double now;
  if (!ph_arg_bytes(env, a[8], "slab", &slab, &slab_len) || !ph_arg_bytes(env, a[9], "offsets", &offs, &offs_len) ||
      !ph_arg_bytes(env, a[10], "lengths", &lens, &lens_len) || !ph_arg_bytes(env, a[13], "out", &out, &out_len))
    return NULL;
  PH_NAPI(env, napi_get_value_bool(env, a[11], &inbound));
  PH_NAPI(env, napi_get_value_double(env, a[12], &now));
  size_t n = out_len;
  if (offs_len / 4 < n || lens_len / 4 < n) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "offsets and lengths need one entry per out byte");
    return NULL;
  }
  fp_filter ff = {0};
  if (!ph_flow_set(env, &ff, a)) return NULL;
  for (size_t i = 0; i < n; i++) {
    uint32_t off, len;
    memcpy(&off, offs + 4 * i, 4);
    memcpy(&len, lens + 4 * i, 4);
    if ((size_t)off > slab_len || (size_t)len > slab_len - off || len == 0) {
      out[i] = 0;
      continue;
    }
    const uint8_t *p = slab + off;
    out[i] = (inbound ? ph_flow_inbound(&ff, p, len, now) : ph_flow_outbound(&ff, p, len, now)) == FP_FLOW_PASS;
  }
  ph_flow_clear(env, &ff);
  return NULL;
}

napi_value ph_flow_define_check(napi_env env) {
  napi_value fn;
  PH_NAPI(env, napi_create_function(env, "flowVerdicts", NAPI_AUTO_LENGTH, m_flow_verdicts, NULL, &fn));
  return fn;
}
