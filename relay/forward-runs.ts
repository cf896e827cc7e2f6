// The forward-runs a mesh link sends (proto/relay/mesh-frames.ts): consecutive packets for one
// destination are written as recv frames, each straight into the link's arena (the packet's one
// copy on this relay), behind one forward-run header that grows with them. A packet for another
// destination, a priority packet, a full run or a flush closes the open run and hands it on.
import { FRAME_HEADER_LEN, NODE_KEY_LEN, writeRecvFrame } from '../proto/relay/frames.js';
import { MAX_RUN_PACKET, RECV_FRAME_OVERHEAD, RUN_HEADER_LEN, setRunLength, writeRunHeader } from '../proto/relay/mesh-frames.js';
import { FrameArena, MAX_ARENA_FRAME, SLAB_BYTES } from './frame-arena.js';
import { sameKey } from './mesh-host.js';

/** A closed run: the whole forward-run frame and the packets in it. */
export type RunSink = (run: Uint8Array, packets: number, priority: boolean) => void;

export class ForwardRuns {
  private readonly arena = new FrameArena();
  private buf: Uint8Array | null = null;
  private start = 0;
  private len = 0;
  private packets = 0;
  private priority = false;
  private readonly dst = new Uint8Array(NODE_KEY_LEN);

  constructor(private readonly sink: RunSink) {}

  /** Adds a packet (at most MAX_RUN_PACKET bytes) from `src` for `dst`. */
  add(src: Uint8Array, dst: Uint8Array, data: Uint8Array, priority: boolean): void {
    if (data.length > MAX_RUN_PACKET) throw new RangeError(`mesh packet of ${data.length} bytes (max ${MAX_RUN_PACKET})`);
    const recvLen = RECV_FRAME_OVERHEAD + data.length;
    const buf = this.buf;
    if (buf !== null && !priority && !this.priority && sameKey(this.dst, dst) && this.len + recvLen <= SLAB_BYTES && this.arena.extend(buf, this.start + this.len, recvLen)) {
      writeRecvFrame(buf, this.start + this.len, src, data);
      this.len += recvLen;
      this.packets++;
      setRunLength(buf, this.start, this.len);
      return;
    }
    this.close();
    const len = FRAME_HEADER_LEN + RUN_HEADER_LEN + recvLen;
    const out = len <= MAX_ARENA_FRAME ? this.arena.take(len) : new Uint8Array(len);
    writeRunHeader(out, 0, dst, priority);
    writeRecvFrame(out, FRAME_HEADER_LEN + RUN_HEADER_LEN, src, data);
    setRunLength(out, 0, len);
    // The open run is kept as its whole buffer (the slab) and an offset: it grows past the view take() gave.
    this.buf = new Uint8Array(out.buffer);
    this.start = out.byteOffset;
    this.len = len;
    this.packets = 1;
    this.priority = priority;
    this.dst.set(dst);
  }

  /** Hands the open run (if any) to the sink. */
  close(): void {
    const buf = this.buf;
    if (buf === null) return;
    this.buf = null;
    this.sink(buf.subarray(this.start, this.start + this.len), this.packets, this.priority);
  }

  /** The link's socket wrote `batch` (sent in order from the runs this gave): see FrameArena.written. */
  written(batch: Uint8Array): void {
    this.arena.written(batch);
  }

  /** Forgets the open run and the arena's slab (the link went down); returns the packets dropped. */
  discard(): number {
    const n = this.buf === null ? 0 : this.packets;
    this.buf = null;
    this.arena.release();
    return n;
  }
}
