// sodium-native's signatures (proto/sodium.ts) over the addon's libsodium calls, for an idle agent
// (agent/tun/src/sodium_calls.c), with sodium-native's behaviour: a ciphertext that does not
// verify throws 'could not verify data' from the AEADs, a low-order point throws from
// crypto_scalarmult, and wrong lengths throw.
import { sodiumNative, useSodium, type Sodium } from '../../proto/sodium.js';
import { loadNative, type NativeAddon } from './native.js';

/** The agent daemon's first step: proto's crypto through the addon from here on (throws if it is not built). */
export function useAddonSodium(): void {
  useSodium(addonSodium(loadNative()));
}

/**
 * OptimizerOnLoad's onBusy: sodium-native from here on. Its libsodium (built into its prebuilt
 * from libsodium's newer sources, 1.0.21) seals a 64 KB relay train in 37 µs where the
 * distribution's (Debian 12: 1.0.18), which the addon links, takes 44 µs (both called from
 * JavaScript, same machine; 96-byte messages cost the same, 0.6 µs). A busy agent's JavaScript
 * path and relay trains move such messages; an idle agent never loads sodium-native.
 */
export function sodiumWhenBusy(): string {
  useSodium(sodiumNative());
  return 'bulk crypto on sodium-native';
}

export function addonSodium(n: NativeAddon): Sodium {
  const open = (m: Uint8Array, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array, x: boolean): number => {
    const len = n.aeadOpen(m, c, ad, npub, k, x);
    if (len < 0) throw new Error('could not verify data');
    return len;
  };
  return {
    randombytes_buf: (buf) => n.randomBytes(buf),
    sodium_memcmp: (a, b) => n.bytesEqual(a, b),
    crypto_scalarmult_base: (q, s) => { n.scalarmultBase(q, s); },
    crypto_scalarmult: (q, s, p) => {
      if (!n.scalarmult(q, s, p)) throw new Error('status: -1');
    },
    crypto_aead_chacha20poly1305_ietf_encrypt: (c, m, ad, _nsec, npub, k) => n.aeadSeal(c, m, ad, npub, k, false),
    crypto_aead_chacha20poly1305_ietf_decrypt: (m, _nsec, c, ad, npub, k) => open(m, c, ad, npub, k, false),
    crypto_aead_xchacha20poly1305_ietf_encrypt: (c, m, ad, _nsec, npub, k) => n.aeadSeal(c, m, ad, npub, k, true),
    crypto_aead_xchacha20poly1305_ietf_decrypt: (m, _nsec, c, ad, npub, k) => open(m, c, ad, npub, k, true),
    crypto_secretbox_easy: (c, m, nonce, k) => { n.secretboxSeal(c, m, nonce, k); },
    crypto_secretbox_open_easy: (m, c, nonce, k) => n.secretboxOpen(m, c, nonce, k),
  };
}
