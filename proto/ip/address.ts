// IPv4/IPv6 address, CIDR and host:port text forms: strict parsing (DecodeError on anything else)
// and canonical formatting (dotted quad; RFC 5952 for IPv6).
import { DecodeError } from '../errors.js';

export type IpFamily = 4 | 6;

export interface IpAddress {
  family: IpFamily;
  /** 4 or 16 bytes, network order. */
  bytes: Uint8Array;
}

/**
 * An address with a prefix length. parseCidr keeps host bits as written, because an interface
 * address like 100.64.0.1/10 needs them; routing tables mask them (maskCidr), as wg does.
 */
export interface Cidr {
  family: IpFamily;
  bytes: Uint8Array;
  bits: number;
}

/** A UDP endpoint as written: an IP literal (IPv6 without brackets) or a hostname to resolve. */
export interface HostPort {
  host: string;
  port: number;
}

const MAX_TEXT = 300; // longer than any address, CIDR or hostname:port; refuse before scanning

/** Shows a bad input in an error message: quoted, escaped, and cut short. */
function show(s: string): string {
  return JSON.stringify(s.length > 64 ? `${s.slice(0, 61)}...` : s);
}

function checkText(s: unknown, what: string): asserts s is string {
  if (typeof s !== 'string') throw new DecodeError('bad-type', `${what}: expected a string`);
  if (s.length > MAX_TEXT) throw new DecodeError('oversized', `${what}: ${s.length} characters`);
}

const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;

/** Parses a decimal without sign or leading zeros into [0, max]; -1 if it is not one. */
function parseDecimal(s: string, max: number): number {
  if (s.length === 0 || s.length > 5 || (s.length > 1 && s.charCodeAt(0) === 0x30)) return -1;
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!isDigit(c)) return -1;
    v = v * 10 + (c - 0x30);
  }
  return v <= max ? v : -1;
}

/** Dotted quad, exactly four decimal octets without leading zeros (like inet_pton). */
function parseV4Into(s: string, out: Uint8Array, at: number): boolean {
  const parts = s.split('.');
  if (parts.length !== 4) return false;
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    if (part.length > 3) return false;
    const v = parseDecimal(part, 255);
    if (v < 0) return false;
    out[at + i] = v;
  }
  return true;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** Parses colon-separated groups (1–4 hex digits, the last may be a dotted quad) into 16-bit words. */
function parseGroups(s: string, words: number[], allowV4Tail: boolean): boolean {
  if (s === '') return true;
  const groups = s.split(':');
  for (let g = 0; g < groups.length; g++) {
    const group = groups[g] as string;
    if (allowV4Tail && g === groups.length - 1 && group.includes('.')) {
      const v4 = new Uint8Array(4);
      if (!parseV4Into(group, v4, 0)) return false;
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      return true;
    }
    if (group.length === 0 || group.length > 4) return false;
    let v = 0;
    for (let i = 0; i < group.length; i++) {
      const h = hexValue(group.charCodeAt(i));
      if (h < 0) return false;
      v = (v << 4) | h;
    }
    words.push(v);
  }
  return true;
}

/** RFC 4291 §2.2 text form without a zone: eight groups, or fewer with one "::". */
function parseV6(s: string): Uint8Array | null {
  const gap = s.indexOf('::');
  if (gap >= 0 && s.indexOf('::', gap + 1) >= 0) return null;
  const head: number[] = [];
  const tail: number[] = [];
  if (gap < 0) {
    if (!parseGroups(s, head, true) || head.length !== 8) return null;
  } else {
    if (!parseGroups(s.slice(0, gap), head, false)) return null;
    if (!parseGroups(s.slice(gap + 2), tail, true)) return null;
    if (head.length + tail.length > 7) return null;
  }
  const out = new Uint8Array(16);
  const put = (w: number, i: number): void => {
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  };
  head.forEach((w, i) => put(w, i));
  tail.forEach((w, i) => put(w, 8 - tail.length + i));
  return out;
}

/** Parses an IP literal, or returns null: for telling addresses from hostnames. */
export function tryParseAddress(s: string): IpAddress | null {
  if (typeof s !== 'string' || s.length > MAX_TEXT) return null;
  if (s.includes(':')) {
    const bytes = parseV6(s);
    return bytes ? { family: 6, bytes } : null;
  }
  const bytes = new Uint8Array(4);
  return parseV4Into(s, bytes, 0) ? { family: 4, bytes } : null;
}

/** Parses "192.0.2.1" or "2001:db8::1" (no zone, no brackets). */
export function parseAddress(s: string): IpAddress {
  checkText(s, 'address');
  const addr = tryParseAddress(s);
  if (!addr) throw new DecodeError('bad-syntax', `not an IP address: ${show(s)}`);
  return addr;
}

