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

typedef struct ph_udp {
  ph_io io;  // first member: a ph_udp* is a ph_io*
  int family;    // AF_INET or AF_INET6
  int v4mapped;  // AF_INET6 socket with IPV6_V6ONLY=0 (reaches IPv4 through ::ffff:0:0/96)
  // receive vectors, one per slot, rebuilt when the receiver changes
  struct mmsghdr *rx_msgs;
  struct iovec *rx_iov;
  ph_sockaddr *rx_names;
  int gso;  // the kernel accepts UDP_SEGMENT on this socket (cleared if a send says EIO)
  // send vectors for one chunk: one iovec per packet, one message per destination run
  struct mmsghdr tx_msgs[PH_UDP_TX_CHUNK];
  struct iovec tx_iov[PH_UDP_TX_CHUNK];
  ph_sockaddr tx_names[PH_UDP_TX_CHUNK];
  uint32_t tx_segs[PH_UDP_TX_CHUNK];         // packets carried by each message
  const uint8_t *tx_addr[PH_UDP_TX_CHUNK];   // packed destination of each message
  uint8_t tx_cmsg[PH_UDP_TX_CHUNK][CMSG_SPACE(sizeof(uint16_t))] __attribute__((aligned(8)));
} ph_udp;

// Defines the native `Udp` class.
napi_value ph_udp_define(napi_env env);

// sendBatch(slab, offsets, lengths, addrs, count) -> packets sent (udp_send.c)
napi_value ph_udp_send_batch(napi_env env, napi_callback_info info);
// send(buf, addr20) -> true when sent, false when dropped or failed (counted)
napi_value ph_udp_send(napi_env env, napi_callback_info info);

#endif
