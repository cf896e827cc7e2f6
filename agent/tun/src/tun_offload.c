// Segmentation and GRO for the TUN's offloads (tun_offload.h).
#include "tun_offload.h"

#include <arpa/inet.h>
#include <string.h>

#define PROTO_TCP 6
#define PROTO_UDP 17
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_CWR 0x80
#define GRO_MAX_SEGMENTS 64

static inline uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline void put_le16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline void put_be16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static inline void put_be32(uint8_t *p, uint32_t v) { put_be16(p, (uint16_t)(v >> 16)); put_be16(p + 2, (uint16_t)v); }

void ph_vnet_read(const uint8_t *p, ph_vnet *h) {
  h->flags = p[0];
  h->gso_type = p[1];
  h->hdr_len = le16(p + 2);
  h->gso_size = le16(p + 4);
  h->csum_start = le16(p + 6);
  h->csum_offset = le16(p + 8);
}

void ph_vnet_write(uint8_t *p, const ph_vnet *h) {
  p[0] = h->flags;
  p[1] = h->gso_type;
  put_le16(p + 2, h->hdr_len);
  put_le16(p + 4, h->gso_size);
  put_le16(p + 6, h->csum_start);
  put_le16(p + 8, h->csum_offset);
}

// The Internet checksum (RFC 1071) over memory-order words: the folded sum, stored with memcpy,
// is the checksum's bytes in network order on any host.
static uint64_t sum_bytes(const uint8_t *p, size_t len, uint64_t sum) {
  while (len >= 8) {
    uint32_t a, b;
    memcpy(&a, p, 4);
    memcpy(&b, p + 4, 4);
    sum += (uint64_t)a + b;
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t a;
    memcpy(&a, p, 4);
    sum += a;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t a;
    memcpy(&a, p, 2);
    sum += a;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t a = 0;
    memcpy(&a, p, 1);
    sum += a;
  }
  return sum;
}

static uint16_t fold(uint64_t sum) {
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffffffu) + (sum >> 32);
  sum = (sum & 0xffffu) + (sum >> 16);
  sum = (sum & 0xffffu) + (sum >> 16);
  return (uint16_t)((sum & 0xffffu) + (sum >> 16));
}

static inline void put_sum(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }

// Pseudo-header sum for the transport checksum of an IPv4 or IPv6 packet pkt.
static uint64_t pseudo(const uint8_t *pkt, uint8_t proto, uint32_t l4_len) {
  uint64_t s = (pkt[0] >> 4) == 4 ? sum_bytes(pkt + 12, 8, 0) : sum_bytes(pkt + 8, 32, 0);
  return s + htons(proto) + htons((uint16_t)l4_len);
}

static void ipv4_header_csum(uint8_t *pkt) {
  uint32_t ihl = (pkt[0] & 15u) * 4u;
  pkt[10] = pkt[11] = 0;
  put_sum(pkt + 10, (uint16_t)~fold(sum_bytes(pkt, ihl, 0)));
}

bool ph_csum_complete(uint8_t *pkt, uint32_t len, uint32_t csum_start, uint32_t csum_offset) {
  if (csum_start >= len || csum_offset > len - csum_start || len - csum_start - csum_offset < 2) return false;
  uint16_t c = (uint16_t)~fold(sum_bytes(pkt + csum_start, len - csum_start, 0));
  if (c == 0 && csum_offset == 6) c = 0xffff;  // UDP: 0 would mean "no checksum"
  put_sum(pkt + csum_start + csum_offset, c);
  return true;
}

bool ph_gso_start(ph_gso *g, const ph_vnet *h, uint8_t *pkt, uint32_t len, uint32_t cap) {
  g->active = false;
  if (len < 20) return false;
  uint8_t version = pkt[0] >> 4;
  uint8_t type = h->gso_type & 0x7f;  // without the ECN bit
  uint32_t l4;
  if (version == 4) {
    l4 = (pkt[0] & 15u) * 4u;
    if (l4 < 20 || (type != PH_GSO_TCPV4 && type != PH_GSO_UDP_L4)) return false;
    if (pkt[9] != (type == PH_GSO_UDP_L4 ? PROTO_UDP : PROTO_TCP)) return false;
  } else if (version == 6) {
    if (len < 40 || (type != PH_GSO_TCPV6 && type != PH_GSO_UDP_L4)) return false;
    l4 = 40;
    if (pkt[6] != (type == PH_GSO_UDP_L4 ? PROTO_UDP : PROTO_TCP)) return false;  // no extension headers
  } else {
    return false;
  }
  if ((h->flags & PH_VNET_NEEDS_CSUM) && h->csum_start != l4) return false;
  uint32_t hdr;
  if (type == PH_GSO_UDP_L4) {
    hdr = l4 + 8;
  } else {
    if (l4 + 20 > len) return false;
    uint32_t th = (pkt[l4 + 12] >> 4) * 4u;
    if (th < 20) return false;
    hdr = l4 + th;
  }
  if (hdr >= len || h->gso_size == 0 || hdr + h->gso_size > cap) return false;
  *g = (ph_gso){.h = *h, .pkt = pkt, .len = len, .l4 = l4, .hdr = hdr, .off = 0, .seg = 0, .active = true};
  return true;
}