/** Formats 4 or 16 bytes: dotted quad, or RFC 5952 (lowercase, longest zero run as "::"). */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
  if (bytes.length !== 16) throw new RangeError(`an IP address has 4 or 16 bytes, not ${bytes.length}`);
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push((bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  // IPv4-mapped addresses keep the dotted tail (RFC 5952 §5).
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  }
  let bestAt = -1;
  let bestLen = 1; // a single zero group is never shortened
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) [bestAt, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestAt < 0) return hex(words);
  return `${hex(words.slice(0, bestAt))}::${hex(words.slice(bestAt + bestLen))}`;
}

export const maxBits = (family: IpFamily): number => (family === 4 ? 32 : 128);

/** Parses "addr/len"; a bare address means a host prefix (/32 or /128), as wg accepts it. */
export function parseCidr(s: string): Cidr {
  checkText(s, 'CIDR');
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const addr = tryParseAddress(addrText);
  if (!addr) throw new DecodeError('bad-syntax', `not an IP address/prefix: ${show(s)}`);
  const max = maxBits(addr.family);
  if (slash < 0) return { family: addr.family, bytes: addr.bytes, bits: max };
  const bits = parseDecimal(s.slice(slash + 1), max);
  if (bits < 0) throw new DecodeError('bad-value', `bad prefix length in ${show(s)} (expected 0-${max})`);
  return { family: addr.family, bytes: addr.bytes, bits };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.bytes)}/${c.bits}`;
}

/** A copy with the host bits cleared: the canonical form of a route (10.1.2.3/8 → 10.0.0.0/8). */
export function maskCidr(c: Cidr): Cidr {
  const bytes = new Uint8Array(c.bytes.length);
  const full = c.bits >> 3;
  bytes.set(c.bytes.subarray(0, full));
  if (c.bits & 7) bytes[full] = c.bytes[full]! & (0xff << (8 - (c.bits & 7)));
  return { family: c.family, bytes, bits: c.bits };
}

/** True if `addr` (bytes of the same family, read at `offset`) lies inside the prefix. */
export function cidrContains(c: Cidr, addr: Uint8Array, offset = 0): boolean {
  const full = c.bits >> 3;
  for (let i = 0; i < full; i++) if (c.bytes[i] !== addr[offset + i]) return false;
  const rest = c.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return ((c.bytes[full]! ^ addr[offset + full]!) & mask) === 0;
}

/** DNS name syntax (RFC 1123, underscores tolerated): labels of 1–63, 253 in all. */
function isHostname(s: string): boolean {
  const name = s.endsWith('.') ? s.slice(0, -1) : s;
  if (name.length === 0 || name.length > 253) return false;
  // All-numeric names would be read as (broken) IPv4 literals by resolvers.
  if (/^[0-9.]+$/.test(name)) return false;
  return name.split('.').every((l) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(l));
}

/**
 * Parses "1.2.3.4:51820", "[fd00::1]:51820" (a zone is allowed: "[fe80::1%eth0]:51820") or
 * "host.example:51820". The port must be 1–65535; IPv6 needs brackets. Hostnames are only
 * checked for syntax: resolving them is the caller's job.
 */
export function parseEndpoint(s: string): HostPort {
  checkText(s, 'endpoint');
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') {
      throw new DecodeError('bad-syntax', `bad endpoint ${show(s)} (expected [IPv6]:port)`);
    }
    host = s.slice(1, close);
    portText = s.slice(close + 2);
    const pct = host.indexOf('%');
    const zone = pct < 0 ? '' : host.slice(pct + 1);
    const bare = pct < 0 ? host : host.slice(0, pct);
    if (!parseV6(bare) || (pct >= 0 && !/^[A-Za-z0-9_.-]{1,32}$/.test(zone))) {
      throw new DecodeError('bad-syntax', `bad IPv6 address in endpoint ${show(s)}`);
    }
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) throw new DecodeError('bad-syntax', `endpoint ${show(s)} has no port (expected host:port)`);
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
    if (host.includes(':')) {
      throw new DecodeError('bad-syntax', `IPv6 endpoint ${show(s)} needs brackets: [addr]:port`);
    }
    const v4 = new Uint8Array(4);
    if (!parseV4Into(host, v4, 0) && !isHostname(host)) {
      throw new DecodeError('bad-syntax', `bad host in endpoint ${show(s)}`);
    }
  }
  const port = parseDecimal(portText, 65535);
  if (port <= 0) throw new DecodeError('bad-value', `bad port in endpoint ${show(s)} (expected 1-65535)`);
  return { host, port };
}

/** The inverse of parseEndpoint: brackets around IPv6 hosts. */
export function formatEndpoint(e: HostPort): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
