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

/** A ring of frames with a byte total. */
class Lane {
  private ring: Array<Uint8Array | undefined>;
  private head = 0;
  length = 0;
  bytes = 0;

  constructor(capacity: number) {
    this.ring = new Array(Math.max(1, capacity));
  }

  push(f: Uint8Array): void {
    if (this.length === this.ring.length) this.grow();
    this.ring[(this.head + this.length) % this.ring.length] = f;
    this.length++;
    this.bytes += f.length;
  }

  shift(): Uint8Array | undefined {
    if (this.length === 0) return undefined;
    const f = this.ring[this.head]!;
    this.ring[this.head] = undefined;
    this.head = (this.head + 1) % this.ring.length;
    this.length--;
    this.bytes -= f.length;
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
  }

  private grow(): void {
    const next = new Array<Uint8Array | undefined>(this.ring.length * 2);
    for (let i = 0; i < this.length; i++) next[i] = this.ring[(this.head + i) % this.ring.length];
    this.ring = next;
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

  get length(): number {
    return this.data.length + this.priority.length;
  }

  get bytes(): number {
    return this.data.bytes + this.priority.bytes;
  }

  /**
   * Queues a frame; returns how many older frames of the same lane were dropped to fit it. A data
   * frame is dropped at the hard cap (twice the limits plus slack), or at the limits themselves with
   * `atHighWater` (a destination whose senders may no longer be paused).
   */
  push(frame: Uint8Array, priority: boolean, atHighWater = false): number {
    const lane = priority ? this.priority : this.data;
    const hard = !priority && !atHighWater;
    const maxFrames = priority ? this.limits.maxPriorityFrames : hard ? this.limits.maxFrames * HARD_CAP_FACTOR + HARD_SLACK_FRAMES : this.limits.maxFrames;
    const maxBytes = priority ? this.limits.maxPriorityBytes : hard ? this.limits.maxBytes * HARD_CAP_FACTOR + HARD_SLACK_BYTES : this.limits.maxBytes;
    lane.push(frame);
    let dropped = 0;
    // The newest frame always stays, even if it alone exceeds the byte limit.
    while (lane.length > 1 && (lane.length > maxFrames || lane.bytes > maxBytes)) {
      lane.shift();
      dropped++;
    }
    return dropped;
  }

  /** The data lane is at or over its limits: senders to it should wait. */
  get dataFull(): boolean {
    return this.data.length >= this.limits.maxFrames || this.data.bytes >= this.limits.maxBytes;
  }

  /** The data lane drained to half its limits or less: waiting senders may go on. */
  get dataLow(): boolean {
    return this.data.length <= this.limits.maxFrames / 2 && this.data.bytes <= this.limits.maxBytes / 2;
  }

  /** The next frame to send: priority lane first. */
  shift(): Uint8Array | undefined {
    return this.priority.shift() ?? this.data.shift();
  }

  /** Size of the frame shift() would return, or 0. */
  nextLength(): number {
    return (this.priority.peek() ?? this.data.peek())?.length ?? 0;
  }

  clear(): void {
    this.data.clear();
    this.priority.clear();
  }
}
