// Admission for full netmaps. A netmap of N peers is N × ~300 bytes; after a coordinator restart
// every node reconnects at once, and N such maps queued for writing at the same time would not
// fit in memory. So only NETMAP_BYTES_IN_FLIGHT of them are being written at any moment; later
// streams wait their turn (and get a map built when it comes, so it is current).

const NETMAP_BYTES_IN_FLIGHT = 64 * 1024 * 1024;

/** A stream that wants a netmap (a Stream). */
interface Stream {
  readonly nodeId: number;
}

export class NetmapAdmission {
  /** Streams waiting for their netmap, in arrival order, by node id. */
  private readonly waiting = new Map<number, { sink: Stream; start: () => void }>();
  /** Netmaps being written: their release functions. */
  private readonly inFlight = new Map<Stream, () => void>();
  private bytes = 0;

  /** Runs `start` (which builds and sends the netmap) now if there is room, or once there is. */
  admit(sink: Stream, start: () => void): void {
    this.waiting.delete(sink.nodeId);
    if (this.bytes < NETMAP_BYTES_IN_FLIGHT) start();
    else this.waiting.set(sink.nodeId, { sink, start });
  }

  /** Counts a netmap being written; the returned function (its write callback) releases it. */
  track(sink: Stream, size: number): () => void {
    this.bytes += size;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      this.inFlight.delete(sink);
      this.bytes -= size;
      this.next();
    };
    this.inFlight.set(sink, release);
    return release;
  }

  /** The stream is gone: it waits no longer, and its netmap no longer counts. */
  forget(sink: Stream): void {
    if (this.waiting.get(sink.nodeId)?.sink === sink) this.waiting.delete(sink.nodeId);
    this.inFlight.get(sink)?.();
  }

  private next(): void {
    for (const [id, w] of this.waiting) {
      if (this.bytes >= NETMAP_BYTES_IN_FLIGHT) return;
      this.waiting.delete(id);
      w.start();
    }
  }
}
