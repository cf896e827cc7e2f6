// A client's outbound queue on the relay: two bounded lanes, priority (disco frames and the relay's
// own control frames) always drained first. The priority lane drops its oldest frames when full.
// The data lane has a high-water mark (the limits) at which the session pauses the senders that
// fill it, a low-water mark (half the limits) at which it resumes them, and a hard cap (twice the
// limits plus one socket read: room for what a paused sender had already sent) over which it
// drops its oldest frames.

export interface SendQueueLimits {
  /** Data lane: at most this many frames... */
  maxFrames: number;
  /** ...and this many bytes. */
  maxBytes: number;
  /** Priority lane: frames and bytes (disco frames are small; this caps a client that marks everything priority). */
  maxPriorityFrames: number;
  maxPriorityBytes: number;
}

/**
 * The data lane's hard cap: twice its limits plus what one socket read of a paused sender can
 * still hold (the relay parses the chunk it has; one WebSocket message is at most ~1 MiB).
 */
const HARD_CAP_FACTOR = 2;
const HARD_SLACK_FRAMES = 1024;
const HARD_SLACK_BYTES = 1024 * 1024;

/**
 * A ring of queue entries with byte and frame totals. An entry is one frame, or a run of frames
 * lying back to back (a forward-run's recv frames, queued whole): `frames` counts what is inside.
 */
class Lane {
  private ring: Array<Uint8Array | undefined>;
  private counts: Uint32Array;
  private head = 0;
  length = 0;
  bytes = 0;
  frames = 0;
  /** Frames in the entry the last shift() returned. */
  shiftedFrames = 0;

  constructor(capacity: number) {
    this.ring = new Array(Math.max(1, capacity));
    this.counts = new Uint32Array(this.ring.length);
  }

  push(f: Uint8Array, frames: number): void {
    if (this.length === this.ring.length) this.grow();
    const i = (this.head + this.length) % this.ring.length;
    this.ring[i] = f;
    this.counts[i] = frames;
    this.length++;
    this.bytes += f.length;
    this.frames += frames;
  }

  shift(): Uint8Array | undefined {
    if (this.length === 0) return undefined;
    const f = this.ring[this.head]!;
    this.shiftedFrames = this.counts[this.head]!;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.length--;
    this.bytes -= f.length;
    this.frames -= this.shiftedFrames;
    return f;
  }

  peek(): Uint8Array | undefined {
    return this.length === 0 ? undefined : this.ring[this.head];
  }

  clear(): void {
    this.ring.fill(undefined);
    this.head = 0;
    this.length = 0;
    this.bytes = 0;
    this.frames = 0;
  }

  private grow(): void {
    const next = new Array<Uint8Array | undefined>(this.ring.length * 2);
    const counts = new Uint32Array(next.length);
    for (let i = 0; i < this.length; i++) {
      next[i] = this.ring[(this.head + i) % this.ring.length];
      counts[i] = this.counts[(this.head + i) % this.ring.length]!;
    }
    this.ring = next;
    this.counts = counts;
    this.head = 0;
  }
}

export class SendQueue {
  private readonly data: Lane;
  private readonly priority: Lane;

  constructor(private readonly limits: SendQueueLimits) {
    this.data = new Lane(Math.min(limits.maxFrames, 4096) + 1);
    this.priority = new Lane(limits.maxPriorityFrames + 1);
  }

  /** Entries queued (a run of frames is one). */
  get length(): number {
    return this.data.length + this.priority.length;
  }

  /** Frames queued, those inside runs included. */
  get frames(): number {
    return this.data.frames + this.priority.frames;
  }

  get bytes(): number {
    return this.data.bytes + this.priority.bytes;
  }

  /**
   * Queues a frame; returns how many older frames of the same lane were dropped to fit it. A data
   * frame is dropped at the hard cap (twice the limits plus slack), or at the limits themselves with
   * `atHighWater` (a destination whose senders may no longer be paused).
   */
  push(frame: Uint8Array, priority: boolean, atHighWater = false, frames = 1): number {
    const lane = priority ? this.priority : this.data;
    const hard = !priority && !atHighWater;
    const maxFrames = priority ? this.limits.maxPriorityFrames : hard ? this.limits.maxFrames * HARD_CAP_FACTOR + HARD_SLACK_FRAMES : this.limits.maxFrames;
    const maxBytes = priority ? this.limits.maxPriorityBytes : hard ? this.limits.maxBytes * HARD_CAP_FACTOR + HARD_SLACK_BYTES : this.limits.maxBytes;
    lane.push(frame, frames);
    let dropped = 0;
    // The newest entry always stays, even if it alone exceeds the limits.
    while (lane.length > 1 && (lane.frames > maxFrames || lane.bytes > maxBytes)) {
      lane.shift();
      dropped += lane.shiftedFrames;
    }
    return dropped;
  }

  /** The data lane is at or over its limits: senders to it should wait. */
  get dataFull(): boolean {
    return this.data.frames >= this.limits.maxFrames || this.data.bytes >= this.limits.maxBytes;
  }

  /** The data lane drained to half its limits or less: waiting senders may go on. */
  get dataLow(): boolean {
    return this.data.frames <= this.limits.maxFrames / 2 && this.data.bytes <= this.limits.maxBytes / 2;
  }

  /** The next entry to send: priority lane first. `shiftedFrames` says how many frames it holds. */
  shift(): Uint8Array | undefined {
    const p = this.priority.shift();
    if (p !== undefined) {
      this.shiftedFrames = this.priority.shiftedFrames;
      return p;
    }
    const d = this.data.shift();
    this.shiftedFrames = this.data.shiftedFrames;
    return d;
  }

  /** Frames in the entry the last shift() returned. */
  shiftedFrames = 0;

  /**
   * Takes frames in send order, as many as fit in `maxBytes` (at least one; call only when not
   * empty), as one buffer. Frames lying next to each other in one buffer (a FrameArena's) go out
   * as one view of it; the run ends where they stop doing so, unless it is still short (under
   * maxBytes / 8), when the rest is copied in. `batchFrames` says how many it took.
   */
  shiftBatch(maxBytes: number): Uint8Array {
    const first = this.shift()!;
    let frames = this.shiftedFrames;
    let total = first.length;
    let end = first.byteOffset + total;
    let contiguous = true;
    const parts = this.scratch;
    parts.push(first);
    for (let f = this.peek(); f !== undefined && total + f.length <= maxBytes; f = this.peek()) {
      if (contiguous && (f.buffer !== first.buffer || f.byteOffset !== end)) {
        if (total >= maxBytes / 8) break;
        contiguous = false;
      }
      this.shift();
      frames += this.shiftedFrames;
      end = f.byteOffset + f.length;
      total += f.length;
      parts.push(f);
    }
    this.batchFrames = frames;
    const out = parts.length === 1 ? first : contiguous ? Buffer.from(first.buffer, first.byteOffset, total) : Buffer.concat(parts, total);
    parts.length = 0;
    return out;
  }

  /** Frames in the last shiftBatch(). */
  batchFrames = 0;
  private readonly scratch: Uint8Array[] = [];

  private peek(): Uint8Array | undefined {
    return this.priority.peek() ?? this.data.peek();
  }

  clear(): void {
    this.data.clear();
    this.priority.clear();
  }
}
