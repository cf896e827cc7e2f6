// The coordinator's static keys: the current one, and during a rotation the next one. Both open
// control channels while a rotation runs; channels on the current key learn the next one in the
// handshake's welcome and move to it (docs/security.md, "Rotating the coordinator key").
import { keyFingerprint } from '../proto/control/coordinator-key.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../proto/wireguard/keys.js';
import { ConflictError } from './errors.js';
import type { ControlStore } from './store/interface.js';

export interface StaticKeyPair {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** base64, as in netmaps and status. */
  text: string;
  fingerprint: string;
}

function pairOf(privateKey: Uint8Array): StaticKeyPair {
  const publicKey = publicKeyFromPrivate(privateKey);
  return { privateKey, publicKey, text: encodeKey(publicKey), fingerprint: keyFingerprint(publicKey) };
}

export class ServerKeys {
  private constructor(private readonly store: ControlStore, private cur: StaticKeyPair, private nxt: StaticKeyPair | null) {}

  /**
   * Loads the keys, generating the first one on a fresh database. Coordinators starting together
   * on one fresh database all end up with the key the first of them stored.
   */
  static async open(store: ControlStore, current: string | null, next: string | null): Promise<{ keys: ServerKeys; generated: boolean }> {
    if (current) return { keys: new ServerKeys(store, pairOf(decodeKey(current)), next ? pairOf(decodeKey(next)) : null), generated: false };
    const generated = encodeKey(generatePrivateKey());
    const stored = await store.initServerKey(generated);
    return { keys: new ServerKeys(store, pairOf(decodeKey(stored)), null), generated: stored === generated };
  }

  get current(): StaticKeyPair { return this.cur; }
  get next(): StaticKeyPair | null { return this.nxt; }

  /** What message 1 may be addressed to, current first. */
  statics(): StaticKeyPair[] {
    return this.nxt ? [this.cur, this.nxt] : [this.cur];
  }

  /** The fingerprint new auth keys carry: the key that will outlive a running rotation. */
  authKeyFingerprint(): string {
    return (this.nxt ?? this.cur).fingerprint;
  }

  /**
   * Another replica started or finished a rotation (the replica feed read the stored keys): take
   * them. Returns the public key whose channels must reopen (to learn the next key, or to leave
   * the old one), as after a local rotate or finish; null when nothing changed.
   */
  adopt(current: string, next: string | null): string | null {
    const cur = pairOf(decodeKey(current));
    const nxt = next ? pairOf(decodeKey(next)) : null;
    if (cur.text === this.cur.text && (nxt?.text ?? null) === (this.nxt?.text ?? null)) return null;
    const reopen = this.cur.text;
    this.cur = cur;
    this.nxt = nxt;
    return reopen;
  }

  /** Starts a rotation: a next key that both answers handshakes and is announced to callers. */
  async rotate(): Promise<void> {
    if (this.nxt) throw new ConflictError('a key rotation is already running: finish it first');
    const priv = generatePrivateKey();
    await this.store.saveServerKeys(encodeKey(this.cur.privateKey), encodeKey(priv));
    this.nxt = pairOf(priv);
  }

  /** Ends a rotation: the next key becomes the only key. */
  async finish(): Promise<void> {
    if (!this.nxt) throw new ConflictError('no key rotation is running: start one with rotate');
    await this.store.saveServerKeys(encodeKey(this.nxt.privateKey), null);
    this.cur.privateKey.fill(0);
    this.cur = this.nxt;
    this.nxt = null;
  }
}
