// Bytes read from the host socket and not yet acknowledged by the client, as the chunks the
// socket delivered (never copied until they are put into a segment). Offsets count from the
// first unacknowledged byte (SND.UNA). A cursor remembers where the last copy ended, so
// sending segment after segment does not rescan the chunk list.

export class TcpSendQueue {
  private chunks: Buffer[] = [];
  /** Index of the first live chunk and bytes of it already acknowledged. */
  private head = 0;
  private headSkip = 0;
  /** Total bytes queued (from SND.UNA). */
  length = 0;
  // Cursor: the chunk holding byte `cursorOffset` starts at queue offset cursorStart.
  private cursorChunk = 0;
  private cursorStart = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Drops n acknowledged bytes from the front. */
  consume(n: number): void {
    if (n <= 0) return;
    if (n > this.length) n = this.length;
    this.length -= n;
    let skip = this.headSkip + n;
    while (this.head < this.chunks.length && skip >= this.chunks[this.head]!.length) {
      skip -= this.chunks[this.head]!.length;
      this.chunks[this.head] = EMPTY; // release for GC
      this.head++;
    }
    this.headSkip = skip;
    // Offsets are relative to SND.UNA, so the cursor moves back by n (or restarts).
    this.cursorStart -= n;
    if (this.cursorChunk < this.head || this.cursorStart < -this.headSkip) this.resetCursor();
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.cursorChunk -= this.head;
      this.head = 0;
    }
  }

  private resetCursor(): void {
    this.cursorChunk = this.head;
    this.cursorStart = -this.headSkip;
  }

  /** Copies queue bytes [offset, offset + len) into dst at dstOff (caller keeps it in range). */
  copyOut(offset: number, len: number, dst: Uint8Array, dstOff: number): void {
    if (offset < this.cursorStart) this.resetCursor();
    let ci = this.cursorChunk;
    let start = this.cursorStart;
    while (start + this.chunks[ci]!.length <= offset) {
      start += this.chunks[ci]!.length;
      ci++;
    }
    this.cursorChunk = ci;
    this.cursorStart = start;
    let pos = offset;
    let out = dstOff;
    let left = len;
    while (left > 0) {
      const chunk = this.chunks[ci]!;
      const from = pos - start;
      const n = Math.min(left, chunk.length - from);
      chunk.copy(dst, out, from, from + n); // Buffer.copy: no view allocated
      out += n;
      pos += n;
      left -= n;
      if (from + n === chunk.length) {
        start += chunk.length;
        ci++;
      }
    }
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.headSkip = 0;
    this.length = 0;
    this.cursorChunk = 0;
    this.cursorStart = 0;
  }
}

const EMPTY = Buffer.alloc(0);