uint32_t ph_gso_next(ph_gso *g, uint8_t *out) {
  const uint8_t *pkt = g->pkt;
  uint32_t payload = g->len - g->hdr;
  uint32_t plen = payload - g->off;
  if (plen > g->h.gso_size) plen = g->h.gso_size;
  bool last = g->off + plen == payload;
  memcpy(out, pkt, g->hdr);
  memcpy(out + g->hdr, pkt + g->hdr + g->off, plen);
  uint32_t total = g->hdr + plen, l4 = g->l4, l4_len = total - l4;
  bool tcp = (g->h.gso_type & 0x7f) != PH_GSO_UDP_L4;
  if ((out[0] >> 4) == 4) {
    put_be16(out + 2, (uint16_t)total);
    put_be16(out + 4, (uint16_t)(be16(pkt + 4) + g->seg));
    ipv4_header_csum(out);
  } else {
    put_be16(out + 4, (uint16_t)(total - 40));
  }
  uint8_t *t = out + l4;
  uint32_t csum_at;
  if (tcp) {
    put_be32(t + 4, be32(pkt + l4 + 4) + g->off);
    if (!last) t[13] &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (g->seg > 0) t[13] &= (uint8_t)~TCP_CWR;
    csum_at = 16;
  } else {
    put_be16(t + 4, (uint16_t)l4_len);
    csum_at = 6;
  }
  t[csum_at] = t[csum_at + 1] = 0;
  uint16_t c = (uint16_t)~fold(sum_bytes(t, l4_len, pseudo(out, tcp ? PROTO_TCP : PROTO_UDP, l4_len)));
  if (!tcp && c == 0) c = 0xffff;
  put_sum(t + csum_at, c);
  g->off += plen;
  g->seg++;
  if (last) g->active = false;
  return total;
}

// --- GRO ---------------------------------------------------------------------------------------

typedef struct seg_info {
  uint32_t l4, th, payload;  // transport offset, TCP header length, payload length
  uint32_t seq;
  uint8_t flags;
  bool ok;
} seg_info;

// A TCP segment that may be glued: IPv4 without options or fragments, or IPv6 without extension
// headers; lengths consistent; only ACK (and PSH); a payload; a valid checksum.
static seg_info inspect(const uint8_t *p, uint32_t len) {
  seg_info s = {0};
  uint32_t l4;
  if (len < 40) return s;
  if ((p[0] >> 4) == 4) {
    if (p[0] != 0x45 || p[9] != PROTO_TCP || (p[6] & 0x3f) != 0 || p[7] != 0 || be16(p + 2) != len) return s;
    l4 = 20;
  } else if ((p[0] >> 4) == 6) {
    if (len < 60 || p[6] != PROTO_TCP || be16(p + 4) + 40u != len) return s;
    l4 = 40;
  } else {
    return s;
  }
  uint32_t th = (p[l4 + 12] >> 4) * 4u;
  if (th < 20 || l4 + th >= len) return s;
  uint8_t flags = p[l4 + 13];
  if (!(flags & TCP_ACK) || (flags & ~(TCP_ACK | TCP_PSH))) return s;
  if (fold(sum_bytes(p + l4, len - l4, pseudo(p, PROTO_TCP, len - l4))) != 0xffff) return s;
  s = (seg_info){.l4 = l4, .th = th, .payload = len - l4 - th, .seq = be32(p + l4 + 4), .flags = flags, .ok = true};
  return s;
}

