// One client TCP connection terminated by the NAT and spliced to a host TCP connection.
//
//   client SYN ─► connecting (host connect() running; no answer yet)
//     host connected ─► SYN-ACK, syn-received ─► client ACK ─► established
//     host refused ─► RST to the client;  unreachable / timeout ─► ICMP unreachable
//   established: client data ─► host socket (window = host backpressure), host data ─► segments
//     client FIN ─► socket.end();  host 'end' ─► FIN to the client (half-close both ways)
//     both FINs done and ours acknowledged ─► time-wait (answers retransmitted FINs), then gone
//     client RST ─► host socket reset;  host error ─► RST to the client
import net from 'node:net';
import { IP_PROTO_TCP } from '../../proto/ip/ip-header.js';
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, seqAdd, seqGe, type TcpHeaderView } from '../../proto/ip/tcp.js';
import type { FlowEntry } from './flow-table.js';
import type { NatContext } from './nat-context.js';
import type { PeerState } from './peer-table.js';
import { emitTcpSegment, type TcpEndpoints } from './tcp-output.js';
import { TcpReceiver } from './tcp-receiver.js';
import { TcpSender, type TcpSegmentSink } from './tcp-sender.js';
import { LazyTimer } from './lazy-timer.js';
import { sendUnreachable, unreachableKindOf, type UnreachableKind } from './unreachable.js';

export type TcpFlowState = 'connecting' | 'syn-received' | 'established' | 'time-wait' | 'closed';

/** SYN-ACK retransmissions before giving up on a client that never completes the handshake. */
const MAX_SYNACK_RETRIES = 5;
/** Default MSS when the client sends no MSS option (RFC 9293 §3.7.1, RFC 8200 §5). */
const DEFAULT_MSS_V4 = 536;
const DEFAULT_MSS_V6 = 1220;

/** What a connection needs from the table that owns it. */
export interface TcpFlowOwner {
  readonly ctx: NatContext;
  /** Queue the connection for the end-of-turn flush (host writes, delayed ACK). */
  markDirty(conn: TcpConnection): void;
  /** The flow is over (called once, from close()): remove it from the table. */
  forget(conn: TcpConnection): void;
  /** Both directions closed cleanly: enterTimeWait() or close(true). */
  finished(conn: TcpConnection): void;
}

export class TcpConnection implements FlowEntry, TcpEndpoints, TcpSegmentSink {
  nextInBucket: FlowEntry | null = null;
  state: TcpFlowState = 'connecting';
  lastActive: number;
  /** In the owner's flush list. */
  dirty = false;
  ackPending = false;
  /** Counted in peer.tcp (time-wait flows are not). */
  countedInPeer = true;
  /** Entered time-wait (counted in the owner's time-wait total until forgotten). */
  lingering = false;
  readonly sender: TcpSender;
  readonly receiver: TcpReceiver;
  private socket: net.Socket | null = null;
  private readonly irs: number;
  private readonly iss: number;
  /** Client's window scale, -1 when it offered none (then neither side scales). */
  private readonly clientShift: number;
  private readonly ourMss: number;
  private readonly sendMss: number;
  private synAckRetries = 0;
  private synAckSentAt = 0;
  private connectingCounted = true;
  private hostPaused = false;
  /** Connect timeout, SYN-ACK / data retransmission, persist probes, time-wait expiry. */
  private readonly timer: LazyTimer;

  constructor(
    private readonly owner: TcpFlowOwner, readonly key: Uint8Array, readonly hash: number, readonly peer: PeerState,
    readonly version: 4 | 6, readonly client: Uint8Array, readonly clientPort: number,
    readonly remote: Uint8Array, readonly remotePort: number, syn: TcpHeaderView, iss: number, now: number,
  ) {
    const { limits, counters } = owner.ctx;
    this.lastActive = now;
    this.irs = syn.seq;
    this.iss = iss;
    this.clientShift = syn.windowShift;
    this.ourMss = limits.mtu - (version === 4 ? 40 : 60);
    const clientMss = syn.mss > 0 ? syn.mss : version === 4 ? DEFAULT_MSS_V4 : DEFAULT_MSS_V6;
    this.sendMss = Math.max(64, Math.min(clientMss, this.ourMss));
    this.sender = new TcpSender(this, counters.tcp);
    this.receiver = new TcpReceiver(limits.tcpReceiveWindow, this.ourMss);
    this.receiver.init(seqAdd(syn.seq, 1), syn.windowShift >= 0);
    this.timer = new LazyTimer(owner.ctx.now, () => this.timeout());
  }

