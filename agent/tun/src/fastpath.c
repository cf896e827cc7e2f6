// The native `FastPath` class: JS's handle on the native data path (fastpath.h). JS creates one
// per device over its Tun and Udp handles and keeps it in step (agent/wireguard/fast-path.ts).
#include "fastpath.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "addr20.h"
#include "errors.h"
#include "napi_args.h"

static const napi_type_tag FAST_TAG = {0x70696e686f6c6546ULL, 0x6173745061746831ULL};

static void delete_ref(napi_env env, napi_ref *ref) {
  if (*ref) {
    napi_delete_reference(env, *ref);
    *ref = NULL;
  }
}

static void free_keypair(napi_env env, fp_keypair *k) {
  sodium_memzero(k->send_key, sizeof k->send_key);
  sodium_memzero(k->recv_key, sizeof k->recv_key);
  if (env) delete_ref(env, &k->st_ref);
  free(k);
}

static void remove_keypair(ph_fast *f, uint32_t local_index) {
  fp_keypair **pp = &f->buckets[local_index % FP_KP_BUCKETS];
  while (*pp && (*pp)->local_index != local_index) pp = &(*pp)->next_in_bucket;
  fp_keypair *k = *pp;
  if (!k) return;
  *pp = k->next_in_bucket;
  for (uint32_t s = 0; s < f->peer_cap; s++) {
    if (f->peers[s].send == k) {
      f->peers[s].send = NULL;
      f->peers[s].send_ok = false;
    }
  }
  free_keypair(f->env, k);
}

static void detach_io(void *ctx, ph_io *io) {
  ph_fast *f = ctx;
  if (f->tun == io) f->tun = NULL;
  if (f->udp == io) f->udp = NULL;
}

// Unhooks from both handles and drops every key; env NULL at finalization (no JS calls then).
static void fast_close(ph_fast *f, napi_env env) {
  if (f->closed) return;
  f->closed = true;
  f->out_on = f->in_on = f->in_hand_back = false;
  ph_flow_clear(env, &f->filter);
  ph_io *ios[2] = {f->tun, f->udp};
  for (int i = 0; i < 2; i++) {
    if (ios[i] && ios[i]->fast_ctx == f) {
      ios[i]->fast = NULL;
      ios[i]->fast_ctx = NULL;
      ios[i]->fast_detach = NULL;
    }
  }
  f->tun = f->udp = NULL;
  for (uint32_t b = 0; b < FP_KP_BUCKETS; b++) {
    fp_keypair *k = f->buckets[b];
    while (k) {
      fp_keypair *next = k->next_in_bucket;
      free_keypair(env, k);
      k = next;
    }
    f->buckets[b] = NULL;
  }
  for (uint32_t s = 0; s < f->peer_cap; s++)
    if (env) delete_ref(env, &f->peers[s].st_ref);
  free(f->peers);
  f->peers = NULL;
  f->peer_cap = 0;
  ph_fast_free_routes(&f->r4);
  ph_fast_free_routes(&f->r6);
  ph_fast_free_routes(&f->l4);
  ph_fast_free_routes(&f->l6);
  if (env) {
    delete_ref(env, &f->tun_ref);
    delete_ref(env, &f->udp_ref);
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  ph_fast *f = data;
  fast_close(f, NULL);
  free(f->offs);
  free(f->lens);
  free(f->addrs);
  free(f);
}

// The FastPath behind `this` (and the arguments). Throws unless it is one, and, when
// require_open, unless it is still open.
static ph_fast *fast_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv, bool require_open) {
  napi_value self;
  void *data = NULL;
  bool tagged = false;
  size_t zero = 0;
  if (napi_get_cb_info(env, info, argc ? argc : &zero, argv, &self, NULL) != napi_ok) return NULL;
  if (napi_check_object_type_tag(env, self, &FAST_TAG, &tagged) != napi_ok || !tagged ||
      napi_unwrap(env, self, &data) != napi_ok || !data) {
    ph_throw(env, "ERR_INVALID_THIS", 0, "not a native FastPath");
    return NULL;
  }
  ph_fast *f = data;
  if (require_open && f->closed) {
    ph_throw(env, "ERR_CLOSED", 0, "FastPath is closed");
    return NULL;
  }
  return f;
}