// Same flow and header fields (IP: version, TOS/traffic class, flow label, DF, TTL, addresses;
// TCP: ports, ack, window, options), apart from what GRO changes.
static bool same_headers(const uint8_t *a, const seg_info *sa, const uint8_t *b, const seg_info *sb) {
  if (sa->l4 != sb->l4 || sa->th != sb->th) return false;
  if (sa->l4 == 20) {
    if (a[1] != b[1] || a[6] != b[6] || a[8] != b[8] || memcmp(a + 12, b + 12, 8) != 0) return false;
  } else {
    if (memcmp(a, b, 4) != 0 || a[7] != b[7] || memcmp(a + 8, b + 8, 32) != 0) return false;
  }
  const uint8_t *ta = a + sa->l4, *tb = b + sb->l4;
  return memcmp(ta, tb, 4) == 0 && memcmp(ta + 8, tb + 8, 4) == 0 && memcmp(ta + 14, tb + 14, 2) == 0 &&
         ta[18] == 0 && ta[19] == 0 && tb[18] == 0 && tb[19] == 0 && memcmp(ta + 20, tb + 20, sa->th - 20) == 0;
}

uint32_t ph_gro_plan(uint8_t *const *p, const uint32_t *len, uint32_t n, uint32_t *group) {
  uint32_t writes = 0, i = 0;
  while (i < n) {
    seg_info first = inspect(p[i], len[i]);
    uint32_t k = 1;
    if (first.ok) {
      seg_info prev = first;
      uint32_t total = len[i];
      while (i + k < n && k < GRO_MAX_SEGMENTS) {
        const uint8_t *q = p[i + k];
        if (prev.payload != first.payload || (prev.flags & TCP_PSH)) break;  // only the last may be short or pushed
        seg_info s = inspect(q, len[i + k]);
        if (!s.ok || s.payload > first.payload || (s.flags & ~TCP_PSH) != (first.flags & ~TCP_PSH) ||
            s.seq != prev.seq + prev.payload || total + s.payload > PH_GSO_MAX || !same_headers(p[i], &first, q, &s))
          break;
        total += s.payload;
        prev = s;
        k++;
      }
    }
    group[writes++] = k;
    i += k;
  }
  return writes;
}

uint32_t ph_gro_iov(uint8_t *const *p, const uint32_t *len, uint32_t k, uint8_t *vnet, uint8_t *hdr, struct iovec *iov) {
  ph_vnet h = {0};
  if (k == 1) {
    ph_vnet_write(vnet, &h);
    iov[0] = (struct iovec){vnet, PH_VNET_HDR_LEN};
    iov[1] = (struct iovec){p[0], len[0]};
    return 2;
  }
  const uint8_t *a = p[0];
  bool v4 = (a[0] >> 4) == 4;
  uint32_t l4 = v4 ? 20 : 40, th = (a[l4 + 12] >> 4) * 4u, hl = l4 + th;
  uint32_t total = hl;
  for (uint32_t i = 0; i < k; i++) {
    iov[2 + i] = (struct iovec){p[i] + hl, len[i] - hl};
    total += len[i] - hl;
  }
  memcpy(hdr, a, hl);
  if (v4) {
    put_be16(hdr + 2, (uint16_t)total);
    ipv4_header_csum(hdr);
  } else {
    put_be16(hdr + 4, (uint16_t)(total - 40));
  }
  hdr[l4 + 13] |= p[k - 1][l4 + 13] & TCP_PSH;
  // CHECKSUM_PARTIAL: the field holds the pseudo-header sum; the kernel completes it.
  put_sum(hdr + l4 + 16, fold(pseudo(hdr, PROTO_TCP, total - l4)));
  h.flags = PH_VNET_NEEDS_CSUM;
  h.gso_type = v4 ? PH_GSO_TCPV4 : PH_GSO_TCPV6;
  h.hdr_len = (uint16_t)hl;
  h.gso_size = (uint16_t)(len[0] - hl);
  h.csum_start = (uint16_t)l4;
  h.csum_offset = 16;
  ph_vnet_write(vnet, &h);
  iov[0] = (struct iovec){vnet, PH_VNET_HDR_LEN};
  iov[1] = (struct iovec){hdr, hl};
  return k + 2;
}

// --- test hooks (test/unit/tun-offload.test.ts) -----------------------------------------------

#include <node_api.h>
#include <stdlib.h>

#include "errors.h"
#include "napi_args.h"

