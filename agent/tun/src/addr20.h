// The 20-byte endpoint address used on the JS/native boundary (one per packet):
//
//   offset 0      1      2..3             4..19
//          family pad=0  port (big-endian) address: IPv6 (16 bytes) or IPv4 in 4..7, rest 0
//
// family is 4 or 6. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) seen on a dual-stack socket
// are reported as family 4, so JS compares one canonical form.
#ifndef PH_ADDR20_H
#define PH_ADDR20_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#define PH_ADDR20_SIZE 20

// Whether a path address is plain UDP (family 4 or 6), the only kind the native path sends to:
// relay (0xfe) and birthday-socket (0xfd) addresses stay with JS (addrKind in
// agent/magicsock/path-addr.ts answers the same question there).
static inline int ph_addr20_is_udp(const uint8_t a[PH_ADDR20_SIZE]) { return a[0] == 4 || a[0] == 6; }

typedef union ph_sockaddr {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
} ph_sockaddr;

void ph_addr20_from_sockaddr(const ph_sockaddr *sa, uint8_t out[PH_ADDR20_SIZE]);

// Converts to a sockaddr usable on a socket of `sock_family` (AF_INET, or AF_INET6 with
// v4mapped = dual-stack). Returns 0, or EAFNOSUPPORT when the socket cannot reach that family.
int ph_addr20_to_sockaddr(const uint8_t in[PH_ADDR20_SIZE], int sock_family, int v4mapped,
                          ph_sockaddr *out, socklen_t *len);

#endif
