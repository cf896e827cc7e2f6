// TCP through the NAT: the table of spliced flows keyed by the client's 5-tuple, admission of new
// flows (per-peer caps, connecting cap, SYN token bucket), RST for segments of unknown flows,
// the end-of-turn flush (host writes and delayed ACKs, once per event-loop turn), idle sweeps.
import { randomFillSync } from 'node:crypto';
import { formatAddress } from '../../proto/ip/address.js';
import { transportChecksum } from '../../proto/ip/checksum.js';
import { IP_PROTO_TCP, type IpHeaderView } from '../../proto/ip/ip-header.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, newTcpHeaderView, readTcpHeader, seqAdd, type TcpHeaderView } from '../../proto/ip/tcp.js';
import { FlowKey, FlowTable } from './flow-table.js';
import type { NatContext } from './nat-context.js';
import { copyBytes } from '../../proto/bytes.js';
import { emitTcpSegment } from './tcp-output.js';
import { TcpConnection, type TcpFlowOwner, type TcpFlowState } from './tcp-connection.js';

export interface TcpTableStatus {
  flows: number;
  connecting: number;
  synReceived: number;
  established: number;
  /** Established flows with one direction closed. */
  halfClosed: number;
  timeWait: number;
}

export class TcpSplice implements TcpFlowOwner {
  private readonly table = new FlowTable<TcpConnection>();
  private readonly key = new FlowKey();
  private readonly seg = newTcpHeaderView();
  private readonly dirty: TcpConnection[] = [];
  private flushScheduled = false;
  private live = 0;
  private timeWait = 0;
  private readonly isnPool = new Uint32Array(256);
  private isnNext = 256;

  constructor(readonly ctx: NatContext) {}

  /** A TCP segment from the overlay, IP header already validated. */
  handle(buf: Uint8Array, ip: IpHeaderView): void {
    const { counters } = this.ctx;
    const seg = this.seg;
    if (readTcpHeader(buf, ip.l4Offset, ip.l4Length, seg) < 0 || seg.srcPort === 0 || seg.dstPort === 0) {
      counters.drop('malformed-tcp');
      return;
    }
    if (transportChecksum(buf, ip.offset, ip.version, IP_PROTO_TCP, ip.l4Offset, ip.l4Length) !== 0) {
      counters.drop('bad-tcp-checksum');
      return;
    }
    counters.tcp.segmentsIn++;
    const conn = this.table.find(this.key.fill(buf, ip, seg.srcPort, seg.dstPort, true));
    if (conn && !(seg.flags & TCP_SYN && !(seg.flags & TCP_ACK) && conn.acceptsNewSyn(seg.seq))) {
      conn.input(seg, buf);
      return;
    }
    if (conn) conn.close(true); // a new connection reusing a time-wait tuple
    if ((seg.flags & (TCP_SYN | TCP_ACK | TCP_RST | TCP_FIN)) === TCP_SYN) {
      this.open(buf, ip, seg);
      return;
    }
    counters.drop('tcp-no-flow');
    if (!(seg.flags & TCP_RST)) this.resetUnknown(buf, ip, seg);
  }

  /** A segment to a destination the NAT refuses: a RST the sender accepts (no flow, no socket). */
  refuse(buf: Uint8Array, ip: IpHeaderView): void {
    const seg = this.seg;
    if (readTcpHeader(buf, ip.l4Offset, ip.l4Length, seg) < 0 ||
      transportChecksum(buf, ip.offset, ip.version, IP_PROTO_TCP, ip.l4Offset, ip.l4Length) !== 0) return;
    if (!(seg.flags & TCP_RST)) this.resetUnknown(buf, ip, seg);
  }

  /** RFC 9293 §3.10.7.1: a segment for no connection gets a RST that the sender will accept. */
  private resetUnknown(buf: Uint8Array, ip: IpHeaderView, seg: TcpHeaderView): void {
    // The segment's own buffer holds the addresses: copy them out before the writer reuses memory.
    const ends = {
      version: ip.version,
      remote: copyBytes(buf, ip.dstOffset, ip.dstOffset + ip.addrLength),
      remotePort: seg.dstPort,
      client: copyBytes(buf, ip.srcOffset, ip.srcOffset + ip.addrLength),
      clientPort: seg.srcPort,
    };
    if (seg.flags & TCP_ACK) {
      emitTcpSegment(this.ctx.writer, ends, seg.ack, 0, TCP_RST, 0, null, 0, 0);
    } else {
      const len = seg.dataLength + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
      emitTcpSegment(this.ctx.writer, ends, 0, seqAdd(seg.seq, len), TCP_RST | TCP_ACK, 0, null, 0, 0);
    }
  }

