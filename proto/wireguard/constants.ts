// Protocol constants with the names and values of the WireGuard paper (section 6 and 5.4).

export const CONSTRUCTION = 'Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s';
export const IDENTIFIER = 'WireGuard v1 zx2c4 Jason@zx2c4.com';
export const LABEL_MAC1 = 'mac1----';
export const LABEL_COOKIE = 'cookie--';

export const MESSAGE_INITIATION = 1;
export const MESSAGE_RESPONSE = 2;
export const MESSAGE_COOKIE_REPLY = 3;
export const MESSAGE_TRANSPORT = 4;

export const KEY_LEN = 32;
export const TAG_LEN = 16;
export const MAC_LEN = 16;
export const TIMESTAMP_LEN = 12;
export const COOKIE_NONCE_LEN = 24;

export const INITIATION_LEN = 148;
export const RESPONSE_LEN = 92;
export const COOKIE_REPLY_LEN = 64;
/** type(4) + receiver(4) + counter(8) */
export const TRANSPORT_HEADER_LEN = 16;
/** An empty transport message (a keepalive) is header + tag. */
export const TRANSPORT_MIN_LEN = TRANSPORT_HEADER_LEN + TAG_LEN;
/** Transport payloads are zero-padded to a multiple of this. */
export const PADDING_MULTIPLE = 16;

/** Timer values of the paper, in milliseconds (counts for the *_MESSAGES ones). */
export interface WireGuardTimers {
  REKEY_AFTER_MESSAGES: number;
  REJECT_AFTER_MESSAGES: number;
  REKEY_AFTER_TIME: number;
  REJECT_AFTER_TIME: number;
  REKEY_ATTEMPT_TIME: number;
  REKEY_TIMEOUT: number;
  /** Random jitter added to each handshake retransmission, up to this many ms. */
  REKEY_TIMEOUT_JITTER_MAX: number;
  KEEPALIVE_TIMEOUT: number;
  /** How long a cookie stays usable, and how often the responder rotates its cookie secret. */
  COOKIE_REFRESH_TIME: number;
}

export const DEFAULT_TIMERS: Readonly<WireGuardTimers> = Object.freeze({
  REKEY_AFTER_MESSAGES: 2 ** 60,
  // The paper's 2^64 - 2^13 - 1 is beyond a JS safe integer; counters are kept as numbers and a
  // peer can never send 2^53 packets within REJECT_AFTER_TIME, so the safe limit is equivalent.
  REJECT_AFTER_MESSAGES: Number.MAX_SAFE_INTEGER - 2 ** 13,
  REKEY_AFTER_TIME: 120_000,
  REJECT_AFTER_TIME: 180_000,
  REKEY_ATTEMPT_TIME: 90_000,
  REKEY_TIMEOUT: 5_000,
  REKEY_TIMEOUT_JITTER_MAX: 333,
  KEEPALIVE_TIMEOUT: 10_000,
  COOKIE_REFRESH_TIME: 120_000,
});

/** A responder handles at most this many initiations per second from one peer (wireguard-go: 50). */
export const MAX_INITIATIONS_PER_SECOND = 50;
