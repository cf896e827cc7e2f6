// ICMP echo through the NAT: a client's echo request is re-sent from one ICMP socket per family
// (ping socket, or raw as root) under a sequence number of ours; the reply is matched back by
// that number and the remote address, and returned with the client's identifier and sequence.
import { internetChecksum, transportChecksum } from '../../proto/ip/checksum.js';
import {
  ICMP_HEADER_LEN, ICMPV4_ECHO_REPLY, ICMPV4_ECHO_REQUEST, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST,
  newIcmpEchoView, readIcmpHeader, setIcmpChecksum, writeIcmpEchoHeader,
} from '../../proto/ip/icmp.js';
import { IP_PROTO_ICMPV6, type IpHeaderView } from '../../proto/ip/ip-header.js';
import { IcmpSocket } from '../tun/icmp-socket.js';
import type { PacketSlab } from '../tun/packet-slab.js';
import type { NatContext } from './nat-context.js';
import { copyBytes } from '../../proto/bytes.js';
import type { PeerState } from './peer-table.js';

/** After a failed open, try again at most this often (a sysctl or capability may change). */
const REOPEN_AFTER_MS = 30_000;

interface PendingEcho {
  peer: PeerState;
  client: Uint8Array;
  remote: Uint8Array;
  identifier: number;
  sequence: number;
  expires: number;
}

interface FamilySocket {
  socket: IcmpSocket | null;
  failedAt: number;
  error: string;
}

export type IcmpSocketState = 'unopened' | 'dgram' | 'raw' | 'unavailable';

export class IcmpEcho {
  private readonly sockets: Record<4 | 6, FamilySocket> = {
    4: { socket: null, failedAt: -Infinity, error: '' },
    6: { socket: null, failedAt: -Infinity, error: '' },
  };
  /** Outstanding requests by (version << 16 | our sequence), oldest first. */
  private readonly pending = new Map<number, PendingEcho>();
  private nextSeq = Math.floor(Math.random() * 0x10000);
  /** Identifier of our requests on a raw socket (a ping socket sets its own). */
  private readonly ident = 1 + Math.floor(Math.random() * 0xfffe);
  private readonly view = newIcmpEchoView();
  private readonly out = new Uint8Array(65535);
  private readonly addr = new Uint8Array(20);
  private closed = false;

  constructor(private readonly ctx: NatContext) {}

  get size(): number {
    return this.pending.size;
  }

  socketState(version: 4 | 6): IcmpSocketState {
    const f = this.sockets[version];
    return f.socket ? f.socket.kind : f.error ? 'unavailable' : 'unopened';
  }

  /** An ICMP/ICMPv6 message from the overlay, IP header already validated. */
  handle(buf: Uint8Array, ip: IpHeaderView): void {
    const { counters, limits } = this.ctx;
    const v = this.view;
    if (readIcmpHeader(buf, ip.l4Offset, ip.l4Length, v) < 0) {
      counters.drop('malformed-icmp');
      return;
    }
    const sum = ip.version === 4
      ? internetChecksum(buf, ip.l4Offset, ip.l4Offset + ip.l4Length)
      : transportChecksum(buf, ip.offset, 6, IP_PROTO_ICMPV6, ip.l4Offset, ip.l4Length);
    if (sum !== 0) {
      counters.drop('bad-icmp-checksum');
      return;
    }
    const request = ip.version === 4 ? ICMPV4_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
    if (v.type !== request || v.code !== 0) {
      counters.drop('icmp-not-echo');
      return;
    }
    const now = this.ctx.now();
    const peer = this.ctx.peers.get(buf, ip.srcOffset, ip.addrLength, now);
    if (!peer) {
      counters.drop('peer-table-full');
      return;
    }
    if (peer.icmp >= limits.icmpPerPeer || this.pending.size >= limits.icmpTotal) {
      counters.drop('icmp-table-full');
      return;
    }
    const socket = this.socketFor(ip.version, now);
    if (!socket) {
      counters.drop('icmp-socket-unavailable');
      return;
    }
    let seq = this.nextSeq;
    while (this.pending.has((ip.version << 16) | seq)) seq = (seq + 1) & 0xffff;
    this.nextSeq = (seq + 1) & 0xffff;

    const out = this.out;
    const len = ICMP_HEADER_LEN + v.dataLength;
    writeIcmpEchoHeader(out, 0, request, socket.kind === 'raw' ? this.ident : 0, seq);
    out.set(buf.subarray(v.dataOffset, v.dataOffset + v.dataLength), ICMP_HEADER_LEN);
    if (ip.version === 4) setIcmpChecksum(out, 0, internetChecksum(out, 0, len)); // ICMPv6: the kernel sums
    const a = this.addr;
    a.fill(0);
    a[0] = ip.version;
    a.set(buf.subarray(ip.dstOffset, ip.dstOffset + ip.addrLength), 4);
    if (!socket.send(out.subarray(0, len), a)) {
      counters.drop('icmp-send-failed');
      return;
    }
    this.pending.set((ip.version << 16) | seq, {
      peer,
      client: copyBytes(buf, ip.srcOffset, ip.srcOffset + ip.addrLength),
      remote: copyBytes(buf, ip.dstOffset, ip.dstOffset + ip.addrLength),
      identifier: v.identifier,
      sequence: v.sequence,
      expires: now + limits.icmpTimeoutMs,
    });
    peer.icmp++;
    counters.icmp.echoRequests++;
  }

