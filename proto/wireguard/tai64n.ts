// TAI64N timestamps: 8-byte big-endian TAI64 seconds label + 4-byte big-endian nanoseconds.
import { TIMESTAMP_LEN } from './constants.js';

/** TAI64 label of the Unix epoch: 2^62 + 10 leap seconds, as wireguard-go and the kernel use. */
const TAI64_EPOCH = 0x4000000000000000n + 10n;
/** Nanoseconds are rounded down to 2^24 ns so the timestamp does not leak a fine clock. */
const WHITENER_MASK = 0x1000000 - 1;

export function tai64n(unixMs: number, out: Uint8Array = new Uint8Array(TIMESTAMP_LEN)): Uint8Array {
  const seconds = Math.floor(unixMs / 1000);
  const nanos = (Math.floor(unixMs - seconds * 1000) * 1_000_000) & ~WHITENER_MASK;
  const view = new DataView(out.buffer, out.byteOffset, TIMESTAMP_LEN);
  view.setBigUint64(0, TAI64_EPOCH + BigInt(seconds));
  view.setUint32(8, nanos >>> 0);
  return out;
}

/** Lexicographic byte order equals chronological order for TAI64N. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TIMESTAMP_LEN; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}
