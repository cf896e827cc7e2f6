// Native WireGuard data path: the common case of TUN → encrypt → UDP and UDP → decrypt → TUN,
// run inside the poll callbacks of the TUN and UDP handles, so a packet that needs nothing
// special never enters JavaScript. JS (agent/wireguard/fast-path.ts) owns every decision and
// mirrors here only what the data path reads: peers (endpoint, current keypair), keypairs by
// local index (keys, created), the allowed IPs, this node's own addresses (the inbound
// destination check, agent/wireguard/local-addresses.ts), and device-wide switches. Mutable state the two
// sides share lives in JS-owned typed arrays both read and write (one thread, no locks): each
// keypair's send counter and replay window, each peer's timer timestamps and byte counts.
// Anything unusual (no session, handshake or rekey due, an endpoint that changed or is a relay,
// a packet filter or NAT hook, unknown index) is left in the batch for JS, untouched.
#ifndef PH_FASTPATH_H
#define PH_FASTPATH_H

#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>

#include "fast_flows.h"
#include "io_handle.h"

// Peer state (Float64Array) slots, shared with agent/wireguard/peer.ts.
enum {
  FP_PS_KEEPALIVE_DUE,
  FP_PS_NEW_HANDSHAKE_DUE,
  FP_PS_LAST_AUTH,
  FP_PS_RX_BYTES,
  FP_PS_TX_BYTES,
  FP_PS_RX_PACKETS,
  FP_PS_TX_PACKETS,
  FP_PS_COUNT
};
// Keypair state: f64 send counter, f64 highest accepted counter, then the 256-word replay ring
// (proto/wireguard/replay.ts, same algorithm).
#define FP_KS_BYTES (16 + 256 * 4)
#define FP_KP_BUCKETS 4096
// Length the fast path gives a packet it took (no real packet is this long): JS skips it.
#define FP_TAKEN 0xffffffffu
// Flag on the length of a packet the fast path decrypted and checked (session, replay, allowed
// IPs, timers) but hands back to JS for a decision (packet filter, served routes); the low bits
// hold the inner IP packet's length, which starts 16 bytes (the transport header) into the slot.
#define FP_DECRYPTED 0x80000000u

typedef struct fp_keypair {
  struct fp_keypair *next_in_bucket;
  uint32_t local_index, remote_index, peer;
  bool initiator;
  double created;  // ms, the device clock
  uint8_t send_key[32], recv_key[32];
  double *st;
  uint32_t *ring;
  napi_ref st_ref;
} fp_keypair;

typedef struct fp_peer {
  bool used, has_endpoint, send_ok;
  uint8_t endpoint[20];
  fp_keypair *send;  // the current keypair, NULL if none
  double *st;        // FP_PS_COUNT doubles
  napi_ref st_ref;
} fp_peer;

typedef struct fp_route {
  uint8_t addr[16];  // masked; IPv4 uses 4 bytes
  uint32_t bits, peer;
} fp_route;

typedef struct fp_routes {
  fp_route *v;  // sorted by bits descending, then address
  uint32_t n;
  uint32_t group[130];  // start of each run of one prefix length; group[ngroups] == n
  uint32_t ngroups;
} fp_routes;

typedef struct ph_fast {
  napi_env env;
  ph_io *tun, *udp;
  napi_ref tun_ref, udp_ref;
  bool out_on, in_on, closed;
  // JS has an inbound hook (a filter or served routes): what the native path cannot deliver on its
  // own goes back to JS decrypted (FP_DECRYPTED) instead of being dropped as not for us.
  bool in_hand_back;
  fp_filter filter;  // established flows, when the packet filter is on
  double reject_after_time, reject_after_messages, rekey_after_messages, rekey_after_time;
  double keepalive_timeout, rekey_timeout;
  uint32_t mtu;
  double clock_ms;      // device clock (ms) at clock_hr
  uint64_t clock_hr;    // uv_hrtime() at the same moment
  fp_peer *peers;
  uint32_t peer_cap;
  fp_keypair *buckets[FP_KP_BUCKETS];
  fp_routes r4, r6;
  fp_routes l4, l6;  // this node's own addresses: the only destinations delivered to the TUN
  uint32_t *offs, *lens;  // scratch for one outgoing batch
  uint8_t *addrs;
  uint32_t scratch;
  struct {
    uint64_t tx_packets, rx_packets, left_out, left_in, bad_tag, replay, bad_inner, allowed_mismatch, not_for_us, io_dropped;
    uint64_t flow_out, flow_in, handed_back;
  } c;
} ph_fast;

// Data path (fast_data.c): the ph_io fast hooks.
uint32_t ph_fast_tun(void *ctx, ph_io *io, uint32_t n);
uint32_t ph_fast_udp(void *ctx, ph_io *io, uint32_t n);
fp_keypair *ph_fast_find_keypair(ph_fast *f, uint32_t local_index);
// Owner of an address (4 or 16 bytes) by longest prefix, or -1 (fast_routes.c).
int64_t ph_fast_route(const fp_routes *r, const uint8_t *addr, uint32_t len);
// Replaces a table from packed entries of (len + 5) bytes: address, bits, peer slot (LE u32... as
// written by fast-path.ts). Returns false on a malformed table (nothing changed).
bool ph_fast_set_routes(fp_routes *r, const uint8_t *packed, size_t size, uint32_t addr_len);
void ph_fast_free_routes(fp_routes *r);
// The IP packet's own length from its header, or <= 0 if implausible (proto/ip/packet.ts ipPacketLength).
int64_t ph_ip_packet_length(const uint8_t *p, uint32_t len);
// True when the destination of the IP packet p (len already checked by ph_ip_packet_length) is
// in the local tables (LocalAddresses.hasDestination in JS).
bool ph_fast_dst_local(const fp_routes *l4, const fp_routes *l6, const uint8_t *p, uint32_t len);

// Defines the native `FastPath` class.
napi_value ph_fast_define(napi_env env);
// Defines `checkDestinations`, the inbound destination verdicts of the code above for a batch
// (the differential test against JS, test/unit/destination-check.test.ts).
napi_value ph_fast_define_check(napi_env env);

#endif