  now(): number {
    return this.owner.ctx.now();
  }

  /** The host socket while it can still take writes. */
  private get sink(): net.Socket | null {
    const s = this.socket;
    return s && !s.destroyed && s.writable ? s : null;
  }

  /** Starts the host connection to `host` (the destination address as text). */
  connect(host: string): void {
    const s = net.connect({ host, port: this.remotePort, allowHalfOpen: true, noDelay: true });
    this.socket = s;
    s.on('connect', () => this.onHostConnect());
    s.on('data', (chunk: Buffer) => this.onHostData(chunk));
    s.on('end', () => this.onHostEnd());
    s.on('drain', () => this.onHostDrain());
    s.on('error', (err: NodeJS.ErrnoException) => this.onHostError(err));
    s.on('close', () => {
      if (this.socket === s) this.socket = null;
    });
    this.timer.set(this.owner.ctx.limits.tcpConnectTimeoutMs);
  }

  // --- host socket events ---

  private onHostConnect(): void {
    if (this.state !== 'connecting') return;
    this.leaveConnecting();
    this.state = 'syn-received';
    this.owner.ctx.counters.tcp.opened++;
    this.sendSynAck();
  }

  private onHostData(chunk: Buffer): void {
    if (this.state === 'closed' || this.state === 'time-wait') return;
    this.lastActive = this.now();
    this.sender.queue.push(chunk);
    if (this.sender.queue.length >= this.owner.ctx.limits.tcpSendBuffer && this.socket && !this.hostPaused) {
      this.socket.pause();
      this.hostPaused = true;
    }
    if (this.state === 'established') this.sender.pump();
  }

  private onHostEnd(): void {
    if (this.state === 'closed' || this.state === 'time-wait') return;
    this.sender.finQueued = true;
    if (this.state === 'established') this.sender.pump();
  }

  private onHostDrain(): void {
    if (this.state !== 'established') return;
    if (this.receiver.windowCanOpen(this.sink)) this.sendAck();
  }

  private onHostError(err: NodeJS.ErrnoException): void {
    const { counters, writer } = this.owner.ctx;
    if (this.state === 'closed' || this.state === 'time-wait') return;
    if (this.state === 'connecting') {
      const kind = unreachableKindOf(err.code);
      if (kind) {
        counters.tcp.unreachable++;
        this.sendUnreachable(kind);
      } else {
        counters.tcp.refused++;
        emitTcpSegment(writer, this, 0, seqAdd(this.irs, 1), TCP_RST | TCP_ACK, 0, null, 0, 0);
      }
      this.close();
      return;
    }
    counters.tcp.resetByHost++;
    this.reset();
  }

  private sendUnreachable(kind: UnreachableKind): void {
    sendUnreachable(this.owner.ctx.writer, {
      version: this.version, protocol: IP_PROTO_TCP, client: this.client, clientPort: this.clientPort,
      remote: this.remote, remotePort: this.remotePort, seq: this.irs,
    }, kind);
  }

  // --- segments from the client ---

  /** A segment of this flow from the client (checksum verified). */
  input(seg: TcpHeaderView, buf: Uint8Array): void {
    const { counters } = this.owner.ctx;
    const flags = seg.flags;
    this.lastActive = this.now();
    switch (this.state) {
      case 'connecting':
        if (flags & TCP_RST) {
          if (seg.seq === seqAdd(this.irs, 1)) this.abortByClient();
        } else if (!(flags & TCP_SYN) || seg.seq !== this.irs) {
          counters.drop('tcp-not-ready');
        }
        return; // a retransmitted SYN waits for the host connect like the first
      case 'syn-received':
        if (flags & TCP_RST) {
          if (this.receiver.acceptable(seg.seq, 0)) this.abortByClient();
          return;
        }
        if (flags & TCP_SYN) {
          if (seg.seq === this.irs) this.sendSynAck(); // our SYN-ACK was lost
          return;
        }
        if (!(flags & TCP_ACK)) return;
        if (seg.ack !== seqAdd(this.iss, 1)) {
          counters.drop('tcp-bad-ack');
          emitTcpSegment(this.owner.ctx.writer, this, seg.ack, 0, TCP_RST, 0, null, 0, 0);
          return;
        }
        this.establish(seg);
        this.synchronized(seg, buf);
        return;
      case 'established':
        this.synchronized(seg, buf);
        return;
      case 'time-wait':
        if (flags & TCP_RST) this.close(true);
        else if (flags & TCP_FIN || seg.dataLength > 0) this.sendAck(); // our last ACK was lost
        return;
      case 'closed':
        return;
    }
  }

