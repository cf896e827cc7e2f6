// The libsodium functions pinhole's protocols call, with sodium-native's signatures. By default
// they are sodium-native's, loaded on first use; the agent daemon installs its own addon's
// (agent/tun/addon-sodium.ts: the same libsodium calls, without sodium-native's loader and second
// copy of libsodium in its memory) before it touches a key, and moves back to sodium-native once it
// is busy (its libsodium seals large messages faster). Every implementation gives the same bytes.
import { createRequire } from 'node:module';
import type SodiumNativeModule from 'sodium-native';

export type Sodium = Pick<typeof SodiumNativeModule,
  | 'randombytes_buf' | 'sodium_memcmp' | 'crypto_scalarmult_base' | 'crypto_scalarmult'
  | 'crypto_aead_chacha20poly1305_ietf_encrypt' | 'crypto_aead_chacha20poly1305_ietf_decrypt'
  | 'crypto_aead_xchacha20poly1305_ietf_encrypt' | 'crypto_aead_xchacha20poly1305_ietf_decrypt'
  | 'crypto_secretbox_easy' | 'crypto_secretbox_open_easy'>;

const requireHere = createRequire(import.meta.url);
let current: Sodium | null = null;

/** sodium-native (node loads it on the first call). */
export function sodiumNative(): Sodium {
  return requireHere('sodium-native') as Sodium;
}

/** The process's libsodium (sodium-native unless useSodium installed another first). */
export function sodium(): Sodium {
  return (current ??= sodiumNative());
}

/** Installs the implementation every later sodium() call returns. */
export function useSodium(impl: Sodium): void {
  current = impl;
}
