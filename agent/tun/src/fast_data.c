// The per-packet work of the native data path (see fastpath.h): the same steps, checks and
// timer bookkeeping as agent/wireguard/transport.ts, for the packets that need nothing else.
#include <sodium.h>
#include <string.h>
#include <uv.h>

#include "fastpath.h"
#include "tun.h"
#include "udp.h"

#define HEADER_LEN 16
#define TAG_LEN 16
#define COUNTER_LIMIT 9007199254740992.0  // 2^53: proto/wireguard/replay.ts COUNTER_LIMIT
#define REPLAY_WINDOW 8160

static inline uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline void nonce_for(uint8_t nonce[12], uint64_t counter) {
  memset(nonce, 0, 4);
  put32(nonce + 4, (uint32_t)counter);
  put32(nonce + 8, (uint32_t)(counter >> 32));
}

static inline double now_ms(const ph_fast *f) {
  return f->clock_ms + (double)(uv_hrtime() - f->clock_hr) / 1e6;
}

fp_keypair *ph_fast_find_keypair(ph_fast *f, uint32_t local_index) {
  for (fp_keypair *k = f->buckets[local_index % FP_KP_BUCKETS]; k; k = k->next_in_bucket)
    if (k->local_index == local_index) return k;
  return NULL;
}

// Padded plaintext length per the paper: a multiple of 16, never past the MTU (transport.ts).
static uint32_t padded_length(uint32_t len, uint32_t mtu) {
  uint32_t last = len > mtu ? len % mtu : len;
  uint32_t padded = (last + 15) & ~15u;
  if (padded > mtu) padded = mtu;
  return len + (padded - last);
}

// Owner of the address at p (dst_off / dst_len picked by IP version), or -1.
static int64_t route_ip(const ph_fast *f, const uint8_t *p, uint32_t len, bool source) {
  uint8_t v = p[0] >> 4;
  if (v == 4 && len >= 20) return ph_fast_route(&f->r4, p + (source ? 12 : 16), 4);
  if (v == 6 && len >= 40) return ph_fast_route(&f->r6, p + (source ? 8 : 24), 16);
  return -1;
}

// proto/ip/packet.ts ipPacketLength: the IP packet's own length, or <= 0 if implausible.
int64_t ph_ip_packet_length(const uint8_t *p, uint32_t len) {
  if (len < 1) return -2;
  uint8_t v = p[0] >> 4;
  if (v == 4) {
    if (len < 20) return -2;
    uint32_t hl = (p[0] & 0x0f) * 4u;
    if (hl < 20) return -4;
    uint32_t total = (uint32_t)p[2] << 8 | p[3];
    if (total < hl || total > len) return -5;
    return total;
  }
  if (v == 6) {
    if (len < 40) return -2;
    uint32_t total = 40 + ((uint32_t)p[4] << 8 | p[5]);
    return total > len ? -5 : (int64_t)total;
  }
  return -3;
}

// proto/wireguard/replay.ts ReplayWindow.accept on the shared state.
static bool replay_accept(fp_keypair *k, uint64_t counter) {
  double *st = k->st;
  uint32_t *ring = k->ring;
  if ((double)counter >= COUNTER_LIMIT) return false;
  uint64_t last = (uint64_t)st[1];
  uint64_t block = counter >> 5;
  if (counter > last) {
    uint64_t current = last >> 5;
    if (block - current >= 256) {
      memset(ring, 0, 256 * 4);
    } else {
      for (uint64_t i = current + 1; i <= block; i++) ring[i & 255] = 0;
    }
    st[1] = (double)counter;
  } else if (last - counter > REPLAY_WINDOW) {
    return false;
  }
  uint32_t idx = (uint32_t)(block & 255), bit = 1u << (counter & 31);
  if (ring[idx] & bit) return false;
  ring[idx] |= bit;
  return true;
}

// TUN → peers. A packet is taken when its destination has a peer whose current session may
// send without any timer action (JS requests handshakes and stages packets).
uint32_t ph_fast_tun(void *ctx, ph_io *io, uint32_t n) {
  ph_fast *f = ctx;
  if (!f->out_on || !f->udp || f->udp->closed || io->headroom < HEADER_LEN) return n;
  double now = now_ms(f);
  uint32_t left = 0, q = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t len = io->lengths[i];
    size_t off = (size_t)i * io->slot_size + io->headroom;
    uint8_t *p = io->slab + off;
    int64_t slot = route_ip(f, p, len, false);
    fp_peer *pe = slot >= 0 && (uint64_t)slot < f->peer_cap ? &f->peers[slot] : NULL;
    fp_keypair *k = pe && pe->used && pe->send_ok ? pe->send : NULL;
    uint32_t padded = padded_length(len, f->mtu);
    if (!k || q == f->scratch || io->headroom + padded + TAG_LEN > io->slot_size) { left++; continue; }
    // The packet filter tracks what this node opens: a flow it has not seen yet goes through JS once.
    if (f->filter.on) {
      if (ph_flow_outbound(&f->filter, p, len, now) != FP_FLOW_PASS) { left++; continue; }
      f->c.flow_out++;
    }
    double counter = k->st[0], age = now - k->created;
    if (age >= f->reject_after_time || counter >= f->reject_after_messages || counter >= f->rekey_after_messages ||
        (k->initiator && age >= f->rekey_after_time)) {
      left++;
      continue;
    }
    k->st[0] = counter + 1;
    uint64_t c = (uint64_t)counter;
    if (padded > len) memset(p + len, 0, padded - len);
    uint8_t nonce[12];
    nonce_for(nonce, c);
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(p, p + padded, NULL, p, padded, NULL, 0, NULL, nonce, k->send_key);
    uint8_t *h = p - HEADER_LEN;
    put32(h, 4);
    put32(h + 4, k->remote_index);
    put32(h + 8, (uint32_t)c);
    put32(h + 12, (uint32_t)(c >> 32));
    uint32_t total = HEADER_LEN + padded + TAG_LEN;
    double *ps = pe->st;
    ps[FP_PS_TX_BYTES] += total;
    ps[FP_PS_TX_PACKETS] += 1;
    ps[FP_PS_KEEPALIVE_DUE] = 0;
    ps[FP_PS_LAST_AUTH] = now;
    if (len > 0 && ps[FP_PS_NEW_HANDSHAKE_DUE] == 0) ps[FP_PS_NEW_HANDSHAKE_DUE] = now + f->keepalive_timeout + f->rekey_timeout;
    f->offs[q] = (uint32_t)(off - HEADER_LEN);
    f->lens[q] = total;
    memcpy(f->addrs + (size_t)q * 20, pe->endpoint, 20);
    q++;
    io->lengths[i] = FP_TAKEN;
  }
  if (q > 0) {
    uint32_t sent = ph_udp_send_packets((ph_udp *)f->udp, io->slab, f->offs, f->lens, f->addrs, q);
    if (sent < q) f->c.io_dropped += q - sent;
    f->c.tx_packets += q;
  }
  f->c.left_out += left;
  return left;
}

