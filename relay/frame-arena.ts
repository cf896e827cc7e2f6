// Where a relay queue keeps the frames it holds: carved out of 64 KiB slabs in arrival order. A
// frame is copied once, into the slab (never a buffer of its own), and frames queued one after
// another lie next to each other, so a flush hands a run of them to the socket as one view of the
// slab instead of concatenating them (SendQueue.shiftBatch). A full slab is used again once the
// socket reported every byte taken from it written (written(); priority frames leave out of
// order, so it counts bytes, not positions); a slab with a dropped or copied frame is left to the
// GC. Fewer fresh 64 KiB buffers means fewer collections forced by external memory. An idle queue releases its slabs,
// so ten thousand idle clients hold none.

/** Bytes per slab: one WebSocket message of frames. */
export const SLAB_BYTES = 64 * 1024;
/** Frames above this are not worth a slab's room: the caller keeps them as they are. */
export const MAX_ARENA_FRAME = 16 * 1024;

/** Full slabs waiting for their bytes to be written, and free ones kept, per arena. */
const MAX_SEALED = 16;
const MAX_FREE = 4;

interface Slab {
  buf: Buffer;
  /** Bytes taken from it and not yet reported written. */
  pending: number;
}

export class FrameArena {
  private slab: Slab | null = null;
  private used = 0;
  private readonly sealed: Slab[] = [];
  private readonly free: Buffer[] = [];

  constructor(private readonly slabBytes = SLAB_BYTES) {}

  /** A view of `len` fresh bytes (len ≤ MAX_ARENA_FRAME), right after the previous one when it fits. */
  take(len: number): Uint8Array {
    let slab = this.slab;
    if (slab === null || this.used + len > slab.buf.length) {
      if (slab !== null && this.used > 0) {
        if (this.sealed.length === MAX_SEALED) this.sealed.shift(); // left to the GC
        this.sealed.push(slab);
      }
      slab = this.slab = { buf: this.free.pop() ?? Buffer.allocUnsafeSlow(Math.max(this.slabBytes, len)), pending: 0 };
      this.used = 0;
    }
    const at = this.used;
    this.used = at + len;
    slab.pending += len;
    return new Uint8Array(slab.buf.buffer, slab.buf.byteOffset + at, len);
  }

  /**
   * Grows the last view take() returned, `buf` ending at `end`, by `by` bytes in place: true when it
   * is still the newest in the current slab and the slab has room (write them at buf[end]).
   */
  extend(buf: Uint8Array, end: number, by: number): boolean {
    const slab = this.slab;
    if (slab === null || buf.buffer !== slab.buf.buffer || slab.buf.byteOffset + this.used !== buf.byteOffset + end || this.used + by > slab.buf.length) return false;
    this.used += by;
    slab.pending += by;
    return true;
  }

  /** A copy of `frame` in the arena. */
  copy(frame: Uint8Array): Uint8Array {
    const out = this.take(frame.length);
    out.set(frame);
    return out;
  }

  /**
   * The socket wrote `batch`: its bytes in a slab are done with, and a full slab all of whose bytes
   * are is free again. A batch that is not a view of one slab (a copy) frees nothing, and neither
   * do dropped frames: their slab is left to the GC.
   */
  written(batch: Uint8Array): void {
    const cur = this.slab;
    if (cur !== null && batch.buffer === cur.buf.buffer) {
      cur.pending -= batch.length;
      return;
    }
    const sealed = this.sealed;
    for (let i = 0; i < sealed.length; i++) {
      const s = sealed[i]!;
      if (batch.buffer !== s.buf.buffer) continue;
      s.pending -= batch.length;
      if (s.pending === 0) {
        sealed.splice(i, 1);
        if (this.free.length < MAX_FREE) this.free.push(s.buf);
      }
      return;
    }
  }

  /** Lets go of every slab (an idle queue holds none, a closed link frees them to the GC; the next take() starts a new one). */
  release(): void {
    this.slab = null;
    this.used = 0;
    this.sealed.length = 0;
    this.free.length = 0;
  }
}