static bool arg_double(napi_env env, napi_value v, const char *what, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "%s must be a number", what);
    return false;
  }
  return true;
}

// A Float64Array of at least `min` elements; throws otherwise.
static bool arg_f64array(napi_env env, napi_value v, const char *what, size_t min, double **out) {
  bool is = false;
  napi_typedarray_type type;
  size_t len;
  void *data;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is ||
      napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok || type != napi_float64_array ||
      len < min) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "%s must be a Float64Array of at least %zu", what, min);
    return false;
  }
  *out = data;
  return true;
}

// new FastPath(tun, udp, limits: Float64Array[6], mtu, nowMs)
// limits: REJECT_AFTER_TIME, REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME,
// KEEPALIVE_TIMEOUT, REKEY_TIMEOUT (ms / messages, as proto/wireguard/constants.ts).
static napi_value m_construct(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value a[5], self;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, &self, NULL));
  ph_io *tun = ph_io_from_value(env, a[0]);
  if (!tun) return NULL;
  ph_io *udp = ph_io_from_value(env, a[1]);
  if (!udp) return NULL;
  if (tun->closed || udp->closed || tun->fast || udp->fast || !udp->needs_addrs) {
    ph_throw(env, "ERR_INVALID_STATE", 0, "FastPath needs an open Tun and an open Udp handle without one");
    return NULL;
  }
  double *l;
  if (!arg_f64array(env, a[2], "limits", 6, &l)) return NULL;
  uint32_t mtu;
  double now;
  if (!ph_arg_u32(env, a[3], "mtu", &mtu) || !arg_double(env, a[4], "nowMs", &now)) return NULL;
  if (sodium_init() < 0) {
    ph_throw(env, "ERR_CRYPTO", 0, "libsodium failed to initialise");
    return NULL;
  }
  ph_fast *f = calloc(1, sizeof *f);
  if (!f) {
    ph_throw(env, "ERR_NO_MEMORY", 0, "out of memory");
    return NULL;
  }
  f->env = env;
  f->reject_after_time = l[0];
  f->reject_after_messages = l[1];
  f->rekey_after_messages = l[2];
  f->rekey_after_time = l[3];
  f->keepalive_timeout = l[4];
  f->rekey_timeout = l[5];
  f->mtu = mtu;
  f->clock_ms = now;
  f->clock_hr = uv_hrtime();
  f->scratch = 1024;  // the largest batch a handle accepts
  f->offs = malloc(f->scratch * sizeof *f->offs);
  f->lens = malloc(f->scratch * sizeof *f->lens);
  f->addrs = malloc(f->scratch * 20);
  if (!f->offs || !f->lens || !f->addrs ||
      napi_type_tag_object(env, self, &FAST_TAG) != napi_ok ||
      napi_wrap(env, self, f, finalize, NULL, NULL) != napi_ok) {
    free(f->offs);
    free(f->lens);
    free(f->addrs);
    free(f);
    ph_throw(env, "ERR_NO_MEMORY", 0, "cannot create FastPath");
    return NULL;
  }
  PH_NAPI(env, napi_create_reference(env, a[0], 1, &f->tun_ref));
  PH_NAPI(env, napi_create_reference(env, a[1], 1, &f->udp_ref));
  f->tun = tun;
  f->udp = udp;
  tun->fast = ph_fast_tun;
  udp->fast = ph_fast_udp;
  tun->fast_ctx = udp->fast_ctx = f;
  tun->fast_detach = udp->fast_detach = detach_io;
  return self;
}

// setMode(outbound, inbound, handBack = false): which directions may be taken natively, and
// whether decrypted packets it cannot deliver itself go back to JS (FP_DECRYPTED).
static napi_value m_set_mode(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  bool out = false, in = false, back = false;
  PH_NAPI(env, napi_get_value_bool(env, a[0], &out));
  PH_NAPI(env, napi_get_value_bool(env, a[1], &in));
  if (argc >= 3 && !ph_arg_is_nullish(env, a[2])) PH_NAPI(env, napi_get_value_bool(env, a[2], &back));
  f->out_on = out;
  f->in_on = in;
  f->in_hand_back = back;
  return NULL;
}

