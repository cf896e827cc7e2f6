// Splits a byte stream into relay frames, however the stream was chunked. Frames that lie whole
// inside a chunk are handed out as views of it (no copy); a frame split across chunks is
// assembled in a buffer of its own. The size check happens at the header, before buffering.
import { DecodeError } from '../errors.js';
import { FRAME_HEADER_LEN, MAX_FRAME_PAYLOAD } from './frames.js';

/**
 * Called once per frame: `payload` and `frame` (header included) alias either the pushed chunk
 * or a buffer owned by this frame alone, so the caller may keep or overwrite them as long as it
 * owns the chunks it pushes.
 */
export type RelayFrameHandler = (type: number, payload: Uint8Array, frame: Uint8Array) => void;

export class RelayFrameReader {
  private readonly head = new Uint8Array(FRAME_HEADER_LEN);
  private headFill = 0;
  /** The frame being assembled across chunks (header included), and how much of it is filled. */
  private pending: Uint8Array | null = null;
  private pendingFill = 0;
  private failed: DecodeError | null = null;

  constructor(private readonly maxPayload = MAX_FRAME_PAYLOAD) {}

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.pending ? this.pendingFill : this.headFill;
  }

  /**
   * Feeds the next chunk of the stream. Throws DecodeError('oversized') as soon as a header
   * announces more than the maximum; after that the stream is unusable and every push throws.
   */
  push(chunk: Uint8Array, onFrame: RelayFrameHandler): void {
    if (this.failed) throw this.failed;
    let at = 0;
    // Finish a frame started in an earlier chunk.
    while (at < chunk.length && (this.pending || this.headFill > 0)) {
      if (!this.pending) {
        const take = Math.min(FRAME_HEADER_LEN - this.headFill, chunk.length - at);
        this.head.set(chunk.subarray(at, at + take), this.headFill);
        this.headFill += take;
        at += take;
        if (this.headFill < FRAME_HEADER_LEN) return;
        const len = this.payloadLen(this.head, 0);
        this.pending = new Uint8Array(FRAME_HEADER_LEN + len);
        this.pending.set(this.head);
        this.pendingFill = FRAME_HEADER_LEN;
        this.headFill = 0;
      }
      const p = this.pending;
      const take = Math.min(p.length - this.pendingFill, chunk.length - at);
      p.set(chunk.subarray(at, at + take), this.pendingFill);
      this.pendingFill += take;
      at += take;
      if (this.pendingFill < p.length) return;
      this.pending = null;
      this.pendingFill = 0;
      onFrame(p[0]!, p.subarray(FRAME_HEADER_LEN), p);
    }
    // Whole frames straight out of the chunk.
    while (at < chunk.length) {
      const left = chunk.length - at;
      if (left < FRAME_HEADER_LEN) {
        this.head.set(chunk.subarray(at));
        this.headFill = left;
        return;
      }
      const len = this.payloadLen(chunk, at);
      const end = at + FRAME_HEADER_LEN + len;
      if (end > chunk.length) {
        this.pending = new Uint8Array(FRAME_HEADER_LEN + len);
        this.pending.set(chunk.subarray(at));
        this.pendingFill = left;
        return;
      }
      const frame = chunk.subarray(at, end);
      at = end;
      onFrame(frame[0]!, frame.subarray(FRAME_HEADER_LEN), frame);
    }
  }

  private payloadLen(b: Uint8Array, at: number): number {
    const len = ((b[at + 1]! << 24) | (b[at + 2]! << 16) | (b[at + 3]! << 8) | b[at + 4]!) >>> 0;
    if (len > this.maxPayload) {
      this.failed = new DecodeError('oversized', `relay frame of ${len} bytes (max ${this.maxPayload})`);
      this.pending = null;
      this.headFill = 0;
      throw this.failed;
    }
    return len;
  }
}