  private establish(seg: TcpHeaderView): void {
    this.state = 'established';
    this.timer.set(0);
    this.sender.rto.backoff = 0;
    this.sender.init(this.iss, this.sendMss, this.clientShift >= 0 ? this.clientShift : 0);
    this.sender.initWindow(seg.window, seg.seq, seg.ack);
    if (this.synAckRetries === 0) this.sender.rto.sample(this.now() - this.synAckSentAt);
  }

  private synchronized(seg: TcpHeaderView, buf: Uint8Array): void {
    const { counters } = this.owner.ctx;
    const r = this.receiver;
    const flags = seg.flags;
    const segLen = seg.dataLength + (flags & TCP_FIN ? 1 : 0);
    if (!this.receiver.acceptable(seg.seq, segLen)) {
      if (!(flags & TCP_RST)) {
        counters.drop('tcp-out-of-window');
        this.scheduleAck(); // a keepalive or stale retransmission: tell the client where we are
      }
      return;
    }
    if (flags & TCP_RST) {
      // RFC 5961 §3: only an exact RST resets; one merely in the window earns a challenge ACK.
      if (seg.seq === r.rcvNxt) this.abortByClient();
      else this.scheduleAck();
      return;
    }
    if (flags & TCP_SYN) {
      this.scheduleAck(); // RFC 5961 §4 challenge ACK
      return;
    }
    if (!(flags & TCP_ACK)) return;
    if (this.sender.ackTooNew(seg.ack)) {
      counters.drop('tcp-bad-ack');
      this.scheduleAck();
      return;
    }
    this.sender.onAck(seg.ack, seg.window, seg.seq, segLen === 0);
    if (this.state !== 'established') return; // a sink call may have closed us
    if (seg.dataLength > 0 && !r.finReceived) this.receiveData(seg, buf);
    if (flags & TCP_FIN && !r.finReceived && seqAdd(seg.seq, seg.dataLength) === r.rcvNxt) this.receiveFin();
    if (this.sender.finAcked && r.finReceived) this.owner.finished(this);
  }

  private receiveData(seg: TcpHeaderView, buf: Uint8Array): void {
    const r = this.receiver;
    const hadHoles = r.holding;
    const taken = r.take(seg.seq, buf, seg.dataOffset, seg.dataLength, this.sink);
    if (taken > 0) {
      this.owner.ctx.counters.tcp.bytesToHost += taken;
      this.owner.markDirty(this);
      // A filled hole is acknowledged at once (RFC 5681 §4.2), else every N segments or per turn.
      if (hadHoles || ++r.segmentsSinceAck >= this.owner.ctx.limits.tcpAckEverySegments) this.sendAck();
      else this.ackPending = true;
    } else {
      this.sendAck(); // out of order or nothing new: a duplicate ACK at once (fast retransmit)
    }
  }

  private receiveFin(): void {
    const r = this.receiver;
    r.rcvNxt = seqAdd(r.rcvNxt, 1);
    r.finReceived = true;
    r.flush(this.sink);
    this.socket?.end();
    this.sendAck();
  }

  // --- segments to the client ---

  transmit(seq: number, offset: number, len: number, flags: number): void {
    const r = this.receiver;
    const window = r.windowField(this.sink);
    emitTcpSegment(this.owner.ctx.writer, this, seq, r.rcvNxt, flags, window, this.sender.queue, offset, len);
    this.owner.ctx.counters.tcp.segmentsOut++;
    this.ackPending = false;
    r.segmentsSinceAck = 0;
  }

  private sendAck(): void {
    this.transmit(this.sender.sndNxt, 0, 0, TCP_ACK);
  }

  /** ACK at the end of this event-loop turn (coalesces several reasons into one segment). */
  private scheduleAck(): void {
    this.ackPending = true;
    this.owner.markDirty(this);
  }

