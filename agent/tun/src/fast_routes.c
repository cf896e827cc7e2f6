// Longest-prefix match over the allowed IPs mirrored from JS: entries sorted by prefix length
// (longest first), then address; a lookup binary-searches each length group in turn.
#include <stdlib.h>
#include <string.h>

#include "fastpath.h"

static void mask(uint8_t *a, uint32_t len, uint32_t bits) {
  for (uint32_t i = 0; i < len; i++) {
    uint32_t keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
    a[i] &= keep == 8 ? 0xff : (uint8_t)(0xff << (8 - keep));
  }
}

static uint32_t cmp_len;  // only used while sorting, on the loop thread
static int cmp_route(const void *x, const void *y) {
  const fp_route *a = x, *b = y;
  if (a->bits != b->bits) return a->bits > b->bits ? -1 : 1;
  return memcmp(a->addr, b->addr, cmp_len);
}

bool ph_fast_set_routes(fp_routes *r, const uint8_t *packed, size_t size, uint32_t addr_len) {
  size_t rec = addr_len + 5;
  if (size % rec != 0) return false;
  uint32_t n = (uint32_t)(size / rec);
  fp_route *v = n ? calloc(n, sizeof *v) : NULL;
  if (n && !v) return false;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *e = packed + i * rec;
    if (e[addr_len] > addr_len * 8) { free(v); return false; }
    memcpy(v[i].addr, e, addr_len);
    v[i].bits = e[addr_len];
    mask(v[i].addr, addr_len, v[i].bits);
    const uint8_t *s = e + addr_len + 1;
    v[i].peer = (uint32_t)s[0] | (uint32_t)s[1] << 8 | (uint32_t)s[2] << 16 | (uint32_t)s[3] << 24;
  }
  cmp_len = addr_len;
  if (n > 1) qsort(v, n, sizeof *v, cmp_route);
  free(r->v);
  r->v = v;
  r->n = n;
  r->ngroups = 0;
  for (uint32_t i = 0; i < n; i++)
    if (i == 0 || v[i].bits != v[i - 1].bits) r->group[r->ngroups++] = i;
  r->group[r->ngroups] = n;
  return true;
}

void ph_fast_free_routes(fp_routes *r) {
  free(r->v);
  r->v = NULL;
  r->n = 0;
  r->ngroups = 0;
}

int64_t ph_fast_route(const fp_routes *r, const uint8_t *addr, uint32_t len) {
  for (uint32_t g = 0; g < r->ngroups; g++) {
    uint32_t i = r->group[g], end = r->group[g + 1], bits = r->v[i].bits;
    uint8_t key[16];
    memcpy(key, addr, len);
    mask(key, len, bits);
    uint32_t lo = i, hi = end;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      int c = memcmp(r->v[mid].addr, key, len);
      if (c == 0) return r->v[mid].peer;
      if (c < 0) lo = mid + 1; else hi = mid;
    }
  }
  return -1;
}

bool ph_fast_dst_local(const fp_routes *l4, const fp_routes *l6, const uint8_t *p, uint32_t len) {
  uint8_t v = p[0] >> 4;
  if (v == 4 && len >= 20) return ph_fast_route(l4, p + 16, 4) >= 0;
  if (v == 6 && len >= 40) return ph_fast_route(l6, p + 24, 16) >= 0;
  return false;
}