// UDP → TUN. A transport message is taken when its index names a current or previous session
// of a peer it came from the known endpoint of, and no timer action is due; its packet reaches
// the TUN only from an allowed IP of that peer and to one of this node's own addresses.
uint32_t ph_fast_udp(void *ctx, ph_io *io, uint32_t n) {
  ph_fast *f = ctx;
  if (!f->in_on || !f->tun || f->tun->closed || !io->addrs) return n;
  double now = now_ms(f);
  uint32_t left = 0, q = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t len = io->lengths[i];
    size_t off = (size_t)i * io->slot_size + io->headroom;
    uint8_t *p = io->slab + off;
    if (len < HEADER_LEN + TAG_LEN || le32(p) != 4) { left++; continue; }
    fp_keypair *k = ph_fast_find_keypair(f, le32(p + 4));
    fp_peer *pe = k && k->peer < f->peer_cap ? &f->peers[k->peer] : NULL;
    if (!pe || !pe->used || !pe->has_endpoint || memcmp(io->addrs + (size_t)i * 20, pe->endpoint, 20) != 0 ||
        q == f->scratch) {
      left++;
      continue;
    }
    uint64_t c = (uint64_t)le32(p + 8) | (uint64_t)le32(p + 12) << 32;
    double age = now - k->created;
    if ((double)c >= COUNTER_LIMIT || (double)c >= f->reject_after_messages || age >= f->reject_after_time ||
        (k == pe->send && k->initiator &&
         age >= f->reject_after_time - f->keepalive_timeout - f->rekey_timeout)) {
      left++;
      continue;
    }
    io->lengths[i] = FP_TAKEN;
    uint8_t *ct = p + HEADER_LEN;
    uint32_t plain = len - HEADER_LEN - TAG_LEN;
    uint8_t nonce[12];
    nonce_for(nonce, c);
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(ct, NULL, ct, plain, ct + plain, NULL, 0, nonce, k->recv_key) != 0) {
      f->c.bad_tag++;
      continue;
    }
    if (!replay_accept(k, c)) {
      f->c.replay++;
      continue;
    }
    double *ps = pe->st;
    ps[FP_PS_RX_BYTES] += len;
    ps[FP_PS_RX_PACKETS] += 1;
    ps[FP_PS_NEW_HANDSHAKE_DUE] = 0;
    ps[FP_PS_LAST_AUTH] = now;
    f->c.rx_packets++;
    if (plain == 0) continue;  // keepalive
    int64_t ip_len = ph_ip_packet_length(ct, plain);
    if (ip_len <= 0) {
      f->c.bad_inner++;
      continue;
    }
    if (route_ip(f, ct, (uint32_t)ip_len, true) != (int64_t)k->peer) {
      f->c.allowed_mismatch++;
      continue;
    }
    if (ps[FP_PS_KEEPALIVE_DUE] == 0) ps[FP_PS_KEEPALIVE_DUE] = now + f->keepalive_timeout;
    // Only this node's own addresses: a peer must not steer packets through the host's routing.
    // With a JS hook, the rest (served routes) and new flows (the filter's rules) go back to JS.
    bool local = ph_fast_dst_local(&f->l4, &f->l6, ct, (uint32_t)ip_len);
    if (local && f->filter.on) {
      if (ph_flow_inbound(&f->filter, ct, (uint32_t)ip_len, now) == FP_FLOW_PASS) f->c.flow_in++;
      else local = false;
    }
    if (!local) {
      if (f->in_hand_back) {
        io->lengths[i] = FP_DECRYPTED | (uint32_t)ip_len;
        f->c.handed_back++;
        left++;
      } else {
        f->c.not_for_us++;
      }
      continue;
    }
    f->offs[q] = (uint32_t)(off + HEADER_LEN);
    f->lens[q] = (uint32_t)ip_len;
    q++;
  }
  if (q > 0) {
    uint32_t written = ph_tun_write_packets(f->tun, io->slab, f->offs, f->lens, q);
    if (written < q) f->c.io_dropped += q - written;
  }
  f->c.left_in += left;
  return left;
}
