// TUN offloads (IFF_VNET_HDR + TUNSETOFFLOAD): the kernel hands the agent TCP and UDP "super
// packets" of up to 64 KB with a virtio_net_hdr in front and checksums left partial; the agent
// cuts them into MTU-sized packets (segmentation, as a NIC would) before encrypting. The other
// way, consecutive decrypted TCP segments of one flow are glued back into one super packet
// (GRO) and written to the TUN in one writev, so the kernel's TCP stack sees a few large packets
// instead of many small ones. wireguard-go does the same (tun/offload_linux.go); this is ours.
#ifndef PH_TUN_OFFLOAD_H
#define PH_TUN_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define PH_VNET_HDR_LEN 10
#define PH_GSO_MAX 65535

// struct virtio_net_hdr, fields in host order.
typedef struct ph_vnet {
  uint8_t flags, gso_type;
  uint16_t hdr_len, gso_size, csum_start, csum_offset;
} ph_vnet;

enum { PH_GSO_NONE = 0, PH_GSO_TCPV4 = 1, PH_GSO_TCPV6 = 4, PH_GSO_UDP_L4 = 5 };
#define PH_VNET_NEEDS_CSUM 1

void ph_vnet_read(const uint8_t *p, ph_vnet *h);
void ph_vnet_write(uint8_t *p, const ph_vnet *h);

// A super packet being cut into segments (kept between read batches).
typedef struct ph_gso {
  ph_vnet h;
  uint8_t *pkt;   // the packet after the vnet header
  uint32_t len;   // its length
  uint32_t l4;    // transport header offset
  uint32_t hdr;   // IP + transport header length
  uint32_t off;   // payload bytes already emitted
  uint32_t seg;   // segments already emitted
  bool active;
} ph_gso;

// Checks a super packet (h, pkt[0..len)) and starts cutting it; false if it is malformed or a
// segment would not fit `cap` bytes (the caller drops and counts it).
bool ph_gso_start(ph_gso *g, const ph_vnet *h, uint8_t *pkt, uint32_t len, uint32_t cap);
// Writes the next segment to out (a whole IP packet with correct lengths, ids and checksums) and
// returns its length; g->active turns false after the last one.
uint32_t ph_gso_next(ph_gso *g, uint8_t *out);
// Completes the partial checksum of a packet the kernel left for us (VIRTIO_NET_HDR_F_NEEDS_CSUM).
// False if csum_start/csum_offset lie outside the packet.
bool ph_csum_complete(uint8_t *pkt, uint32_t len, uint32_t csum_start, uint32_t csum_offset);

// GRO on the way to the TUN: plans how packets p[0..n) (lengths len[]) are written. Fills
// group[] with the number of consecutive packets each write takes (their sum is n) and returns
// the number of writes. Only TCP segments of one flow, in order, with equal sizes (the last may
// be shorter), the same header fields and valid checksums are glued.
uint32_t ph_gro_plan(uint8_t *const *p, const uint32_t *len, uint32_t n, uint32_t *group);
// Builds the writev for packets p[0..k) planned as one group: the vnet header into vnet (10
// bytes), a merged IP+TCP header into hdr (at most 120 bytes), iov[] (at most k + 2 entries).
// Returns the number of iovecs.
uint32_t ph_gro_iov(uint8_t *const *p, const uint32_t *len, uint32_t k, uint8_t *vnet, uint8_t *hdr, struct iovec *iov);

// Defines gsoSplit and groWrites on exports: the code above on JS buffers, for the unit tests.
#include <node_api.h>
napi_value ph_offload_define_checks(napi_env env, napi_value exports);

#endif
