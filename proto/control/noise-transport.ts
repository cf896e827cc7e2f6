// The control channel after its handshake: a byte stream cut into encrypted frames.
//
//   frame = length u16be | ciphertext (length bytes, 16..65535)
//   ciphertext = ChaCha20-Poly1305(key, nonce = 0^32 | counter u64le, plaintext, ad = empty)
//
// The first frame from the responder is handshake message 2 (noise-ik.ts), unencrypted by this
// layer. Each direction has its own key and counter starting at 0; a frame that does not open
// ends the channel (TCP already ordered and delivered it, so any failure is tampering or a bug).
import { sodium } from '../sodium.js';
import { DecodeError } from '../errors.js';
import { TAG_LEN } from '../wireguard/constants.js';

export const CONTROL_FRAME_HEADER = 2;
export const MAX_CONTROL_CIPHERTEXT = 0xffff;
/** Largest plaintext one frame carries. */
export const MAX_CONTROL_PLAINTEXT = MAX_CONTROL_CIPHERTEXT - TAG_LEN;
/** Counters never reach 2^64; a channel this old is closed long before (2^48 frames). */
const MAX_COUNTER = 2 ** 48;

export class CipherState {
  private counter = 0;
  private readonly nonce = Buffer.alloc(12);
  private readonly key: Buffer;

  constructor(key: Uint8Array) {
    this.key = Buffer.from(key);
  }

  private nextNonce(): Buffer {
    if (this.counter >= MAX_COUNTER) throw new DecodeError('bad-value', 'control channel counter exhausted');
    this.nonce.writeUInt32LE(this.counter >>> 0, 4);
    this.nonce.writeUInt32LE(Math.floor(this.counter / 2 ** 32), 8);
    this.counter++;
    return this.nonce;
  }

  /** One frame (header included) carrying `plaintext` (≤ MAX_CONTROL_PLAINTEXT bytes). */
  seal(plaintext: Uint8Array): Buffer {
    if (plaintext.length > MAX_CONTROL_PLAINTEXT) throw new RangeError('control frame plaintext too large');
    const out = Buffer.allocUnsafe(CONTROL_FRAME_HEADER + plaintext.length + TAG_LEN);
    out.writeUInt16BE(plaintext.length + TAG_LEN, 0);
    sodium().crypto_aead_chacha20poly1305_ietf_encrypt(
      out.subarray(CONTROL_FRAME_HEADER), toBuffer(plaintext), null, null, this.nextNonce(), this.key,
    );
    return out;
  }

  /** The plaintext of one frame's ciphertext; DecodeError when it does not authenticate. */
  open(ciphertext: Uint8Array): Buffer {
    if (ciphertext.length < TAG_LEN) throw new DecodeError('short', 'control frame shorter than its tag');
    const out = Buffer.allocUnsafe(ciphertext.length - TAG_LEN);
    try {
      sodium().crypto_aead_chacha20poly1305_ietf_decrypt(out, null, toBuffer(ciphertext), null, this.nextNonce(), this.key);
    } catch {
      throw new DecodeError('bad-value', 'control frame failed authentication');
    }
    return out;
  }

  /** Erases the key (the channel is closed). */
  wipe(): void {
    this.key.fill(0);
  }
}

/** Splits a byte stream into frames (their ciphertext), however it was chunked. */
export class ControlFrameReader {
  private buf: Buffer = Buffer.alloc(0);

  /** Bytes held waiting for the rest of a frame (at most one frame's worth). */
  get buffered(): number {
    return this.buf.length;
  }

  push(chunk: Uint8Array, onFrame: (ciphertext: Buffer) => void): void {
    let data = this.buf.length === 0 ? toBuffer(chunk) : Buffer.concat([this.buf, chunk]);
    while (data.length >= CONTROL_FRAME_HEADER) {
      const len = data.readUInt16BE(0);
      if (len < TAG_LEN) throw new DecodeError('short', `control frame of ${len} bytes is shorter than its tag`);
      if (data.length < CONTROL_FRAME_HEADER + len) break;
      onFrame(data.subarray(CONTROL_FRAME_HEADER, CONTROL_FRAME_HEADER + len));
      data = data.subarray(CONTROL_FRAME_HEADER + len);
    }
    // Keep only the unread tail, copied so the caller's chunk is not pinned.
    this.buf = data.length === 0 ? Buffer.alloc(0) : Buffer.from(data);
  }
}

/** Frames an unencrypted handshake message (message 2) the same way. */
export function frameBytes(bytes: Uint8Array): Buffer {
  if (bytes.length > MAX_CONTROL_CIPHERTEXT) throw new RangeError('frame too large');
  const out = Buffer.allocUnsafe(CONTROL_FRAME_HEADER + bytes.length);
  out.writeUInt16BE(bytes.length, 0);
  out.set(bytes, CONTROL_FRAME_HEADER);
  return out;
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
