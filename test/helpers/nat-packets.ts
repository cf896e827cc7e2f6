// Test-side IPv4/IPv6 + TCP/UDP/ICMP packet building and parsing for the userspace NAT tests,
// written independently of proto/ip so the engine's packets are checked by a second implementation.
import { isIPv4 } from 'node:net';

export function addrBytes(text: string): Buffer {
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  const out = Buffer.alloc(16);
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

export function addrText(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}

function sum16(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let s = initial;
  for (let i = start; i < end; i += 2) s += (buf[i]! << 8) | (i + 1 < end ? buf[i + 1]! : 0);
  return s;
}

export function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

function pseudo(src: Uint8Array, dst: Uint8Array, proto: number, len: number): number {
  return sum16(src, 0, src.length) + sum16(dst, 0, dst.length) + proto + len;
}

/** An IP packet around a transport message; the transport checksum is filled in when csumAt >= 0. */
export function ipPacket(src: string, dst: string, proto: number, l4: Buffer, csumAt: number, opts: { ttl?: number; frag?: number } = {}): Buffer {
  const s = addrBytes(src);
  const d = addrBytes(dst);
  if (csumAt >= 0) {
    l4.writeUInt16BE(0, csumAt);
    const c = proto === 1 ? fold(sum16(l4, 0, l4.length)) : fold(sum16(l4, 0, l4.length, pseudo(s, d, proto, l4.length)));
    l4.writeUInt16BE(proto === 17 && c === 0 ? 0xffff : c, csumAt);
  }
  if (s.length === 4) {
    const h = Buffer.alloc(20);
    h[0] = 0x45;
    h.writeUInt16BE(20 + l4.length, 2);
    h.writeUInt16BE(opts.frag ?? 0x4000, 6);
    h[8] = opts.ttl ?? 64;
    h[9] = proto;
    s.copy(h, 12);
    d.copy(h, 16);
    h.writeUInt16BE(fold(sum16(h, 0, 20)), 10);
    return Buffer.concat([h, l4]);
  }
  const h = Buffer.alloc(40);
  h[0] = 0x60;
  h.writeUInt16BE(l4.length, 4);
  h[6] = proto;
  h[7] = opts.ttl ?? 64;
  s.copy(h, 8);
  d.copy(h, 24);
  return Buffer.concat([h, l4]);
}

export interface TcpFields {
  src: string; dst: string; sport: number; dport: number; seq: number; ack: number; flags: number;
  window?: number; data?: Buffer; mss?: number; wscale?: number;
}

export const FIN = 1, SYN = 2, RST = 4, PSH = 8, ACK = 16;

export function tcpPacket(f: TcpFields): Buffer {
  const opts: number[] = [];
  if (f.mss !== undefined) opts.push(2, 4, f.mss >> 8, f.mss & 0xff);
  if (f.wscale !== undefined) opts.push(1, 3, 3, f.wscale);
  const hl = 20 + opts.length;
  const data = f.data ?? Buffer.alloc(0);
  const t = Buffer.alloc(hl + data.length);
  t.writeUInt16BE(f.sport, 0);
  t.writeUInt16BE(f.dport, 2);
  t.writeUInt32BE(f.seq >>> 0, 4);
  t.writeUInt32BE(f.ack >>> 0, 8);
  t[12] = (hl / 4) << 4;
  t[13] = f.flags;
  t.writeUInt16BE(f.window ?? 65535, 14);
  Buffer.from(opts).copy(t, 20);
  data.copy(t, hl);
  return ipPacket(f.src, f.dst, 6, t, 16);
}

export function udpPacket(src: string, sport: number, dst: string, dport: number, data: Buffer): Buffer {
  const u = Buffer.alloc(8 + data.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  data.copy(u, 8);
  return ipPacket(src, dst, 17, u, 6);
}

export function echoRequest(src: string, dst: string, id: number, seq: number, data: Buffer): Buffer {
  const v6 = !isIPv4(src);
  const m = Buffer.alloc(8 + data.length);
  m[0] = v6 ? 128 : 8;
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  data.copy(m, 8);
  return ipPacket(src, dst, v6 ? 58 : 1, m, 2);
}

/** A parsed packet from the engine, with every checksum verified. */
export interface Parsed {
  version: 4 | 6;
  src: string;
  dst: string;
  proto: number;
  ttl: number;
  /** The transport message. */
  l4: Buffer;
  checksumsOk: boolean;
  tcp?: { sport: number; dport: number; seq: number; ack: number; flags: number; window: number; mss: number; wscale: number; data: Buffer };
  udp?: { sport: number; dport: number; data: Buffer };
  icmp?: { type: number; code: number; id: number; seq: number; data: Buffer };
}

export function parse(pkt: Uint8Array): Parsed {
  const b = Buffer.from(pkt);
  const version = (b[0]! >> 4) as 4 | 6;
  let hl: number, proto: number, src: Buffer, dst: Buffer, ttl: number, total: number;
  let ok = true;
  if (version === 4) {
    hl = (b[0]! & 15) * 4;
    total = b.readUInt16BE(2);
    proto = b[9]!;
    ttl = b[8]!;
    src = b.subarray(12, 16);
    dst = b.subarray(16, 20);
    ok &&= fold(sum16(b, 0, hl)) === 0;
  } else {
    hl = 40;
    total = 40 + b.readUInt16BE(4);
    proto = b[6]!;
    ttl = b[7]!;
    src = b.subarray(8, 24);
    dst = b.subarray(24, 40);
  }
  ok &&= total === b.length;
  const l4 = b.subarray(hl, total);
  const p: Parsed = { version, src: addrText(src), dst: addrText(dst), proto, ttl, l4, checksumsOk: false };
  if (proto === 1) ok &&= fold(sum16(l4, 0, l4.length)) === 0;
  else ok &&= fold(sum16(l4, 0, l4.length, pseudo(src, dst, proto, l4.length))) === 0;
  p.checksumsOk = ok;
  if (proto === 6) {
    const thl = (l4[12]! >> 4) * 4;
    let mss = 0;
    let wscale = -1;
    for (let i = 20; i < thl; ) {
      const k = l4[i]!;
      if (k === 0) break;
      if (k === 1) { i++; continue; }
      if (k === 2) mss = l4.readUInt16BE(i + 2);
      if (k === 3) wscale = l4[i + 2]!;
      i += l4[i + 1]!;
    }
    p.tcp = {
      sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), seq: l4.readUInt32BE(4), ack: l4.readUInt32BE(8),
      flags: l4[13]!, window: l4.readUInt16BE(14), mss, wscale, data: l4.subarray(thl),
    };
  } else if (proto === 17) {
    p.udp = { sport: l4.readUInt16BE(0), dport: l4.readUInt16BE(2), data: l4.subarray(8, l4.readUInt16BE(4)) };
  } else if (proto === 1 || proto === 58) {
    p.icmp = { type: l4[0]!, code: l4[1]!, id: l4.readUInt16BE(4), seq: l4.readUInt16BE(6), data: l4.subarray(8) };
  }
  return p;
}
