// The UDP socket shared by the C files of the "magic socket" transport.
#ifndef PH_UDP_H
#define PH_UDP_H

#include <node_api.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addr20.h"
#include "io_handle.h"

// Packets per sendmmsg() call; sendBatch() sends larger batches in several calls.
#define PH_UDP_TX_CHUNK 64
// A GRO-coalesced datagram can be as large as an IP packet.
#define PH_UDP_GRO_BUF 65536

// Constructor flags: offloads are on by default where the kernel has them.
#define PH_UDP_NO_GSO 1
#define PH_UDP_NO_GRO 2

typedef struct ph_udp {
  ph_io io;  // first member: a ph_udp* is a ph_io*
  int family;    // AF_INET or AF_INET6
  int v4mapped;  // AF_INET6 socket with IPV6_V6ONLY=0 (reaches IPv4 through ::ffff:0:0/96)
  // receive vectors, one per slot, rebuilt when the receiver changes; with GRO each message
  // gets a 64 KiB bounce buffer (lazily touched pages) and a control buffer for UDP_GRO
  struct mmsghdr *rx_msgs;
  struct iovec *rx_iov;
  ph_sockaddr *rx_names;
  int gro;            // UDP_GRO enabled on the socket
  uint8_t *gro_bufs;  // max_batch * PH_UDP_GRO_BUF
  uint8_t *gro_ctrl;  // max_batch * PH_UDP_GRO_CTRL
  uint32_t gro_count; // messages in the bounce buffers from the last recvmmsg
  uint32_t gro_msg;   // next message to split into slots
  uint32_t gro_off;   // byte offset of the next segment in that message
  int gso;  // the kernel accepts UDP_SEGMENT on this socket (cleared if a send says EIO)
  // send vectors for one chunk: one iovec per packet, one message per destination run
  struct mmsghdr tx_msgs[PH_UDP_TX_CHUNK];
  struct iovec tx_iov[PH_UDP_TX_CHUNK];
  ph_sockaddr tx_names[PH_UDP_TX_CHUNK];
  uint32_t tx_segs[PH_UDP_TX_CHUNK];         // packets carried by each message
  const uint8_t *tx_addr[PH_UDP_TX_CHUNK];   // packed destination of each message
  uint8_t tx_cmsg[PH_UDP_TX_CHUNK][CMSG_SPACE(sizeof(uint16_t))] __attribute__((aligned(8)));
} ph_udp;

#define PH_UDP_GRO_CTRL CMSG_SPACE(sizeof(int))

// Receive path (udp_recv.c): read_batch / has_pending / on_receiver hooks of ph_io.
uint32_t ph_udp_read_batch(ph_io *io, int *drained);
bool ph_udp_has_pending(ph_io *io);
bool ph_udp_on_receiver(ph_io *io);
void ph_udp_free_rx(ph_udp *u);

// Defines the native `Udp` class.
napi_value ph_udp_define(napi_env env);

// Sends count packets (slab + offsets[i], lengths[i]) to addrs[i*20]; returns how many left.
// Packets are not bounds-checked: the caller owns the slab layout (used by sendBatch and fastpath.c).
uint32_t ph_udp_send_packets(ph_udp *u, uint8_t *slab, const uint32_t *offsets, const uint32_t *lengths,
                             const uint8_t *addrs, uint32_t count);

// sendBatch(slab, offsets, lengths, addrs, count) -> packets sent (udp_send.c)
napi_value ph_udp_send_batch(napi_env env, napi_callback_info info);
// send(buf, addr20) -> true when sent, false when dropped or failed (counted)
napi_value ph_udp_send(napi_env env, napi_callback_info info);

#endif
