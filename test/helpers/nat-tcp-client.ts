// A deliberately small TCP client that drives the userspace NAT through handle() and reads what
// it emits — the "overlay client" side of the NAT unit tests. It is a second, independent TCP
// implementation: handshake with MSS + window scale, cumulative ACKs, in-order receive (out of
// order is dropped and re-ACKed), go-back-N retransmission on a timer, FIN/RST, zero window.
import { EventEmitter } from 'node:events';
import { ACK, FIN, PSH, RST, SYN, parse, tcpPacket, type Parsed } from './nat-packets.js';

export interface NatLike {
  handle(packet: Uint8Array): void;
}

/**
 * The wire between the test's clients and the NAT: emitted packets are copied, optionally
 * dropped, and delivered on a later turn (never re-entering handle()).
 */
export class NatLink {
  readonly emitted: Parsed[] = [];
  private readonly clients = new Map<string, MiniTcpClient>();
  private readonly queue: Parsed[] = [];
  private scheduled = false;
  /** Return true to drop a packet emitted by the NAT (before any client sees it). */
  dropFromNat: (p: Parsed, index: number) => boolean = () => false;
  private count = 0;
  badChecksums = 0;
  readonly other: Parsed[] = [];

  readonly emit = (packet: Uint8Array): void => {
    const p = parse(packet);
    if (!p.checksumsOk) this.badChecksums++;
    this.emitted.push(p);
    if (this.dropFromNat(p, this.count++)) return;
    this.queue.push(p);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.deliver);
    }
  };

  private readonly deliver = (): void => {
    this.scheduled = false;
    const batch = this.queue.splice(0);
    const touched = new Set<MiniTcpClient>();
    for (const p of batch) {
      const c = p.tcp ? this.clients.get(`${p.dst}|${p.tcp.dport}`) : undefined;
      if (c) {
        c.receive(p);
        touched.add(c);
      } else {
        this.other.push(p);
      }
    }
    for (const c of touched) c.afterBatch();
  };

  attach(c: MiniTcpClient): void {
    this.clients.set(`${c.src}|${c.sport}`, c);
  }
}

export interface MiniTcpOptions {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  mss?: number;
  /** Receive window in bytes (advertised with window scale 4). */
  window?: number;
  /** Return true to drop a packet the client would send to the NAT. */
  dropToNat?: (pkt: Buffer, flags: number, dataLength: number) => boolean;
  /** Retransmission timeout (ms). */
  rtoMs?: number;
}

export class MiniTcpClient extends EventEmitter {
  readonly src: string;
  readonly sport: number;
  private readonly o: Required<Omit<MiniTcpOptions, 'dropToNat'>> & Pick<MiniTcpOptions, 'dropToNat'>;
  state: 'closed' | 'syn-sent' | 'established' | 'reset' = 'closed';
  iss = Math.floor(Math.random() * 2 ** 32);
  sndUna = 0;
  sndNxt = 0;
  rcvNxt = 0;
  peerWnd = 0;
  peerShift = 0;
  peerMss = 0;
  synAck: Parsed | null = null;
  private out = Buffer.alloc(0); // bytes from sndUna on
  private finQueued = false;
  private finSent = false;
  finAcked = false;
  finReceived = false;
  readonly received: Buffer[] = [];
  receivedBytes = 0;
  /** When true the client advertises a zero window and drops incoming data. */
  paused = false;
  private ackDue = false;
  private timer: NodeJS.Timeout | null = null;
  readonly advertisedWindows: number[] = [];
  /** Out-of-order segments by sequence number. */
  private readonly held = new Map<number, Buffer>();

  constructor(private readonly nat: NatLike, link: NatLink, opts: MiniTcpOptions) {
    super();
    this.src = opts.src;
    this.sport = opts.sport;
    this.o = { mss: 1360, window: 1 << 20, rtoMs: 150, ...opts };
    link.attach(this);
  }

  private send(flags: number, seq: number, data?: Buffer, syn = false): void {
    const wnd = this.paused ? 0 : Math.min(65535, this.o.window >> 4);
    const pkt = tcpPacket({
      src: this.src, dst: this.o.dst, sport: this.sport, dport: this.o.dport, seq, ack: flags & ACK ? this.rcvNxt : 0,
      flags, window: syn ? Math.min(65535, this.o.window) : wnd, data,
      ...(syn ? { mss: this.o.mss, wscale: 4 } : {}),
    });
    if (this.o.dropToNat?.(pkt, flags, data?.length ?? 0)) return;
    this.nat.handle(pkt);
  }

  /** Sends the SYN; resolves once established, rejects on RST or ICMP (see Error.message). */
  connect(): Promise<void> {
    this.state = 'syn-sent';
    this.sndUna = this.iss;
    this.sndNxt = (this.iss + 1) >>> 0;
    this.send(SYN, this.iss, undefined, true);
    this.arm();
    return new Promise((resolve, reject) => {
      this.once('established', resolve);
      this.once('reset', () => reject(new Error('reset')));
    });
  }

  /** Raw send of an arbitrary segment (for out-of-window / bad-input tests). */
  raw(flags: number, seq: number, ack: number, data?: Buffer): void {
    this.nat.handle(tcpPacket({ src: this.src, dst: this.o.dst, sport: this.sport, dport: this.o.dport, seq, ack, flags, data }));
  }

  write(data: Buffer): void {
    this.out = Buffer.concat([this.out, data]);
    this.pump();
  }

  end(): void {
    this.finQueued = true;
    this.pump();
  }

