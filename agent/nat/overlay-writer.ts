// Builds the IP packets the NAT sends back toward the overlay in one reusable buffer and hands
// them to emit(). The view passed to emit() is only valid during the call: the caller copies or
// encrypts synchronously (views are cached per length, so steady traffic allocates nothing).
import { finishChecksum, internetChecksum, pseudoHeaderSum, sumWords } from '../../proto/ip/checksum.js';
import { ICMP_HEADER_LEN, ICMPV4_ECHO_REPLY, ICMPV6_ECHO_REPLY, setIcmpChecksum, writeIcmpEchoHeader, writeIcmpUnreachable } from '../../proto/ip/icmp.js';
import { IP_PROTO_ICMP, IP_PROTO_ICMPV6, IP_PROTO_TCP, IP_PROTO_UDP, ipHeaderLength, writeIpHeader } from '../../proto/ip/ip-header.js';
import { UDP_HEADER_LEN, setUdpChecksum, writeUdpHeader } from '../../proto/ip/udp.js';
import type { NatCounters } from './counters.js';

/** TTL / hop limit of packets we originate toward the overlay. */
export const NAT_TTL = 64;
/** Largest packet the writer can build: an IPv6 header plus a maximal payload. */
const BUFFER_BYTES = 40 + 65535;

export type EmitFn = (packet: Uint8Array) => void;

export class OverlayWriter {
  /** The output buffer; builders write at offset 0. */
  readonly buf = new Uint8Array(BUFFER_BYTES);
  private readonly views: Array<Uint8Array | undefined> = [];
  /** Scratch for synthesised quotes of ICMP errors (IP header + 8 transport bytes). */
  private readonly quote = new Uint8Array(40 + 8);

  /** Set by the engine's close(): nothing is emitted after it. */
  closed = false;

  constructor(private readonly emitFn: EmitFn, private readonly counters: NatCounters) {}

  /** Emits buf[0, length). Never throws: a throwing emit() is counted. */
  send(length: number): void {
    if (this.closed) return;
    let view = this.views[length];
    if (view === undefined) {
      view = this.buf.subarray(0, length);
      this.views[length] = view;
    }
    this.counters.packetsOut++;
    this.counters.bytesOut += length;
    try {
      this.emitFn(view);
    } catch {
      this.counters.drop('emit-failed');
    }
  }

  /** A UDP datagram from src:srcPort to dst:dstPort carrying data[off, off+len). */
  udp(version: 4 | 6, src: Uint8Array, srcPort: number, dst: Uint8Array, dstPort: number, data: Uint8Array, off: number, len: number): void {
    const b = this.buf;
    const udpLen = UDP_HEADER_LEN + len;
    const ipLen = writeIpHeader(b, 0, version, IP_PROTO_UDP, udpLen, src, dst, NAT_TTL);
    writeUdpHeader(b, ipLen, srcPort, dstPort, udpLen);
    b.set(data.subarray(off, off + len), ipLen + UDP_HEADER_LEN);
    const sum = sumWords(b, ipLen, ipLen + udpLen, pseudoHeaderSum(b, 0, version, IP_PROTO_UDP, udpLen));
    setUdpChecksum(b, ipLen, finishChecksum(sum));
    this.send(ipLen + udpLen);
  }

  /** An echo reply from src to dst with the client's identifier/sequence and data. */
  echoReply(version: 4 | 6, src: Uint8Array, dst: Uint8Array, identifier: number, sequence: number, data: Uint8Array, off: number, len: number): void {
    const b = this.buf;
    const msgLen = ICMP_HEADER_LEN + len;
    const proto = version === 4 ? IP_PROTO_ICMP : IP_PROTO_ICMPV6;
    const ipLen = writeIpHeader(b, 0, version, proto, msgLen, src, dst, NAT_TTL);
    writeIcmpEchoHeader(b, ipLen, version === 4 ? ICMPV4_ECHO_REPLY : ICMPV6_ECHO_REPLY, identifier, sequence);
    b.set(data.subarray(off, off + len), ipLen + ICMP_HEADER_LEN);
    this.finishIcmp(version, ipLen, msgLen);
  }

  /**
   * A destination-unreachable error to `dst` (the client) from `src` (the address it tried),
   * quoting quote[qOff, qOff + qLen) — the client's packet, or one made by quoteOf().
   */
  unreachable(version: 4 | 6, code: number, src: Uint8Array, dst: Uint8Array, quote: Uint8Array, qOff: number, qLen: number): void {
    const b = this.buf;
    const ipLenGuess = ipHeaderLength(version);
    const msgLen = writeIcmpUnreachable(b, ipLenGuess, version, code, quote, qOff, qLen);
    const proto = version === 4 ? IP_PROTO_ICMP : IP_PROTO_ICMPV6;
    const ipLen = writeIpHeader(b, 0, version, proto, msgLen, src, dst, NAT_TTL);
    this.counters.unreachableSent++;
    this.finishIcmp(version, ipLen, msgLen);
  }

  /**
   * The start of a packet the client sent (IP header + first 8 transport bytes: ports and, for
   * TCP, the sequence number) rebuilt from a flow's tuple, for errors raised after the packet
   * itself is gone. Returns the quote length; the bytes are in quoteBuffer.
   */
  quoteOf(version: 4 | 6, protocol: number, client: Uint8Array, clientPort: number, remote: Uint8Array, remotePort: number, seq: number): number {
    const q = this.quote;
    const ipLen = writeIpHeader(q, 0, version, protocol, 8, client, remote, NAT_TTL);
    q[ipLen] = clientPort >> 8;
    q[ipLen + 1] = clientPort & 0xff;
    q[ipLen + 2] = remotePort >> 8;
    q[ipLen + 3] = remotePort & 0xff;
    if (protocol === IP_PROTO_TCP) {
      q[ipLen + 4] = (seq >>> 24) & 0xff;
      q[ipLen + 5] = (seq >>> 16) & 0xff;
      q[ipLen + 6] = (seq >>> 8) & 0xff;
      q[ipLen + 7] = seq & 0xff;
    } else {
      q[ipLen + 4] = 0;
      q[ipLen + 5] = 8;
      q[ipLen + 6] = 0;
      q[ipLen + 7] = 0;
    }
    return ipLen + 8;
  }

  get quoteBuffer(): Uint8Array {
    return this.quote;
  }

  private finishIcmp(version: 4 | 6, ipLen: number, msgLen: number): void {
    const b = this.buf;
    const c = version === 4
      ? internetChecksum(b, ipLen, ipLen + msgLen)
      : finishChecksum(sumWords(b, ipLen, ipLen + msgLen, pseudoHeaderSum(b, 0, 6, IP_PROTO_ICMPV6, msgLen)));
    setIcmpChecksum(b, ipLen, c);
    this.send(ipLen + msgLen);
  }
}