// setFilter(v4keys, v4expiry, v4gen, v6keys, v6expiry, v6gen, state, timeouts) shares the packet
// filter's flow tables (fast_flows.h); setFilter(null) turns the native flow checks off.
static napi_value m_set_filter(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value a[8];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  if (argc < 8) {
    if (argc >= 1 && ph_arg_is_nullish(env, a[0])) ph_flow_clear(env, &f->filter);
    else ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "setFilter(null) or setFilter(v4keys, v4expiry, v4gen, v6keys, v6expiry, v6gen, state, timeouts)");
    return NULL;
  }
  ph_flow_set(env, &f->filter, a);
  return NULL;
}

// setPeer(slot, state: Float64Array, endpoint: Uint8Array(20) | null, sendIndex: 0 | local index)
static napi_value m_set_peer(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value a[4];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  uint32_t slot, send_index;
  if (!ph_arg_u32(env, a[0], "slot", &slot) || !ph_arg_u32(env, a[3], "sendIndex", &send_index)) return NULL;
  if (slot >= 1u << 20) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "peer slot %u too large", slot);
    return NULL;
  }
  uint8_t *ep = NULL;
  size_t ep_len = 0;
  if (!ph_arg_is_nullish(env, a[2]) && (!ph_arg_bytes(env, a[2], "endpoint", &ep, &ep_len) || ep_len != 20)) {
    if (ep) ph_throw(env, "ERR_OUT_OF_RANGE", 0, "endpoint must be 20 bytes");
    return NULL;
  }
  if (slot >= f->peer_cap) {
    uint32_t cap = f->peer_cap ? f->peer_cap : 16;
    while (cap <= slot) cap *= 2;
    fp_peer *p = realloc(f->peers, cap * sizeof *p);
    if (!p) {
      ph_throw(env, "ERR_NO_MEMORY", 0, "out of memory");
      return NULL;
    }
    memset(p + f->peer_cap, 0, (cap - f->peer_cap) * sizeof *p);
    f->peers = p;
    f->peer_cap = cap;
  }
  fp_peer *pe = &f->peers[slot];
  double *st;
  napi_ref ref = NULL;
  if (!arg_f64array(env, a[1], "state", FP_PS_COUNT, &st)) return NULL;
  PH_NAPI(env, napi_create_reference(env, a[1], 1, &ref));
  delete_ref(env, &pe->st_ref);
  pe->st = st;
  pe->st_ref = ref;
  pe->used = true;
  pe->has_endpoint = ep != NULL;
  if (ep) memcpy(pe->endpoint, ep, 20);
  pe->send = send_index ? ph_fast_find_keypair(f, send_index) : NULL;
  if (pe->send && pe->send->peer != slot) pe->send = NULL;
  // Only UDP endpoints; relay and birthday addresses stay with JS.
  pe->send_ok = pe->send && ep && ph_addr20_is_udp(ep);
  return NULL;
}

// removePeer(slot): forgets the peer and every keypair it had.
static napi_value m_remove_peer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  uint32_t slot;
  if (!ph_arg_u32(env, a[0], "slot", &slot)) return NULL;
  if (slot >= f->peer_cap) return NULL;
  for (uint32_t b = 0; b < FP_KP_BUCKETS; b++) {
    for (fp_keypair *k = f->buckets[b], *next; k; k = next) {
      next = k->next_in_bucket;
      if (k->peer == slot) remove_keypair(f, k->local_index);
    }
  }
  fp_peer *pe = &f->peers[slot];
  delete_ref(env, &pe->st_ref);
  memset(pe, 0, sizeof *pe);
  return NULL;
}

