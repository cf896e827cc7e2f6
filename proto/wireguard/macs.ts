// mac1, mac2 and cookie replies (paper section 5.4.4 and 5.4.7): the DoS defence of WireGuard.
// mac1 = MAC(HASH(LABEL_MAC1 || Spub_receiver), msg[0:mac1 offset]) — proves the sender knows
// whom it is talking to. mac2 = MAC(cookie, msg[0:mac2 offset]) — proves, when the responder is
// under load, that the sender owns its source address. cookie = MAC(Rm, source address), and it
// travels back in a cookie reply encrypted with XChaCha20-Poly1305 under HASH(LABEL_COOKIE || Spub).
import { COOKIE_NONCE_LEN, DEFAULT_TIMERS, MAC_LEN } from './constants.js';
import { equalConstantTime, mac, randomBytes, xaeadDecrypt, xaeadEncrypt } from './noise-crypto.js';
import { decodeCookieReply, encodeCookieReply } from './messages.js';
import type { LocalIdentity, RemoteIdentity } from './handshake.js';

const ZERO_MAC = new Uint8Array(MAC_LEN);

function isZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

/** Responder side: verifies mac1/mac2 and issues cookies. Time is passed in (ms). */
export class CookieChecker {
  private secret = randomBytes(32);
  private secretTime: number;

  constructor(private readonly local: LocalIdentity, now: number, private readonly refreshMs = DEFAULT_TIMERS.COOKIE_REFRESH_TIME) {
    this.secretTime = now;
  }

  checkMac1(msg: Uint8Array, mac1Offset: number): boolean {
    const expected = mac(this.local.mac1Key, msg.subarray(0, mac1Offset));
    return equalConstantTime(expected, msg.subarray(mac1Offset, mac1Offset + MAC_LEN));
  }

  checkMac2(msg: Uint8Array, mac1Offset: number, source: Uint8Array, now: number): boolean {
    const mac2 = msg.subarray(mac1Offset + MAC_LEN, mac1Offset + 2 * MAC_LEN);
    if (isZero(mac2)) return false;
    const expected = mac(this.cookieFor(source, now), msg.subarray(0, mac1Offset + MAC_LEN));
    return equalConstantTime(expected, mac2);
  }

  /** A cookie reply to `msg` (whose sender index is `receiver`), bound to its mac1. */
  createReply(msg: Uint8Array, mac1Offset: number, receiver: number, source: Uint8Array, now: number): Uint8Array {
    const nonce = randomBytes(COOKIE_NONCE_LEN);
    const mac1 = msg.subarray(mac1Offset, mac1Offset + MAC_LEN);
    const encryptedCookie = xaeadEncrypt(this.local.cookieKey, nonce, this.cookieFor(source, now), mac1);
    return encodeCookieReply({ receiver, nonce, encryptedCookie });
  }

  private cookieFor(source: Uint8Array, now: number): Uint8Array {
    if (now - this.secretTime >= this.refreshMs) {
      this.secret = randomBytes(32);
      this.secretTime = now;
    }
    return mac(this.secret, source);
  }
}

/** Initiator side, one per peer: stamps macs on outgoing handshakes and keeps the peer's cookie. */
export class CookieJar {
  private lastMac1: Uint8Array | undefined;
  private cookie: Uint8Array | undefined;
  private cookieTime = 0;

  constructor(private readonly remote: RemoteIdentity, private readonly refreshMs = DEFAULT_TIMERS.COOKIE_REFRESH_TIME) {}

  /** Fills mac1 (and mac2 when a fresh cookie is held) of `msg` in place. */
  stamp(msg: Uint8Array, mac1Offset: number, now: number): void {
    const mac1 = mac(this.remote.mac1Key, msg.subarray(0, mac1Offset));
    msg.set(mac1, mac1Offset);
    this.lastMac1 = mac1;
    const fresh = this.cookie !== undefined && now - this.cookieTime < this.refreshMs;
    msg.set(fresh ? mac(this.cookie!, msg.subarray(0, mac1Offset + MAC_LEN)) : ZERO_MAC, mac1Offset + MAC_LEN);
  }

  /** Takes a cookie reply; returns false if it does not decrypt against the last mac1 we sent. */
  consumeReply(reply: Uint8Array, now: number): boolean {
    if (!this.lastMac1) return false;
    const r = decodeCookieReply(reply);
    try {
      this.cookie = xaeadDecrypt(this.remote.cookieKey, r.nonce, r.encryptedCookie, this.lastMac1);
    } catch {
      return false;
    }
    this.cookieTime = now;
    return true;
  }

  get hasCookie(): boolean {
    return this.cookie !== undefined;
  }
}
