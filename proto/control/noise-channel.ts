// The control channel as a stream: plaintext in and out, frames of noise-transport.ts on the
// underlying connection. It looks enough like a net.Socket (setTimeout, setNoDelay, ref, …) for
// node:http and ws to run HTTP/1.1 and WebSocket inside it unchanged — the way Tailscale runs its
// control protocol inside Noise. It owns the connection it is given: ending or destroying one ends
// the other. No sockets are opened here (proto/ does no I/O): callers hand in a connected stream.
import { Duplex } from 'node:stream';
import { isDecodeError } from '../errors.js';
import type { SessionKeys } from './noise-ik.js';
import { CipherState, ControlFrameReader, MAX_CONTROL_PLAINTEXT } from './noise-transport.js';

/** What the channel needs of the connection under it (a net.Socket or tls.TLSSocket). */
export interface ChannelTransport extends Duplex {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
  localAddress?: string | undefined;
  setTimeout?(ms: number): unknown;
  setNoDelay?(noDelay?: boolean): unknown;
  setKeepAlive?(enable?: boolean, delay?: number): unknown;
  ref?(): unknown;
  unref?(): unknown;
}

export interface NoiseChannelInit {
  keys: SessionKeys;
  /** The other side's static public key, as the handshake authenticated it. */
  peerStatic: Uint8Array;
  /** Bytes that arrived after the handshake, already read from the transport. */
  head?: Uint8Array;
}

export class NoiseChannel extends Duplex {
  readonly peerStatic: Uint8Array;
  readonly handshakeHash: Uint8Array;
  /** Frames that failed authentication (the channel closes on the first). */
  badFrames = 0;
  private readonly sender: CipherState;
  private readonly receiver: CipherState;
  private readonly reader = new ControlFrameReader();
  private timeoutMs = 0;

  constructor(private readonly transport: ChannelTransport, init: NoiseChannelInit) {
    super({ allowHalfOpen: false });
    this.peerStatic = init.peerStatic;
    this.handshakeHash = init.keys.handshakeHash;
    this.sender = new CipherState(init.keys.sendKey);
    this.receiver = new CipherState(init.keys.recvKey);
    transport.on('data', (chunk: Buffer) => this.onData(chunk));
    transport.on('end', () => this.push(null));
    transport.on('close', () => this.destroy());
    transport.on('error', (err: Error) => this.destroy(err));
    transport.on('timeout', () => this.emit('timeout'));
    if (init.head && init.head.length > 0) queueMicrotask(() => this.onData(init.head!));
  }

  get remoteAddress(): string | undefined { return this.transport.remoteAddress; }
  get remotePort(): number | undefined { return this.transport.remotePort; }
  get localAddress(): string | undefined { return this.transport.localAddress; }
  /** node:http asks this to tell http from https; the channel is not TLS. */
  readonly encrypted = false;

  setTimeout(ms: number, cb?: () => void): this {
    this.timeoutMs = ms;
    this.transport.setTimeout?.(ms);
    if (cb) this.once('timeout', cb);
    return this;
  }

  get timeout(): number { return this.timeoutMs; }
  setNoDelay(noDelay = true): this { this.transport.setNoDelay?.(noDelay); return this; }
  setKeepAlive(enable = false, delay = 0): this { this.transport.setKeepAlive?.(enable, delay); return this; }
  ref(): this { this.transport.ref?.(); return this; }
  unref(): this { this.transport.unref?.(); return this; }
  address(): object { return {}; }

  private onData(chunk: Uint8Array): void {
    if (this.destroyed) return;
    try {
      this.reader.push(chunk, (ct) => {
        if (!this.push(this.receiver.open(ct))) this.transport.pause();
      });
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      this.badFrames++;
      this.destroy(new Error(`control channel: ${err.message}`));
    }
  }

  override _read(): void {
    this.transport.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk.length <= MAX_CONTROL_PLAINTEXT) {
      this.transport.write(this.sender.seal(chunk), cb);
      return;
    }
    let ok = true;
    for (let at = 0; at < chunk.length; at += MAX_CONTROL_PLAINTEXT) {
      ok = this.transport.write(this.sender.seal(chunk.subarray(at, at + MAX_CONTROL_PLAINTEXT)));
    }
    if (ok) cb();
    else this.transport.once('drain', () => cb());
  }

  /**
   * Writes that queued up (a corked netmap is hundreds of small WebSocket fragments) go out as few
   * full frames: one copy into one plaintext, sealed in frame-sized slices, one transport write.
   */
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    if (chunks.length === 1) return this._write(chunks[0]!.chunk, 'binary', cb);
    const plain = Buffer.concat(chunks.map((c) => c.chunk));
    const frames: Buffer[] = [];
    for (let at = 0; at < plain.length; at += MAX_CONTROL_PLAINTEXT) frames.push(this.sender.seal(plain.subarray(at, at + MAX_CONTROL_PLAINTEXT)));
    if (frames.length === 0) return cb();
    this.transport.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.transport.end(cb);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.sender.wipe();
    this.receiver.wipe();
    this.transport.destroy();
    cb(err);
  }
}
