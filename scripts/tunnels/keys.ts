// Fresh key material for lab peers (pinhole's own generator; wg accepts these keys).
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { randomBytes } from 'node:crypto';

export interface KeyPairText { privateKey: string; publicKey: string }

export function newKeyPair(): KeyPairText {
  const priv = generatePrivateKey();
  return { privateKey: encodeKey(priv), publicKey: encodeKey(publicKeyFromPrivate(priv)) };
}

export function newPresharedKey(): string {
  return randomBytes(32).toString('base64');
}

/** A short random id for unique interface names in this run. */
export function runId(): string {
  return randomBytes(3).toString('hex');
}
