// The coordinator's FilterRule[] compiled for matching on the data path: addresses as int32 words
// and masks, port ranges as flat arrays, protocols as a 256-bit set. Compiling validates too: a
// rule with text that does not parse is dropped (and counted) rather than failing open.
import { parseCidr, type Cidr } from '../../proto/ip/address.js';
import type { FilterRule } from '../../proto/control/schemas.js';
import { parsePorts } from '../../proto/control/policy.js';
import { PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP, type PacketTuple } from './packet-tuple.js';

/** A prefix as four int32 words and per-word masks (IPv4 uses word 0 only). */
interface Prefix {
  family: 4 | 6;
  words: Int32Array;
  masks: Int32Array;
}

interface Destination {
  prefix: Prefix;
  /** [first0, last0, first1, last1, ...]; empty = every port. */
  ports: Uint16Array | null;
}

export interface CompiledRule {
  protocols: Uint8Array;
  /** Exact IPv4 sources (as int32): the common case, a node's address. */
  srcHosts4: Set<number>;
  srcPrefixes: Prefix[];
  dst: Destination[];
}

/** Protocols an empty list stands for: TCP, UDP and ICMP (both versions). */
const DEFAULT_PROTOCOLS = [PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6];

function prefixOf(c: Cidr): Prefix {
  const n = c.family === 4 ? 1 : 4;
  const words = new Int32Array(4);
  const masks = new Int32Array(4);
  for (let i = 0; i < n; i++) {
    const b = c.bytes;
    words[i] = (b[4 * i]! << 24) | (b[4 * i + 1]! << 16) | (b[4 * i + 2]! << 8) | b[4 * i + 3]!;
    const bits = Math.max(0, Math.min(32, c.bits - 32 * i));
    masks[i] = bits === 0 ? 0 : bits === 32 ? -1 : (-1 << (32 - bits));
    words[i] = words[i]! & masks[i]!;
  }
  return { family: c.family, words, masks };
}

function prefixFromText(text: string): Prefix {
  return prefixOf(text.includes('/') ? parseCidr(text) : parseCidr(`${text}/${text.includes(':') ? 128 : 32}`));
}

export function prefixContains4(p: Prefix, addr: number): boolean {
  return p.family === 4 && (addr & p.masks[0]!) === p.words[0];
}

export function prefixContains6(p: Prefix, addr: Int32Array): boolean {
  if (p.family !== 6) return false;
  for (let i = 0; i < 4; i++) if ((addr[i]! & p.masks[i]!) !== p.words[i]) return false;
  return true;
}

/** Compiles the rules; `bad` counts rules (or parts of them) that did not parse and were left out. */
export function compileRules(rules: readonly FilterRule[]): { rules: CompiledRule[]; bad: number } {
  const out: CompiledRule[] = [];
  let bad = 0;
  for (const r of rules) {
    try {
      const protocols = new Uint8Array(256);
      for (const p of r.protocols.length === 0 ? DEFAULT_PROTOCOLS : r.protocols) protocols[p] = 1;
      const srcHosts4 = new Set<number>();
      const srcPrefixes: Prefix[] = [];
      for (const s of r.srcIps) {
        const p = prefixFromText(s);
        if (p.family === 4 && p.masks[0] === -1) srcHosts4.add(p.words[0]!);
        else srcPrefixes.push(p);
      }
      const dst: Destination[] = [];
      for (const d of r.dst) {
        const ranges = parsePorts(d.ports);
        if (!ranges) throw new RangeError(`bad ports ${d.ports}`);
        const every = ranges.some((x) => x.first === 0 && x.last === 65535);
        dst.push({ prefix: prefixFromText(d.cidr), ports: every ? null : Uint16Array.from(ranges.flatMap((x) => [x.first, x.last])) });
      }
      out.push({ protocols, srcHosts4, srcPrefixes, dst });
    } catch {
      bad++; // leaving a rule out only ever denies more: the filter fails closed
    }
  }
  return { rules: out, bad };
}

function portIn(ports: Uint16Array | null, port: number): boolean {
  if (ports === null) return true;
  for (let i = 0; i < ports.length; i += 2) if (port >= ports[i]! && port <= ports[i + 1]!) return true;
  return false;
}

/**
 * Does some rule accept this inbound packet? `ports`: whether to check the destination port
 * (TCP/UDP with a transport header; not for ICMP or later fragments).
 */
export function rulesAccept(rules: readonly CompiledRule[], t: PacketTuple, ports: boolean): boolean {
  const v4 = t.version === 4;
  for (let r = 0; r < rules.length; r++) {
    const rule = rules[r]!;
    if (rule.protocols[t.proto] !== 1) continue;
    let src = v4 && rule.srcHosts4.has(t.src4);
    for (let i = 0; !src && i < rule.srcPrefixes.length; i++) {
      const p = rule.srcPrefixes[i]!;
      src = v4 ? prefixContains4(p, t.src4) : prefixContains6(p, t.src6);
    }
    if (!src) continue;
    for (let i = 0; i < rule.dst.length; i++) {
      const d = rule.dst[i]!;
      if (!(v4 ? prefixContains4(d.prefix, t.dst4) : prefixContains6(d.prefix, t.dst6))) continue;
      if (!ports || portIn(d.ports, t.dport)) return true;
    }
  }
  return false;
}

/**
 * Does any rule accept some traffic (any protocol, any port) from this overlay address? For
 * `pinhole ping`, whose disco pings pass whatever the policy says: false means the policy lets
 * nothing from that peer in, so a pong proves the path, not that traffic flows.
 */
export function acceptsAnythingFrom(rules: readonly FilterRule[], ip: string): boolean {
  const src = prefixFromText(ip);
  const { rules: compiled } = compileRules(rules);
  return compiled.some((r) => (src.family === 4 && r.srcHosts4.has(src.words[0]!))
    || r.srcPrefixes.some((p) => (src.family === 4 ? prefixContains4(p, src.words[0]!) : prefixContains6(p, src.words))));
}