// addKeypair(localIndex, remoteIndex, slot, sendKey, receiveKey, initiator, createdMs, state)
// state: a Uint8Array of FP_KS_BYTES over its own 8-aligned ArrayBuffer (keypair.ts).
static napi_value m_add_keypair(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value a[8];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  uint32_t local, remote, slot;
  uint8_t *sk, *rk, *st;
  size_t skl, rkl, stl;
  bool initiator = false;
  double created;
  if (!ph_arg_u32(env, a[0], "localIndex", &local) || !ph_arg_u32(env, a[1], "remoteIndex", &remote) ||
      !ph_arg_u32(env, a[2], "slot", &slot) || !ph_arg_bytes(env, a[3], "sendKey", &sk, &skl) ||
      !ph_arg_bytes(env, a[4], "receiveKey", &rk, &rkl) || !arg_double(env, a[6], "createdMs", &created) ||
      !ph_arg_bytes(env, a[7], "state", &st, &stl))
    return NULL;
  PH_NAPI(env, napi_get_value_bool(env, a[5], &initiator));
  if (skl != 32 || rkl != 32 || stl < FP_KS_BYTES || ((uintptr_t)st & 7) != 0 || local == 0) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "keypair needs 32-byte keys, an 8-aligned state of %d bytes and an index", FP_KS_BYTES);
    return NULL;
  }
  remove_keypair(f, local);
  fp_keypair *k = calloc(1, sizeof *k);
  if (!k) {
    ph_throw(env, "ERR_NO_MEMORY", 0, "out of memory");
    return NULL;
  }
  if (napi_create_reference(env, a[7], 1, &k->st_ref) != napi_ok) {
    free(k);
    ph_throw_napi_failure(env, "napi_create_reference");
    return NULL;
  }
  k->local_index = local;
  k->remote_index = remote;
  k->peer = slot;
  k->initiator = initiator;
  k->created = created;
  memcpy(k->send_key, sk, 32);
  memcpy(k->recv_key, rk, 32);
  k->st = (double *)st;
  k->ring = (uint32_t *)(st + 16);
  k->next_in_bucket = f->buckets[local % FP_KP_BUCKETS];
  f->buckets[local % FP_KP_BUCKETS] = k;
  return NULL;
}

static napi_value m_remove_keypair(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  uint32_t local;
  if (!ph_arg_u32(env, a[0], "localIndex", &local)) return NULL;
  remove_keypair(f, local);
  return NULL;
}

// Builds a v4 and a v6 table from packed entries (arguments a[0], a[1]); throws on a bad one.
static bool arg_tables(napi_env env, napi_value *a, fp_routes *r4, fp_routes *r6) {
  uint8_t *v4, *v6;
  size_t n4, n6;
  if (!ph_arg_bytes(env, a[0], "v4", &v4, &n4) || !ph_arg_bytes(env, a[1], "v6", &v6, &n6)) return false;
  *r4 = (fp_routes){0};
  *r6 = (fp_routes){0};
  if (!ph_fast_set_routes(r4, v4, n4, 4) || !ph_fast_set_routes(r6, v6, n6, 16)) {
    ph_fast_free_routes(r4);
    ph_fast_free_routes(r6);
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "malformed route table");
    return false;
  }
  return true;
}

// setRoutes(v4: Uint8Array of 9-byte entries, v6: Uint8Array of 21-byte entries)
static napi_value m_set_routes(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  fp_routes r4, r6;
  if (!arg_tables(env, a, &r4, &r6)) return NULL;
  ph_fast_free_routes(&f->r4);
  ph_fast_free_routes(&f->r6);
  f->r4 = r4;
  f->r6 = r6;
  return NULL;
}

// setLocal(v4, v6): this node's own addresses, packed as for setRoutes (slot ignored).
static napi_value m_set_local(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  ph_fast *f = fast_this(env, info, &argc, a, true);
  if (!f) return NULL;
  fp_routes l4, l6;
  if (!arg_tables(env, a, &l4, &l6)) return NULL;
  ph_fast_free_routes(&f->l4);
  ph_fast_free_routes(&f->l6);
  f->l4 = l4;
  f->l6 = l6;
  return NULL;
}