  private open(buf: Uint8Array, ip: IpHeaderView, seg: TcpHeaderView): void {
    const { counters, limits, peers } = this.ctx;
    const now = this.ctx.now();
    const peer = peers.get(buf, ip.srcOffset, ip.addrLength, now);
    if (!peer) {
      counters.drop('peer-table-full');
      return;
    }
    if (peer.tcp >= limits.tcpPerPeer || this.live >= limits.tcpTotal) {
      counters.drop('tcp-table-full');
      return;
    }
    if (peer.tcpConnecting >= limits.tcpConnectingPerPeer) {
      counters.drop('tcp-connecting-full');
      return;
    }
    if (!peer.takeSynToken(limits.synPerSecond, limits.synBurst, now)) {
      counters.drop('syn-rate-limited');
      return;
    }
    const client = copyBytes(buf, ip.srcOffset, ip.srcOffset + ip.addrLength);
    const remote = copyBytes(buf, ip.dstOffset, ip.dstOffset + ip.addrLength);
    const conn = new TcpConnection(
      this, this.key.copy(), this.key.hash, peer, ip.version, client, seg.srcPort, remote, seg.dstPort, seg, this.isn(), now,
    );
    this.table.insert(conn);
    this.live++;
    peer.tcp++;
    peer.tcpConnecting++;
    conn.connect(formatAddress(remote));
  }

  /** A random initial sequence number (RFC 6528 asks for unpredictable ones). */
  private isn(): number {
    if (this.isnNext >= this.isnPool.length) {
      randomFillSync(this.isnPool);
      this.isnNext = 0;
    }
    return this.isnPool[this.isnNext++]!;
  }

  // --- TcpFlowOwner ---

  markDirty(conn: TcpConnection): void {
    if (conn.dirty) return;
    conn.dirty = true;
    this.dirty.push(conn);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const list = this.dirty;
    for (let i = 0; i < list.length; i++) list[i]!.flush();
    list.length = 0;
  };

  finished(conn: TcpConnection): void {
    this.uncount(conn);
    if (this.timeWait < this.ctx.limits.tcpTimeWaitTotal && this.ctx.limits.tcpTimeWaitMs > 0) {
      this.timeWait++;
      conn.enterTimeWait(this.ctx.limits.tcpTimeWaitMs);
    } else {
      conn.close(true);
    }
    this.ctx.counters.tcp.closed++;
  }

  forget(conn: TcpConnection): void {
    this.table.remove(conn);
    this.uncount(conn);
    if (conn.lingering) this.timeWait--;
  }

  private uncount(conn: TcpConnection): void {
    if (!conn.countedInPeer) return;
    conn.countedInPeer = false;
    conn.peer.tcp--;
    conn.peer.touchedAt = this.ctx.now();
    this.live--;
  }

  // --- maintenance ---

  /** Resets flows idle past their timeout (established: tcpEstablishedIdleMs, else transitory). */
  sweep(now: number): void {
    const { limits, counters } = this.ctx;
    for (const conn of this.table.values()) {
      if (conn.state === 'time-wait' || conn.state === 'closed') continue;
      const limit = conn.transitory ? limits.tcpTransitoryIdleMs : limits.tcpEstablishedIdleMs;
      if (now - conn.lastActive >= limit) {
        counters.tcp.idleClosed++;
        conn.reset();
      }
    }
  }

  status(): TcpTableStatus {
    const s: TcpTableStatus = { flows: this.table.size, connecting: 0, synReceived: 0, established: 0, halfClosed: 0, timeWait: 0 };
    const by: Record<TcpFlowState, () => void> = {
      'connecting': () => s.connecting++,
      'syn-received': () => s.synReceived++,
      'established': () => s.established++,
      'time-wait': () => s.timeWait++,
      'closed': () => {},
    };
    for (const conn of this.table.values()) {
      by[conn.state]();
      if (conn.state === 'established' && conn.transitory) s.halfClosed++;
    }
    return s;
  }

  /** Destroys every host socket and forgets every flow (nothing is sent to clients). */
  closeAll(): void {
    for (const conn of [...this.table.values()]) conn.close();
    this.dirty.length = 0;
  }
}
