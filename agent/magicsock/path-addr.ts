// Addresses the WireGuard device sends to, as the magic socket reads them. A peer's endpoint is
// either a real UDP address (the 20-byte packed form) or a "relay address": the same 20 bytes
// with family RELAY_FAMILY and the peer's magic-socket id, meaning "through the peer's relay".
// The device never looks inside; the bind routes on the first byte. addrKind() is the one
// place that reads that byte ("relay, birthday or plain UDP?"); the native data path asks the
// same in agent/tun/src/fastpath.c (it sends families 4 and 6 only).
import { PACKED_ADDR_SIZE, decodePackedAddr, encodePackedAddr, formatEndpoint } from '../tun/packed-addr.js';
import type { DiscoEndpoint } from '../../proto/disco/messages.js';

/** What a 20-byte path address is: plain UDP (IPv4/IPv6), through the peer's relay, from a birthday socket, or nothing we know. */
export type AddrKind = 'udp' | 'relay' | 'birthday' | 'invalid';

/** The kind of the path address at addrs[off] (no allocation: the hot path asks per packet). */
export function addrKind(addrs: Uint8Array, off = 0): AddrKind {
  const family = addrs[off];
  if (family === 4 || family === 6) return 'udp';
  if (family === RELAY_FAMILY) return 'relay';
  if (family === BIRTHDAY_FAMILY) return 'birthday';
  return 'invalid';
}

/**
 * Relay address layout (20 bytes):
 *
 *   offset 0  family = 0xfe | 1..3 zero | 4..7 peer id u32be | 8..19 zero
 */
export const RELAY_FAMILY = 0xfe;

export function relayAddr(peerId: number): Uint8Array {
  const out = new Uint8Array(PACKED_ADDR_SIZE);
  out[0] = RELAY_FAMILY;
  new DataView(out.buffer).setUint32(4, peerId >>> 0);
  return out;
}

export function relayAddrPeerId(addrs: Uint8Array, off = 0): number {
  return ((addrs[off + 4]! << 24) | (addrs[off + 5]! << 16) | (addrs[off + 6]! << 8) | addrs[off + 7]!) >>> 0;
}

/**
 * Birthday address layout (20 bytes): UDP to an IPv4 ip:port, sent from (and received on) the
 * birthday socket #id instead of the main socket (birthday.ts). Same place for port and address
 * as a packed IPv4 address, so the two differ in the family byte and the socket id:
 *
 *   offset 0  family = 0xfd | 1 zero | 2..3 port u16be | 4..7 IPv4 | 8..11 socket id u32be | 12..19 zero
 */
export const BIRTHDAY_FAMILY = 0xfd;

export function birthdayAddr(socketId: number, ipv4: Uint8Array, port: number): Uint8Array {
  const out = new Uint8Array(PACKED_ADDR_SIZE);
  out[0] = BIRTHDAY_FAMILY;
  out[2] = port >> 8;
  out[3] = port & 0xff;
  out.set(ipv4.subarray(0, 4), 4);
  new DataView(out.buffer).setUint32(8, socketId >>> 0);
  return out;
}

export function birthdaySocketId(addrs: Uint8Array, off = 0): number {
  return ((addrs[off + 8]! << 24) | (addrs[off + 9]! << 16) | (addrs[off + 10]! << 8) | addrs[off + 11]!) >>> 0;
}

/** The plain packed IPv4 address a birthday address sends to. */
export function birthdayTarget(addrs: Uint8Array, off = 0): Uint8Array {
  const out = new Uint8Array(PACKED_ADDR_SIZE);
  out[0] = 4;
  out.set(addrs.subarray(off + 2, off + 8), 2);
  return out;
}

/** "ip:port" of a packed UDP address (slow path: status, logs); "ip:port#bN" for a birthday socket's. */
export function packedText(addr: Uint8Array, off = 0): string {
  if (addrKind(addr, off) === 'birthday') return `${formatEndpoint(decodePackedAddr(birthdayTarget(addr, off)))}#b${birthdaySocketId(addr, off)}`;
  return formatEndpoint(decodePackedAddr(addr, off));
}

/** Packed UDP address → disco's 16-byte address + port. */
export function packedToDisco(addr: Uint8Array, off = 0): DiscoEndpoint {
  const address = new Uint8Array(16);
  if (addr[off] === 4 || addrKind(addr, off) === 'birthday') {
    address[10] = 0xff;
    address[11] = 0xff;
    address.set(addr.subarray(off + 4, off + 8), 12);
  } else if (addr[off] === 6) {
    address.set(addr.subarray(off + 4, off + 20));
  }
  return { address, port: (addr[off + 2]! << 8) | addr[off + 3]! };
}

/** Disco endpoint → packed UDP address; undefined for the all-zero "no address". */
export function discoToPacked(e: DiscoEndpoint): Uint8Array | undefined {
  const a = e.address;
  if (a.every((b) => b === 0) || e.port === 0) return undefined;
  const v4 = a.subarray(0, 10).every((b) => b === 0) && a[10] === 0xff && a[11] === 0xff;
  const text = v4 ? `${a[12]}.${a[13]}.${a[14]}.${a[15]}` : [...Array(8).keys()].map((i) => ((a[i * 2]! << 8) | a[i * 2 + 1]!).toString(16)).join(':');
  return encodePackedAddr({ address: text, port: e.port });
}

export const NO_DISCO_ENDPOINT: DiscoEndpoint = { address: new Uint8Array(16), port: 0 };
