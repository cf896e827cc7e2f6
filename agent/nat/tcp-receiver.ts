// The receive half of a spliced TCP flow (client → host): RCV.NXT, the window we advertise,
// out-of-order segments, and the bytes waiting to be written to the host socket.
//
// The window is the host socket's backpressure: tcpReceiveWindow minus what Node still buffers
// for the socket (writableLength) and what we have not handed to it yet. Its right edge never
// moves left (RFC 9293 §3.8.6.2.2), and opens only in steps of min(window/2, MSS) (receiver-side
// silly window avoidance). In-order payload is copied into 64 KiB chunks and written once per
// event-loop turn (flush), so a burst of segments costs one socket write.
import { seqAdd, seqDiff, seqGt, seqLe } from '../../proto/ip/tcp.js';

const CHUNK_BYTES = 64 * 1024;
/** Buffer's memcpy, which also accepts a plain Uint8Array as the source. */
const copyBytes = Buffer.prototype.copy as (this: Uint8Array, target: Uint8Array, targetStart: number, sourceStart: number, sourceEnd: number) => number;
/** Out-of-order segments kept at most (beyond: dropped, the client retransmits). */
const MAX_OUT_OF_ORDER = 1024;

/** The part of the host socket the receiver uses. */
export interface HostSink {
  write(chunk: Buffer): boolean;
  readonly writableLength: number;
}

interface HeldSegment {
  seq: number;
  end: number;
  data: Buffer;
}

export class TcpReceiver {
  rcvNxt = 0;
  /** Our window scale (0 when the client did not offer window scaling). */
  shift = 0;
  finReceived = false;
  /** In-order segments received since the last ACK we sent. */
  segmentsSinceAck = 0;
  /** Right edge of the window last advertised. */
  private rightEdge = 0;
  private readonly held: HeldSegment[] = [];
  private heldBytes = 0;
  private chunk: Buffer | null = null;
  private pendingStart = 0;
  private pendingEnd = 0;

  constructor(readonly maxWindow: number, private readonly mss: number) {}

  /** Starts receiving after the client's SYN (its ISN + 1); `scaled` when both sides scale windows. */
  init(rcvNxt: number, scaled: boolean): void {
    this.rcvNxt = rcvNxt;
    this.shift = scaled ? windowShiftFor(this.maxWindow) : 0;
    this.rightEdge = rcvNxt;
  }

  /** Bytes accepted but not yet taken by the kernel. */
  private buffered(sink: HostSink | null): number {
    return (sink ? sink.writableLength : 0) + (this.pendingEnd - this.pendingStart);
  }

  private maxAdvertisable(): number {
    return Math.min(this.maxWindow, 65535 * 2 ** this.shift);
  }

  /** The window currently offered to the client (from RCV.NXT to the advertised right edge). */
  offered(): number {
    const w = seqDiff(this.rightEdge, this.rcvNxt);
    return w > 0 ? w : 0;
  }

  /** The window field of our SYN-ACK: never scaled (RFC 7323 §2.2). */
  synWindowField(): number {
    const field = Math.min(65535, this.maxWindow);
    this.rightEdge = seqAdd(this.rcvNxt, field);
    return field;
  }

  /** The window field for the next segment we send; moves the advertised right edge. */
  windowField(sink: HostSink | null): number {
    const cur = this.offered();
    const free = Math.min(this.maxAdvertisable(), this.maxWindow - this.buffered(sink));
    let wnd = cur;
    // Held segments mean the client is recovering a loss: a steady window keeps its duplicate
    // ACK count valid (a window change makes an ACK not a duplicate).
    if (free > cur && free - cur >= Math.min(this.maxWindow / 2, this.mss) && this.held.length === 0) wnd = free;
    const field = Math.min(65535, Math.ceil(wnd / 2 ** this.shift));
    this.rightEdge = seqAdd(this.rcvNxt, field * 2 ** this.shift);
    return field;
  }

  /** True when the window could open by a worthwhile amount: time for a window update. */
  windowCanOpen(sink: HostSink | null): boolean {
    const free = Math.min(this.maxAdvertisable(), this.maxWindow - this.buffered(sink));
    return free - this.offered() >= Math.min(this.maxWindow / 2, 2 * this.mss);
  }

