// Bytes a flow keeps from a packet it was handed. handle() gets views into the device's receive
// slab, which the next batch overwrites, and Buffer#slice is a view like subarray (only
// Uint8Array#slice copies): an address kept that way later names whatever the slot holds.

/** A copy of buf[start, end) that owns its memory, whether buf is a Buffer or a Uint8Array. */
export function ownedBytes(buf: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(buf.subarray(start, end));
  return out;
}
