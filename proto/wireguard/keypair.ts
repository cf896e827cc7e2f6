// One session's transport keys (paper section 5.4.6) with its counters and replay window.
import { REPLAY_STATE_BYTES, ReplayWindow } from './replay.js';
import { asBuffer } from './noise-crypto.js';
import type { SessionKeys } from './handshake.js';

export class Keypair {
  readonly sendKey: Buffer;
  readonly receiveKey: Buffer;
  /**
   * The counters, in memory the native data path shares (agent/tun/src/fastpath.h): f64 send
   * counter, then the replay window (f64 highest counter, 256-word ring).
   */
  readonly state = new Uint8Array(REPLAY_STATE_BYTES);
  private readonly counters = new Float64Array(this.state.buffer, 0, 1);
  readonly replay = new ReplayWindow(this.state.buffer as ArrayBuffer);

  /** Next counter to send; also the count of messages sent under this key. */
  get sendCounter(): number {
    return this.counters[0]!;
  }

  set sendCounter(v: number) {
    this.counters[0] = v;
  }

  constructor(
    keys: SessionKeys,
    /** Our index: incoming transport messages carry it as receiver. */
    readonly localIndex: number,
    /** Their index: we put it in the receiver field of what we send. */
    readonly remoteIndex: number,
    readonly isInitiator: boolean,
    /** When the handshake completed, in ms. */
    readonly created: number,
  ) {
    this.sendKey = asBuffer(keys.sendKey);
    this.receiveKey = asBuffer(keys.receiveKey);
  }

  /** Erases the key material; the keypair can no longer send or receive. */
  wipe(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
  }
}
