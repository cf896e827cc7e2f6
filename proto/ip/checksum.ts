// The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers of TCP, UDP and ICMPv6.
//
// A checksum is built in two steps so regions can be summed separately (header, then payload)
// without copying: sumWords() adds 16-bit big-endian words to a running sum that is neither
// folded nor inverted, finishChecksum() folds it to 16 bits and inverts it. A region of odd
// length is padded with a zero byte, so only the last region may have an odd length.
//
// Verifying: the sum over a whole message including its checksum field finishes to 0.
import { IPV4_DST_OFFSET, IPV4_SRC_OFFSET, IPV6_DST_OFFSET, IPV6_SRC_OFFSET } from './packet.js';

/**
 * Adds the big-endian 16-bit words of buf[start, end) to `sum`. The result is an unfolded
 * sum, exact as long as fewer than 2^37 words are added (any IP packet is far below).
 */
export function sumWords(buf: Uint8Array, start: number, end: number, sum = 0): number {
  let i = start;
  const last8 = end - 7;
  for (; i < last8; i += 8) {
    sum += ((buf[i]! << 8) | buf[i + 1]!) + ((buf[i + 2]! << 8) | buf[i + 3]!) +
      ((buf[i + 4]! << 8) | buf[i + 5]!) + ((buf[i + 6]! << 8) | buf[i + 7]!);
  }
  for (; i + 1 < end; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/** Folds an unfolded sum to 16 bits with end-around carry and inverts it: the checksum field. */
export function finishChecksum(sum: number): number {
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

/** The checksum of buf[start, end) alone (IPv4 header, ICMPv4 message). */
export function internetChecksum(buf: Uint8Array, start: number, end: number): number {
  return finishChecksum(sumWords(buf, start, end));
}

/**
 * The unfolded sum of the pseudo-header of a transport segment inside the IP packet at ipOff:
 * source and destination addresses (read from the IP header), protocol and transport length.
 *   IPv4 (RFC 793): src(4) dst(4) zero(1) protocol(1) length(2)
 *   IPv6 (RFC 8200 §8.1): src(16) dst(16) length(4) zero(3) next-header(1)
 * Both add up to the same word sum: addresses + protocol + length.
 */
export function pseudoHeaderSum(buf: Uint8Array, ipOff: number, version: number, protocol: number, length: number): number {
  const sum = protocol + (length & 0xffff) + Math.floor(length / 0x10000);
  if (version === 4) {
    return sumWords(buf, ipOff + IPV4_SRC_OFFSET, ipOff + IPV4_DST_OFFSET + 4, sum);
  }
  return sumWords(buf, ipOff + IPV6_SRC_OFFSET, ipOff + IPV6_DST_OFFSET + 16, sum);
}

/**
 * The checksum of a TCP/UDP/ICMPv6 message of `length` bytes at l4Off inside the IP packet at
 * ipOff, with the checksum field counted as it is: 0 means "valid" when the field is filled,
 * and when the field is zeroed the result is the value to write.
 */
export function transportChecksum(
  buf: Uint8Array, ipOff: number, version: number, protocol: number, l4Off: number, length: number,
): number {
  return finishChecksum(sumWords(buf, l4Off, l4Off + length, pseudoHeaderSum(buf, ipOff, version, protocol, length)));
}
