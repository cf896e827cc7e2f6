// Conversions between sockaddr and the 20-byte boundary address (layout in addr20.h).
#include "addr20.h"

#include <errno.h>
#include <string.h>

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void ph_addr20_from_sockaddr(const ph_sockaddr *sa, uint8_t out[PH_ADDR20_SIZE]) {
  memset(out, 0, PH_ADDR20_SIZE);
  if (sa->sa.sa_family == AF_INET) {
    out[0] = 4;
    memcpy(out + 2, &sa->in4.sin_port, 2);
    memcpy(out + 4, &sa->in4.sin_addr, 4);
  } else if (sa->sa.sa_family == AF_INET6) {
    const uint8_t *a = sa->in6.sin6_addr.s6_addr;
    memcpy(out + 2, &sa->in6.sin6_port, 2);
    if (memcmp(a, v4mapped_prefix, 12) == 0) {
      out[0] = 4;
      memcpy(out + 4, a + 12, 4);
    } else {
      out[0] = 6;
      memcpy(out + 4, a, 16);
    }
  }
}

int ph_addr20_to_sockaddr(const uint8_t in[PH_ADDR20_SIZE], int sock_family, int v4mapped,
                          ph_sockaddr *out, socklen_t *len) {
  if (in[0] == 4 && sock_family == AF_INET) {
    out->in4.sin_family = AF_INET;
    memcpy(&out->in4.sin_port, in + 2, 2);
    memcpy(&out->in4.sin_addr, in + 4, 4);
    memset(out->in4.sin_zero, 0, sizeof out->in4.sin_zero);
    *len = sizeof(struct sockaddr_in);
    return 0;
  }
  if (sock_family != AF_INET6) return EAFNOSUPPORT;
  if (in[0] == 4 && !v4mapped) return EAFNOSUPPORT;
  if (in[0] != 4 && in[0] != 6) return EAFNOSUPPORT;
  out->in6.sin6_family = AF_INET6;
  memcpy(&out->in6.sin6_port, in + 2, 2);
  out->in6.sin6_flowinfo = 0;
  out->in6.sin6_scope_id = 0;
  if (in[0] == 4) {
    memcpy(out->in6.sin6_addr.s6_addr, v4mapped_prefix, 12);
    memcpy(out->in6.sin6_addr.s6_addr + 12, in + 4, 4);
  } else {
    memcpy(out->in6.sin6_addr.s6_addr, in + 4, 16);
  }
  *len = sizeof(struct sockaddr_in6);
  return 0;
}