  private socketFor(version: 4 | 6, now: number): IcmpSocket | null {
    const f = this.sockets[version];
    if (f.socket || this.closed) return f.socket;
    if (now - f.failedAt < REOPEN_AFTER_MS) return null;
    try {
      f.socket = IcmpSocket.open({
        family: version,
        onPackets: (count, rx) => this.fromHost(version, count, rx),
        onError: (err) => this.socketFailed(version, err),
      });
      f.error = '';
      this.ctx.log.debug(`NAT: ICMPv${version === 4 ? 4 : 6} echo through a ${f.socket.kind} socket`);
    } catch (err) {
      f.failedAt = now;
      f.error = (err as Error).message;
      this.ctx.log.warn(`NAT: no ICMP echo for IPv${version}: ${f.error}`);
    }
    return f.socket;
  }

  private socketFailed(version: 4 | 6, err: Error): void {
    const f = this.sockets[version];
    this.ctx.log.warn(`NAT: ICMPv${version} socket failed: ${err.message}`);
    f.socket?.close();
    f.socket = null;
    f.failedAt = this.ctx.now();
    f.error = err.message;
  }

  /** Echo replies read by the socket: matched to pending requests and sent to their clients. */
  private fromHost(version: 4 | 6, count: number, rx: PacketSlab): void {
    const { counters } = this.ctx;
    const socket = this.sockets[version].socket;
    const v = this.view;
    const reply = version === 4 ? ICMPV4_ECHO_REPLY : ICMPV6_ECHO_REPLY;
    for (let i = 0; i < count; i++) {
      const off = rx.offsets[i]!;
      if (readIcmpHeader(rx.buffer, off, rx.lengths[i]!, v) < 0 || v.type !== reply) continue;
      if (socket?.kind === 'raw' && v.identifier !== this.ident) continue; // another program's ping
      const key = (version << 16) | v.sequence;
      const entry = this.pending.get(key);
      if (!entry || !sameAddress(rx.addrs, i * 20 + 4, entry.remote)) {
        counters.drop('icmp-reply-unmatched');
        continue;
      }
      this.forget(key, entry);
      counters.icmp.echoReplies++;
      this.ctx.writer.echoReply(version, entry.remote, entry.client, entry.identifier, entry.sequence, rx.buffer, v.dataOffset, v.dataLength);
    }
  }

  private forget(key: number, entry: PendingEcho): void {
    this.pending.delete(key);
    entry.peer.icmp--;
    entry.peer.touchedAt = this.ctx.now();
  }

  /** Forgets requests that got no reply in time. */
  sweep(now: number): void {
    for (const [key, entry] of this.pending) {
      if (entry.expires > now) break; // insertion order = expiry order
      this.forget(key, entry);
      this.ctx.counters.icmp.timeouts++;
    }
  }

  closeAll(): void {
    this.closed = true;
    for (const version of [4, 6] as const) {
      this.sockets[version].socket?.close();
      this.sockets[version].socket = null;
    }
    for (const [key, entry] of this.pending) this.forget(key, entry);
  }
}

function sameAddress(buf: Uint8Array, off: number, addr: Uint8Array): boolean {
  for (let i = 0; i < addr.length; i++) if (buf[off + i] !== addr[i]) return false;
  return true;
}
