// One session's transport keys (paper section 5.4.6) with its counters and replay window.
import { ReplayWindow } from './replay.js';
import { asBuffer } from './noise-crypto.js';
import type { SessionKeys } from './handshake.js';

export class Keypair {
  readonly sendKey: Buffer;
  readonly receiveKey: Buffer;
  /** Next counter to send; also the count of messages sent under this key. */
  sendCounter = 0;
  readonly replay = new ReplayWindow();

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
