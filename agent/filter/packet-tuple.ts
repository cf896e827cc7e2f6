// The fields the packet filter decides on, read from an IP packet in place into reusable fields
// (no allocation): addresses, protocol, ports (ICMP echo: the identifier), fragment position,
// and for ICMP errors the flow of the packet they quote.
//
// IPv4: 0 ver|IHL, 6-7 flags|fragment offset (×8), 4-5 identification, 9 protocol, 12 src, 16 dst.
// IPv6: 6 next header, 8 src, 24 dst; extension headers 0, 43, 60 ((len+1)×8 bytes), 51 AH
// ((len+2)×4), 44 fragment (8 bytes: offset at 2-3 (×8, low 3 bits flags, bit 0 = more), id at 4-7).

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

/** Where the packet sits in a fragmented datagram. */
export const Fragment = { None: 0, First: 1, Later: 2 } as const;

/** What an ICMP message is, as far as the filter cares. */
export const IcmpKind = { NotIcmp: 0, EchoRequest: 1, EchoReply: 2, Error: 3, Other: 4 } as const;

const MAX_EXTENSION_HEADERS = 8;

export class PacketTuple {
  version = 0;
  proto = 0;
  /** IPv4 addresses as int32. */
  src4 = 0;
  dst4 = 0;
  /** IPv6 addresses as four int32 words each. */
  readonly src6 = new Int32Array(4);
  readonly dst6 = new Int32Array(4);
  /** Source and destination ports; for ICMP echo the identifier (request: src, reply: dst). */
  sport = 0;
  dport = 0;
  fragment: number = Fragment.None;
  /** IP identification of a fragmented datagram. */
  fragmentId = 0;
  icmp: number = IcmpKind.NotIcmp;
  /** Offset and length of the quoted packet inside an ICMP error. */
  quotedOff = 0;
  quotedLen = 0;

  /**
   * Reads the packet at buf[off, off+len) (len from ipPacketLength). False if it is too short or
   * malformed for its protocol. `quoted`: parsing the packet inside an ICMP error, which may be cut
   * short after its first 8 transport bytes.
   */
  parse(buf: Uint8Array, off: number, len: number, quoted = false): boolean {
    this.sport = 0;
    this.dport = 0;
    this.fragment = Fragment.None;
    this.icmp = IcmpKind.NotIcmp;
    const version = buf[off]! >>> 4;
    this.version = version;
    let l4: number;
    if (version === 4) {
      if (len < 20) return false;
      const ihl = (buf[off]! & 15) * 4;
      if (ihl < 20 || ihl > len) return false;
      this.proto = buf[off + 9]!;
      this.src4 = readInt32(buf, off + 12);
      this.dst4 = readInt32(buf, off + 16);
      const fragField = ((buf[off + 6]! & 0x1f) << 8) | buf[off + 7]!;
      const more = (buf[off + 6]! & 0x20) !== 0;
      if (fragField !== 0 || more) {
        this.fragmentId = (buf[off + 4]! << 8) | buf[off + 5]!;
        this.fragment = fragField !== 0 ? Fragment.Later : Fragment.First;
      }
      l4 = off + ihl;
    } else if (version === 6) {
      if (len < 40) return false;
      for (let i = 0; i < 4; i++) {
        this.src6[i] = readInt32(buf, off + 8 + 4 * i);
        this.dst6[i] = readInt32(buf, off + 24 + 4 * i);
      }
      let nh = buf[off + 6]!;
      l4 = off + 40;
      const end = off + len;
      for (let n = 0; n < MAX_EXTENSION_HEADERS; n++) {
        if (nh === 0 || nh === 43 || nh === 60) {
          if (l4 + 8 > end) return false;
          nh = buf[l4]!;
          l4 += (buf[l4 + 1]! + 1) * 8;
        } else if (nh === 51) {
          if (l4 + 8 > end) return false;
          nh = buf[l4]!;
          l4 += (buf[l4 + 1]! + 2) * 4;
        } else if (nh === 44) {
          if (l4 + 8 > end) return false;
          const field = (buf[l4 + 2]! << 8) | buf[l4 + 3]!;
          this.fragmentId = readInt32(buf, l4 + 4);
          this.fragment = (field & 0xfff8) !== 0 ? Fragment.Later : (field & 1) !== 0 ? Fragment.First : Fragment.None;
          nh = buf[l4]!;
          l4 += 8;
          if (this.fragment === Fragment.Later) break; // what follows is the middle of a datagram
        } else {
          break;
        }
      }
      if (l4 > end) return false;
      this.proto = nh;
    } else {
      return false;
    }
    if (this.fragment === Fragment.Later) return true; // no transport header here
    const avail = off + len - l4;
    const proto = this.proto;
    if (proto === PROTO_TCP || proto === PROTO_UDP) {
      // A quoted header needs only its ports; a live TCP/UDP header must be whole.
      if (avail < (quoted ? 4 : proto === PROTO_TCP ? 20 : 8)) return false;
      this.sport = (buf[l4]! << 8) | buf[l4 + 1]!;
      this.dport = (buf[l4 + 2]! << 8) | buf[l4 + 3]!;
      return true;
    }
    if (proto === PROTO_ICMP || proto === PROTO_ICMPV6) {
      if (avail < 8) return false;
      const type = buf[l4]!;
      const v6 = proto === PROTO_ICMPV6;
      if (type === (v6 ? 128 : 8)) {
        this.icmp = IcmpKind.EchoRequest;
        this.sport = (buf[l4 + 4]! << 8) | buf[l4 + 5]!;
      } else if (type === (v6 ? 129 : 0)) {
        this.icmp = IcmpKind.EchoReply;
        this.dport = (buf[l4 + 4]! << 8) | buf[l4 + 5]!;
      } else if (v6 ? type >= 1 && type <= 4 : type === 3 || type === 11 || type === 12) {
        this.icmp = IcmpKind.Error;
        this.quotedOff = l4 + 8;
        this.quotedLen = avail - 8;
      } else {
        this.icmp = IcmpKind.Other;
      }
    }
    return true;
  }
}

function readInt32(buf: Uint8Array, off: number): number {
  return (buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!;
}