// gsoSplit(vnetAndPacket: Uint8Array, cap) -> Uint8Array[] (the segments; [] if refused)
static napi_value m_gso_split(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2], out;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  uint8_t *buf;
  size_t len;
  uint32_t cap;
  if (argc < 2 || !ph_arg_bytes(env, a[0], "packet", &buf, &len) || !ph_arg_u32(env, a[1], "cap", &cap)) return NULL;
  PH_NAPI(env, napi_create_array(env, &out));
  if (len <= PH_VNET_HDR_LEN || len > PH_VNET_HDR_LEN + PH_GSO_MAX || cap > PH_GSO_MAX) return out;
  uint8_t *copy = malloc(len), *seg = malloc(cap);
  if (!copy || !seg) {
    free(copy);
    free(seg);
    ph_throw(env, "ERR_NO_MEMORY", 0, "out of memory");
    return NULL;
  }
  memcpy(copy, buf, len);
  ph_vnet h;
  ph_vnet_read(copy, &h);
  ph_gso g;
  uint32_t i = 0;
  if (ph_gso_start(&g, &h, copy + PH_VNET_HDR_LEN, (uint32_t)(len - PH_VNET_HDR_LEN), cap)) {
    while (g.active) {
      uint32_t n = ph_gso_next(&g, seg);
      void *data;
      napi_value ab, arr;
      PH_NAPI(env, napi_create_arraybuffer(env, n, &data, &ab));
      memcpy(data, seg, n);
      PH_NAPI(env, napi_create_typedarray(env, napi_uint8_array, n, ab, 0, &arr));
      PH_NAPI(env, napi_set_element(env, out, i++, arr));
    }
  }
  free(copy);
  free(seg);
  return out;
}

// groWrites(packets: Uint8Array[]) -> Uint8Array[] (each write: the vnet header and the bytes writev sends)
static napi_value m_gro_writes(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1], out;
  PH_NAPI(env, napi_get_cb_info(env, info, &argc, a, NULL, NULL));
  uint32_t n = 0;
  if (argc < 1 || napi_get_array_length(env, a[0], &n) != napi_ok || n > 1024) {
    ph_throw(env, "ERR_INVALID_ARG_TYPE", 0, "groWrites needs an array of at most 1024 packets");
    return NULL;
  }
  uint8_t *ptrs[1024];
  uint32_t lens[1024], groups[1024];
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    uint8_t *d;
    size_t l;
    PH_NAPI(env, napi_get_element(env, a[0], i, &v));
    if (!ph_arg_bytes(env, v, "packet", &d, &l)) return NULL;
    ptrs[i] = d;
    lens[i] = (uint32_t)l;
  }
  uint32_t writes = ph_gro_plan(ptrs, lens, n, groups), at = 0;
  PH_NAPI(env, napi_create_array(env, &out));
  uint8_t vnet[PH_VNET_HDR_LEN], hdr[128];
  struct iovec iov[GRO_MAX_SEGMENTS + 2];
  for (uint32_t w = 0; w < writes; w++) {
    uint32_t niov = ph_gro_iov(ptrs + at, lens + at, groups[w], vnet, hdr, iov);
    size_t total = 0;
    for (uint32_t v = 0; v < niov; v++) total += iov[v].iov_len;
    void *data;
    napi_value ab, arr;
    PH_NAPI(env, napi_create_arraybuffer(env, total, &data, &ab));
    size_t o = 0;
    for (uint32_t v = 0; v < niov; v++) {
      if (iov[v].iov_len == 0) continue;  // an empty packet's buffer may be NULL
      memcpy((uint8_t *)data + o, iov[v].iov_base, iov[v].iov_len);
      o += iov[v].iov_len;
    }
    PH_NAPI(env, napi_create_typedarray(env, napi_uint8_array, total, ab, 0, &arr));
    PH_NAPI(env, napi_set_element(env, out, w, arr));
    at += groups[w];
  }
  return out;
}

napi_value ph_offload_define_checks(napi_env env, napi_value exports) {
  napi_value fn;
  PH_NAPI(env, napi_create_function(env, "gsoSplit", NAPI_AUTO_LENGTH, m_gso_split, NULL, &fn));
  PH_NAPI(env, napi_set_named_property(env, exports, "gsoSplit", fn));
  PH_NAPI(env, napi_create_function(env, "groWrites", NAPI_AUTO_LENGTH, m_gro_writes, NULL, &fn));
  PH_NAPI(env, napi_set_named_property(env, exports, "groWrites", fn));
  return exports;
}