  private sendSynAck(): void {
    const r = this.receiver;
    const shift = this.clientShift >= 0 ? r.shift : -1;
    emitTcpSegment(this.owner.ctx.writer, this, this.iss, r.rcvNxt, TCP_SYN | TCP_ACK, r.synWindowField(), null, 0, 0, this.ourMss, shift);
    this.synAckSentAt = this.now();
    this.timer.set(this.sender.rto.current());
  }

  /** End-of-turn work: hand buffered client bytes to the host socket, send a pending ACK. */
  flush(): void {
    this.dirty = false;
    if (this.state !== 'established') return;
    this.receiver.flush(this.sink);
    if (this.ackPending) this.sendAck();
  }

  /** Resumes reading the host once the client has acknowledged enough. */
  private maybeResumeHost(): void {
    if (this.hostPaused && this.socket && this.sender.queue.length < this.owner.ctx.limits.tcpSendBuffer / 2) {
      this.hostPaused = false;
      this.socket.resume();
    }
  }

  // --- timers ---

  setRetransmitTimer(ms: number): void {
    this.maybeResumeHost(); // called after every ACK that freed queue space
    this.timer.set(ms);
  }

  private timeout(): void {
    const { counters, limits } = this.owner.ctx;
    switch (this.state) {
      case 'connecting':
        counters.tcp.unreachable++;
        this.sendUnreachable('host');
        this.close();
        return;
      case 'syn-received':
        if (++this.synAckRetries > MAX_SYNACK_RETRIES) {
          counters.tcp.timedOut++;
          this.close();
          return;
        }
        this.sender.rto.backoff++;
        this.sendSynAck();
        return;
      case 'established':
        if (!this.sender.onTimeout(limits.tcpMaxRetransmits)) {
          counters.tcp.timedOut++;
          this.reset();
        }
        return;
      case 'time-wait':
        this.close(true);
        return;
      case 'closed':
        return;
    }
  }

  /** Arms the time-wait expiry (called by the owner when it keeps the flow lingering). */
  enterTimeWait(ms: number): void {
    this.state = 'time-wait';
    this.lingering = true;
    this.releaseBuffers();
    this.timer.set(ms);
  }

  // --- teardown ---

  private leaveConnecting(): void {
    if (!this.connectingCounted) return;
    this.connectingCounted = false;
    this.peer.tcpConnecting--;
  }

  /** The client reset the flow: reset the host side too. */
  private abortByClient(): void {
    this.owner.ctx.counters.tcp.resetByPeer++;
    this.resetHost();
    this.close();
  }

  /** Resets both sides (host error, timeout, idle): RST to the client and to the host. */
  reset(): void {
    if (this.state === 'closed') return;
    if (this.state === 'established' || this.state === 'syn-received') {
      emitTcpSegment(this.owner.ctx.writer, this, this.sender.sndNxt, this.receiver.rcvNxt, TCP_RST | TCP_ACK, 0, null, 0, 0);
    }
    this.resetHost();
    this.close();
  }

  private resetHost(): void {
    const s = this.socket;
    if (!s || s.destroyed) return;
    try {
      if (s.connecting) s.destroy();
      else s.resetAndDestroy(); // RST, not FIN: the host must not take a cut stream as complete
    } catch {
      s.destroy();
    }
  }

  /**
   * Ends the flow: timers stopped, buffers freed, removed from the table. The host socket is
   * destroyed, unless `graceful` (a cleanly finished flow whose socket closes by itself once
   * the last bytes are flushed to the kernel).
   */
  close(graceful = false): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.leaveConnecting();
    if (!graceful) this.socket?.destroy();
    this.socket = null;
    this.releaseBuffers();
    this.timer.dispose();
    this.owner.forget(this);
  }

  private releaseBuffers(): void {
    this.sender.release();
    this.receiver.release();
  }

  /** True while the flow is opening or closing (for the shorter idle timeout). */
  get transitory(): boolean {
    return this.state !== 'established' || this.receiver.finReceived || this.sender.finQueued;
  }

  /** A SYN on a time-wait flow may open a new one when its sequence is beyond the old (RFC 9293 §3.6.1). */
  acceptsNewSyn(seq: number): boolean {
    return this.state === 'time-wait' && seqGe(seq, this.receiver.rcvNxt);
  }
}