  reset(): void {
    this.send(RST | ACK, this.sndNxt);
    this.state = 'reset';
    this.stop();
  }

  setPaused(paused: boolean): void {
    this.paused = paused;
    if (!paused) this.send(ACK, this.sndNxt); // window update
  }

  private inFlight(): number {
    return (this.sndNxt - this.sndUna) >>> 0;
  }

  private pump(): void {
    if (this.state !== 'established') return;
    for (;;) {
      const off = this.inFlight();
      const avail = this.out.length - off;
      const room = this.peerWnd - off;
      if (avail > 0 && room > 0) {
        const len = Math.min(avail, room, this.peerMss);
        this.send(ACK | (len === avail ? PSH : 0), this.sndNxt, this.out.subarray(off, off + len));
        this.sndNxt = (this.sndNxt + len) >>> 0;
        this.arm();
        continue;
      }
      if (avail <= 0 && this.finQueued && !this.finSent) {
        this.send(ACK | FIN, this.sndNxt);
        this.finSent = true;
        this.sndNxt = (this.sndNxt + 1) >>> 0;
        this.arm();
      }
      return;
    }
  }

  private arm(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.onTimeout();
    }, this.o.rtoMs);
  }

  private stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private onTimeout(): void {
    if (this.state === 'syn-sent') {
      this.send(SYN, this.iss, undefined, true);
      this.arm();
      return;
    }
    if (this.state !== 'established' || this.inFlight() === 0) {
      if (this.state === 'established' && this.peerWnd === 0 && this.out.length > 0) {
        this.send(ACK, (this.sndUna - 1) >>> 0); // zero-window probe
        this.arm();
      }
      return;
    }
    // Go back N: resend from SND.UNA.
    this.finSent = false; // pump() sends it again after the data
    this.sndNxt = this.sndUna;
    this.pump();
    this.arm();
  }

  /** A packet from the NAT for this client. */
  receive(p: Parsed): void {
    const t = p.tcp!;
    if (t.flags & RST) {
      if (this.state === 'syn-sent' && t.ack !== this.sndNxt) return;
      this.state = 'reset';
      this.stop();
      this.emit('reset', p);
      return;
    }
    if (this.state === 'syn-sent') {
      if ((t.flags & (SYN | ACK)) !== (SYN | ACK) || t.ack !== this.sndNxt) return;
      this.synAck = p;
      this.rcvNxt = (t.seq + 1) >>> 0;
      this.peerShift = t.wscale >= 0 ? t.wscale : 0;
      this.peerMss = Math.min(t.mss || 536, this.o.mss);
      this.peerWnd = t.window; // unscaled in a SYN-ACK
      this.sndUna = this.sndNxt;
      this.state = 'established';
      this.stop();
      this.send(ACK, this.sndNxt);
      this.emit('established');
      this.pump();
      return;
    }
    if (this.state !== 'established') return;
    if (t.flags & SYN) {
      this.ackDue = true; // retransmitted SYN-ACK: our ACK was lost
      return;
    }
    this.advertisedWindows.push(t.window);
    const acked = (t.ack - this.sndUna) | 0;
    if (t.flags & ACK && acked >= 0 && ((t.ack - this.sndNxt) | 0) <= 0) {
      if (acked > 0) {
        const dataAcked = Math.min(acked, this.out.length);
        this.out = this.out.subarray(dataAcked);
        this.sndUna = t.ack;
        if (this.finSent && this.sndUna === this.sndNxt && this.out.length === 0) this.finAcked = true;
        this.stop();
        if (this.inFlight() > 0) this.arm();
      }
      this.peerWnd = t.window << this.peerShift;
      if (this.peerWnd === 0 && this.out.length > 0) this.arm();
    }
    const len = t.data.length;
    if (len > 0 && !this.paused && ((t.seq - this.rcvNxt) | 0) > 0 && this.held.size < 4096) {
      this.held.set(t.seq, Buffer.from(t.data)); // out of order: kept, like a real receiver
    }
    if (len > 0 || t.flags & FIN) {
      if (t.seq === this.rcvNxt && !this.paused && !this.finReceived) {
        if (len > 0) {
          this.received.push(Buffer.from(t.data));
          this.receivedBytes += len;
          this.rcvNxt = (this.rcvNxt + len) >>> 0;
          this.emit('data', t.data);
          for (let h = this.held.get(this.rcvNxt); h; h = this.held.get(this.rcvNxt)) {
            this.held.delete(this.rcvNxt);
            this.received.push(h);
            this.receivedBytes += h.length;
            this.rcvNxt = (this.rcvNxt + h.length) >>> 0;
          }
        }
        if (t.flags & FIN) {
          this.rcvNxt = (this.rcvNxt + 1) >>> 0;
          this.finReceived = true;
          this.emit('end');
        }
      }
      if (t.seq !== this.rcvNxt || this.paused) this.send(ACK, this.sndNxt); // duplicate ACK at once
      else this.ackDue = true;
    }
    this.pump();
  }

  afterBatch(): void {
    if (this.ackDue && this.state === 'established') {
      this.ackDue = false;
      this.send(ACK, this.sndNxt);
    }
  }

  /** Resolves when the NAT's FIN arrived (with everything before it). */
  ended(): Promise<Buffer> {
    if (this.finReceived) return Promise.resolve(Buffer.concat(this.received));
    return new Promise((resolve, reject) => {
      this.once('end', () => resolve(Buffer.concat(this.received)));
      this.once('reset', () => reject(new Error('reset before FIN')));
    });
  }

  close(): void {
    this.stop();
  }
}
