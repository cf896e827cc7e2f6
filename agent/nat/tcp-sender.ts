// The send half of a spliced TCP flow (host → client): SND.UNA/SND.NXT, the client's window,
// NewReno congestion control (RFC 5681/6582: slow start, congestion avoidance, fast retransmit
// on three duplicate ACKs, partial-ACK retransmission) and the retransmission timer (RFC 6298,
// go-back-N from SND.UNA on expiry). Segments are written through a TcpSegmentSink.
import { TCP_ACK, TCP_FIN, TCP_PSH, seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from '../../proto/ip/tcp.js';
import type { TcpCounters } from './counters.js';
import { TcpSendQueue } from './tcp-send-queue.js';
import { RtoEstimator } from './tcp-rto.js';

/** RFC 6928 initial window. */
const INITIAL_WINDOW_SEGMENTS = 10;
const MAX_CWND = 1 << 30;

export interface TcpSegmentSink {
  /** Sends a segment at `seq` with queue bytes [offset, offset + len) and these flags. */
  transmit(seq: number, offset: number, len: number, flags: number): void;
  /** (Re)arms the retransmission timer to fire `ms` from now; 0 stops it. */
  setRetransmitTimer(ms: number): void;
  now(): number;
}

export class TcpSender {
  sndUna = 0;
  sndNxt = 0;
  /** Highest sequence number sent so far (SND.NXT can move back after a timeout). */
  sndMax = 0;
  /** The client's window in bytes (scaled) and its scale. */
  wnd = 0;
  shift = 0;
  private wl1 = 0;
  private wl2 = 0;
  mss = 536;
  readonly queue = new TcpSendQueue();
  /** The host ended its stream: a FIN follows the queued bytes. */
  finQueued = false;
  finAcked = false;
  cwnd = 0;
  ssthresh = MAX_CWND;
  private dupAcks = 0;
  /** A retransmission or persist timer is armed. */
  private timerRunning = false;
  private inRecovery = false;
  private recover = 0;
  readonly rto = new RtoEstimator();
  private timing = false;
  private rttSeq = 0;
  private rttStart = 0;
  /** Timer armed for a zero-window probe rather than a retransmission. */
  private probing = false;

  constructor(private readonly sink: TcpSegmentSink, private readonly counters: TcpCounters) {}

  /** After our SYN-ACK was acknowledged: ISS + 1 is the first data byte. */
  init(iss: number, mss: number, clientShift: number): void {
    this.sndUna = this.sndNxt = this.sndMax = seqAdd(iss, 1);
    this.recover = iss;
    this.mss = mss;
    this.shift = clientShift;
    this.cwnd = INITIAL_WINDOW_SEGMENTS * mss;
  }

  /** Sets the window from the segment that completed the handshake. */
  initWindow(windowField: number, seq: number, ack: number): void {
    this.wnd = windowField * 2 ** this.shift;
    this.wl1 = seq;
    this.wl2 = ack;
  }

  /** Bytes (and FIN) sent and not yet acknowledged. */
  get inFlight(): number {
    return seqDiff(this.sndMax, this.sndUna);
  }

  /** Everything we sent, FIN included, is acknowledged. */
  get idle(): boolean {
    return this.sndUna === this.sndMax;
  }

  /** True when `ack` acknowledges something never sent (RFC 9293: answer with an ACK, drop). */
  ackTooNew(ack: number): boolean {
    return seqGt(ack, this.sndMax);
  }

  /**
   * Processes the ACK field of an acceptable segment. `pure`: no data, SYN or FIN (a candidate
   * duplicate ACK).
   */
  onAck(ack: number, windowField: number, seq: number, pure: boolean): void {
    const acked = seqDiff(ack, this.sndUna);
    const oldWnd = this.wnd;
    if (acked >= 0 && (seqLt(this.wl1, seq) || (this.wl1 === seq && seqLe(this.wl2, ack)))) {
      this.wnd = windowField * 2 ** this.shift;
      this.wl1 = seq;
      this.wl2 = ack;
    }
    if (acked > 0) {
      this.newlyAcked(ack, acked);
    } else if (acked === 0 && pure && this.wnd === oldWnd && this.inFlight > 0) {
      this.duplicateAck();
    }
    if (this.probing && acked >= 0) {
      // The client answers our probes: it is alive, so the abort count starts over.
      this.rto.backoff = 0;
      if (this.wnd > 0) {
        this.probing = false;
        this.setTimer(0);
      }
    }
    this.pump();
  }

  private newlyAcked(ack: number, acked: number): void {
    const mss = this.mss;
    let dataAcked = acked;
    if (this.finQueued && acked > this.queue.length) {
      dataAcked = this.queue.length;
      this.finAcked = true;
    }
    this.queue.consume(dataAcked);
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    if (this.timing && seqGe(ack, this.rttSeq)) {
      this.rto.sample(this.sink.now() - this.rttStart);
      this.timing = false;
    }
    this.rto.backoff = 0;
    this.dupAcks = 0;
    if (this.inRecovery) {
      if (seqGe(ack, this.recover)) {
        this.inRecovery = false;
        this.cwnd = this.ssthresh;
      } else {
        // NewReno partial ACK: the next hole is lost too; retransmit it, deflate by what was acked.
        this.retransmitFirst();
        this.cwnd = Math.max(this.cwnd - acked + mss, mss);
      }
    } else if (this.cwnd < this.ssthresh) {
      this.cwnd = Math.min(MAX_CWND, this.cwnd + acked);
    } else {
      this.cwnd = Math.min(MAX_CWND, this.cwnd + Math.max(1, Math.floor((mss * acked) / this.cwnd)));
    }
    this.setTimer(this.idle ? 0 : this.rto.current());
  }

  private duplicateAck(): void {
    this.dupAcks++;
    if (this.dupAcks === 3 && !this.inRecovery && seqGt(this.sndUna, this.recover)) {
      this.ssthresh = Math.max(Math.floor(this.inFlight / 2), 2 * this.mss);
      this.recover = this.sndMax;
      this.inRecovery = true;
      this.counters.fastRetransmits++;
      this.retransmitFirst();
      this.cwnd = this.ssthresh + 3 * this.mss;
    } else if (this.dupAcks > 3 && this.inRecovery) {
      this.cwnd += this.mss;
    }
  }

  /** Re-sends the first unacknowledged segment (or the FIN), leaving SND.NXT alone. */
  private retransmitFirst(): number {
    this.timing = false; // Karn: no RTT sample from a retransmitted segment
    this.counters.retransmits++;
    const len = Math.min(this.mss, this.queue.length);
    if (len > 0) {
      this.sink.transmit(this.sndUna, 0, len, TCP_ACK | (len === this.queue.length ? TCP_PSH : 0));
      return len;
    }
    if (this.finQueued && !this.finAcked && this.inFlight > 0) {
      this.sink.transmit(this.sndUna, 0, 0, TCP_ACK | TCP_FIN);
      return 1;
    }
    return 0;
  }

  /** Sends new segments while the windows allow. */
  pump(): void {
    for (;;) {
      const offset = seqDiff(this.sndNxt, this.sndUna);
      const avail = this.queue.length - offset;
      const inFlight = offset;
      if (avail > 0) {
        const room = Math.min(this.cwnd, this.wnd) - inFlight;
        if (room <= 0) {
          if (this.wnd === 0 && this.inFlight === 0) this.startProbing();
          return;
        }
        const len = Math.min(this.mss, avail, room);
        // Sender-side silly window avoidance: no runt segment while data is in flight.
        if (len < this.mss && len < avail && inFlight > 0) return;
        const seq = this.sndNxt;
        const first = seqGe(seq, this.sndMax);
        this.sink.transmit(seq, offset, len, TCP_ACK | (len === avail ? TCP_PSH : 0));
        this.sndNxt = seqAdd(seq, len);
        if (first) {
          this.counters.bytesToPeer += len;
          this.sndMax = this.sndNxt;
          if (!this.timing) {
            this.timing = true;
            this.rttSeq = this.sndNxt;
            this.rttStart = this.sink.now();
          }
        }
        this.ensureTimer();
        continue;
      }
      if (this.finQueued && !this.finAcked && offset === this.queue.length) {
        // All data sent: the FIN goes (it needs no window); again after a timeout rewound SND.NXT.
        this.sink.transmit(this.sndNxt, offset, 0, TCP_ACK | TCP_FIN);
        this.sndNxt = seqAdd(this.sndNxt, 1);
        if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
        this.ensureTimer();
      }
      return;
    }
  }

  private setTimer(ms: number): void {
    this.timerRunning = ms > 0;
    this.sink.setRetransmitTimer(ms);
  }

  private ensureTimer(): void {
    if (!this.timerRunning) this.setTimer(this.rto.current());
  }

  private startProbing(): void {
    this.probing = true;
    this.ensureTimer();
  }

  /**
   * The retransmission (or persist) timer expired. Returns false when the client has stopped
   * answering for tcpMaxRetransmits timeouts in a row: the flow must be reset.
   */
  onTimeout(maxRetransmits: number): boolean {
    this.timerRunning = false;
    if (this.rto.backoff >= maxRetransmits) return false;
    if (this.inFlight === 0) {
      if (this.probing && this.wnd === 0 && this.queue.length > 0) {
        // Zero-window probe: an old sequence number makes the client answer with its window.
        this.rto.backoff++;
        this.sink.transmit(seqAdd(this.sndUna, -1), 0, 0, TCP_ACK);
        this.setTimer(this.rto.current());
      } else {
        this.probing = false;
      }
      return true;
    }
    this.ssthresh = Math.max(Math.floor(this.inFlight / 2), 2 * this.mss);
    this.cwnd = this.mss;
    this.inRecovery = false;
    this.dupAcks = 0;
    this.recover = this.sndMax;
    this.rto.backoff++;
    this.sndNxt = this.sndUna;
    const sent = this.retransmitFirst();
    this.sndNxt = seqAdd(this.sndUna, sent);
    this.setTimer(this.rto.current());
    return true;
  }

  release(): void {
    this.queue.clear();
  }
}
