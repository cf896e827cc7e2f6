// The NaCl box key a node shares with one peer for disco (proto/disco/messages.ts seals and opens
// with it): libsodium's crypto_box_beforenm, through the native addon (sodium-native has no
// beforenm). Computed once per peer and disco key: X25519 then HSalsa20, ~50 µs natively, where
// tweetnacl's JavaScript took milliseconds per peer on an agent that has not turned TurboFan on.
import { sodium } from '../../proto/sodium.js';
import { loadNative } from '../tun/native.js';

export interface DiscoKey {
  /** The box key; random (it opens nothing and nothing it seals can be read) when `usable` is false. */
  key: Uint8Array;
  /**
   * false: their disco key is of low order, so the shared secret would be all zeros, a key anyone
   * can compute; such a peer gets no disco (no direct path: it reaches us through its relay).
   */
  usable: boolean;
}

export function discoSharedKey(theirPublic: Uint8Array, ourSecret: Uint8Array): DiscoKey {
  const key = new Uint8Array(32);
  if (loadNative().boxBeforenm(key, theirPublic, ourSecret)) return { key, usable: true };
  sodium().randombytes_buf(key);
  return { key, usable: false };
}