// checkDestinations(v4, v6, slab, offsets: Uint32Array, lengths: Uint32Array, out: Uint8Array):
// for packet i (slab[offsets[i], +lengths[i])), out[i] = 1 if the fast path would deliver it to
// the TUN by its destination, 0 if it drops it as not for us, 2 if it is not an IP packet.
static napi_value m_check_destinations(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value a[6];
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  uint8_t *slab, *offs, *lens, *out;
  size_t slab_len, offs_len, lens_len, out_len;
  if (argc < 6 || !ph_arg_bytes(env, a[2], "slab", &slab, &slab_len) || !ph_arg_bytes(env, a[3], "offsets", &offs, &offs_len) ||
      !ph_arg_bytes(env, a[4], "lengths", &lens, &lens_len) || !ph_arg_bytes(env, a[5], "out", &out, &out_len)) {
    if (argc < 6) ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "checkDestinations(v4, v6, slab, offsets, lengths, out)");
    return NULL;
  }
  size_t n = out_len;
  if (offs_len / 4 < n || lens_len / 4 < n) {
    ph_throw(env, "ERR_OUT_OF_RANGE", 0, "offsets and lengths need one entry per out byte");
    return NULL;
  }
  fp_routes l4, l6;
  if (!arg_tables(env, a, &l4, &l6)) return NULL;
  for (size_t i = 0; i < n; i++) {
    uint32_t off, len;
    memcpy(&off, offs + 4 * i, 4);
    memcpy(&len, lens + 4 * i, 4);
    if ((size_t)off > slab_len || (size_t)len > slab_len - off) {
      out[i] = 2;
      continue;
    }
    int64_t ip_len = ph_ip_packet_length(slab + off, len);
    out[i] = ip_len <= 0 ? 2 : ph_fast_dst_local(&l4, &l6, slab + off, (uint32_t)ip_len) ? 1 : 0;
  }
  ph_fast_free_routes(&l4);
  ph_fast_free_routes(&l6);
  return NULL;
}

napi_value ph_fast_define_check(napi_env env) {
  napi_value fn;
  PH_NAPI(env, napi_create_function(env, "checkDestinations", NAPI_AUTO_LENGTH, m_check_destinations, NULL, &fn));
  return fn;
}

static napi_value m_counters(napi_env env, napi_callback_info info) {
  ph_fast *f = fast_this(env, info, NULL, NULL, true);
  if (!f) return NULL;
  napi_value o, v;
  PH_NAPI(env, napi_create_object(env, &o));
#define SET(name, field)                                          \
  PH_NAPI(env, napi_create_double(env, (double)f->c.field, &v)); \
  PH_NAPI(env, napi_set_named_property(env, o, name, v));
  SET("txPackets", tx_packets)
  SET("rxPackets", rx_packets)
  SET("leftOut", left_out)
  SET("leftIn", left_in)
  SET("badTag", bad_tag)
  SET("replay", replay)
  SET("badInnerPacket", bad_inner)
  SET("allowedIpsMismatch", allowed_mismatch)
  SET("notForUs", not_for_us)
  SET("ioDropped", io_dropped)
  SET("flowOut", flow_out)
  SET("flowIn", flow_in)
  SET("handedBack", handed_back)
#undef SET
  return o;
}

static napi_value m_close(napi_env env, napi_callback_info info) {
  ph_fast *f = fast_this(env, info, NULL, NULL, false);
  if (f) fast_close(f, env);
  return NULL;
}

napi_value ph_fast_define(napi_env env) {
  napi_property_descriptor props[] = {
      {"setMode", NULL, m_set_mode, NULL, NULL, NULL, napi_default, NULL},
      {"setPeer", NULL, m_set_peer, NULL, NULL, NULL, napi_default, NULL},
      {"removePeer", NULL, m_remove_peer, NULL, NULL, NULL, napi_default, NULL},
      {"addKeypair", NULL, m_add_keypair, NULL, NULL, NULL, napi_default, NULL},
      {"removeKeypair", NULL, m_remove_keypair, NULL, NULL, NULL, napi_default, NULL},
      {"setRoutes", NULL, m_set_routes, NULL, NULL, NULL, napi_default, NULL},
      {"setLocal", NULL, m_set_local, NULL, NULL, NULL, napi_default, NULL},
      {"setFilter", NULL, m_set_filter, NULL, NULL, NULL, napi_default, NULL},
      {"counters", NULL, m_counters, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, m_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  PH_NAPI(env, napi_define_class(env, "FastPath", NAPI_AUTO_LENGTH, m_construct, NULL,
                                 sizeof props / sizeof props[0], props, &cls));
  return cls;
}
