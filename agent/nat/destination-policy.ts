// Destinations the NAT never opens host sockets toward: they would reach the exit node itself or
// its link (loopback, link-local such as cloud metadata at 169.254.169.254), or are not unicast.

/**
 * True when the destination address at buf[off..] must not be reached through the NAT.
 * Always forbidden: unspecified, multicast, IPv4 limited broadcast, 0.0.0.0/8, 240.0.0.0/4 and
 * IPv4-mapped IPv6 addresses.
 * Forbidden unless allowLocal: loopback (127.0.0.0/8, ::1) and link-local (169.254.0.0/16, fe80::/10).
 */
export function isForbiddenDestination(buf: Uint8Array, off: number, version: 4 | 6, allowLocal: boolean): boolean {
  if (version === 4) {
    const a = buf[off]!;
    if (a === 0 || a >= 224) return true; // 0/8, multicast 224/4, reserved 240/4 + broadcast
    if (allowLocal) return false;
    return a === 127 || (a === 169 && buf[off + 1] === 254);
  }
  const a = buf[off]!;
  if (a === 0xff) return true; // multicast ff00::/8
  let zeroHead = true;
  for (let i = 0; i < 15; i++) {
    if (buf[off + i] !== 0) {
      zeroHead = false;
      break;
    }
  }
  if (zeroHead && buf[off + 15] === 0) return true; // ::
  if (isV4Mapped(buf, off)) return true; // ::ffff:0:0/96 would reach IPv4 (loopback too) via a v6 socket
  if (allowLocal) return false;
  if (zeroHead && buf[off + 15] === 1) return true; // ::1
  return a === 0xfe && (buf[off + 1]! & 0xc0) === 0x80; // fe80::/10
}

function isV4Mapped(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 10] === 0xff && buf[off + 11] === 0xff;
}

/** More destinations a NAT refuses, decided by its owner (an exit node's "internet only" rule, exit-policy.ts). */
export interface DestinationPolicy {
  /** True when the destination address at buf[off..] (IPv4 or IPv6 per version) must be refused. */
  refuses(buf: Uint8Array, off: number, version: 4 | 6): boolean;
}