  /** RFC 9293 §3.10.7.4 acceptability: does seq (with len sequence numbers) touch the window? */
  acceptable(seq: number, len: number): boolean {
    const wnd = this.offered();
    const start = seqDiff(seq, this.rcvNxt);
    if (len === 0) return wnd === 0 ? start === 0 : start >= 0 && start < wnd;
    if (wnd === 0) return false;
    const end = start + len - 1;
    return (start >= 0 && start < wnd) || (end >= 0 && end < wnd);
  }

  /**
   * Takes the payload of an acceptable segment: the part already received is cut, the part
   * beyond the window too; in-order bytes are delivered (with any held segments they reach),
   * later ones held. Returns the bytes delivered (0: held or nothing new).
   */
  take(seq: number, buf: Uint8Array, off: number, len: number, sink: HostSink | null): number {
    const early = seqDiff(this.rcvNxt, seq);
    if (early > 0) {
      seq = this.rcvNxt;
      off += early;
      len -= early;
    }
    len = Math.min(len, this.offered() - seqDiff(seq, this.rcvNxt));
    if (len <= 0) return 0;
    if (seq !== this.rcvNxt) {
      this.hold(seq, buf, off, len);
      return 0;
    }
    const start = this.rcvNxt;
    this.deliver(buf, off, len, sink);
    if (this.held.length > 0) this.drainHeld(sink);
    return seqDiff(this.rcvNxt, start);
  }

  /** Appends in-order payload buf[off, off+len) (at RCV.NXT) and advances RCV.NXT. */
  private deliver(buf: Uint8Array, off: number, len: number, sink: HostSink | null): void {
    this.append(buf, off, len, sink);
    this.rcvNxt = seqAdd(this.rcvNxt, len);
  }

  private append(buf: Uint8Array, off: number, len: number, sink: HostSink | null): void {
    if (!this.chunk || this.pendingEnd + len > this.chunk.length) {
      this.flush(sink);
      this.chunk = Buffer.allocUnsafeSlow(Math.max(CHUNK_BYTES, len));
      this.pendingStart = 0;
      this.pendingEnd = 0;
    }
    copyBytes.call(buf, this.chunk, this.pendingEnd, off, off + len); // no view allocated per segment
    this.pendingEnd += len;
  }

  /** Keeps a segment that starts beyond RCV.NXT (a copy); false when it was not kept. */
  private hold(seq: number, buf: Uint8Array, off: number, len: number): boolean {
    const end = seqAdd(seq, len);
    let i = this.held.length;
    while (i > 0 && seqGt(this.held[i - 1]!.seq, seq)) i--;
    const before = this.held[i - 1];
    if (before && seqLe(end, before.end) && seqLe(before.seq, seq)) return true; // already have it
    if (this.held.length >= MAX_OUT_OF_ORDER || this.heldBytes + len > this.maxWindow) return false;
    this.held.splice(i, 0, { seq, end, data: Buffer.from(buf.subarray(off, off + len)) });
    this.heldBytes += len;
    return true;
  }

  get holding(): boolean {
    return this.held.length > 0;
  }

  /** Delivers held segments that RCV.NXT has reached; returns true if any were used. */
  private drainHeld(sink: HostSink | null): boolean {
    let used = false;
    while (this.held.length > 0) {
      const s = this.held[0]!;
      if (seqGt(s.seq, this.rcvNxt)) break;
      this.held.shift();
      this.heldBytes -= s.data.length;
      const skip = seqDiff(this.rcvNxt, s.seq);
      if (skip < s.data.length) {
        this.deliver(s.data, skip, s.data.length - skip, sink);
        used = true;
      }
    }
    return used;
  }

  /** Bytes waiting to be handed to the socket. */
  get pending(): number {
    return this.pendingEnd - this.pendingStart;
  }

  /** Hands the pending bytes to the socket (one write); without a socket they are discarded. */
  flush(sink: HostSink | null): void {
    if (this.pendingEnd === this.pendingStart || !this.chunk) return;
    if (sink) sink.write(this.chunk.subarray(this.pendingStart, this.pendingEnd));
    this.pendingStart = this.pendingEnd;
  }

  /** Frees buffers (flow finished or aborted). */
  release(): void {
    this.chunk = null;
    this.pendingStart = this.pendingEnd = 0;
    this.held.length = 0;
    this.heldBytes = 0;
  }
}

/** The smallest window scale that lets `bytes` be advertised in the 16-bit field. */
export function windowShiftFor(bytes: number): number {
  let shift = 0;
  while (shift < 14 && 65535 * 2 ** shift < bytes) shift++;
  return shift;
}
