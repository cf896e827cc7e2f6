// Copies of bytes taken out of a packet. A Node Buffer's slice() is a view like subarray(), and
// packets arrive as views into slabs that the next batch overwrites: whatever outlives the call
// that was handed the packet must own its bytes.

/** A copy of buf[start, end) that owns its memory, whether buf is a Buffer or a Uint8Array. */
export function copyBytes(buf: Uint8Array, start = 0, end = buf.length): Uint8Array {
  return Uint8Array.prototype.slice.call(buf, start, end);
}
