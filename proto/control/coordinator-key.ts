// How a coordinator's static key is named where a person or an auth key carries it.
//
//   fingerprint  32 hex digits: the first 16 bytes of SHA-256("pinhole coordinator key" | key)
//   auth key     phk_<prefix 12 hex>_<secret 64 hex>_<fingerprint 32 hex>
//
// The fingerprint in an auth key lets a fresh agent authenticate the coordinator on first contact
// without a certificate authority and without trusting whoever answers (docs/security.md).
import { sha256 } from '@noble/hashes/sha2.js';
import { DecodeError } from '../errors.js';

const LABEL = new TextEncoder().encode('pinhole coordinator key');
const AUTH_KEY = /^phk_([0-9a-f]{12})_([0-9a-f]{64})(?:_([0-9a-f]{32}))?$/;
const FINGERPRINT = /^[0-9a-f]{32}$/;

export function keyFingerprint(key: Uint8Array): string {
  const input = new Uint8Array(LABEL.length + key.length);
  input.set(LABEL, 0);
  input.set(key, LABEL.length);
  return Buffer.from(sha256(input).subarray(0, 16)).toString('hex');
}

export function isFingerprint(text: string): boolean {
  return FINGERPRINT.test(text);
}

export interface AuthKeyParts {
  prefix: string;
  secret: string;
  /** null: a key made before fingerprints (the agent then needs --coordinator-key). */
  fingerprint: string | null;
}

export function parseAuthKey(text: string): AuthKeyParts {
  const m = AUTH_KEY.exec(text.trim());
  if (!m) throw new DecodeError('bad-syntax', 'malformed auth key (expected phk_<12 hex>_<64 hex>_<32 hex>)');
  return { prefix: m[1]!, secret: m[2]!, fingerprint: m[3] ?? null };
}

export function formatAuthKey(prefix: string, secret: string, fingerprint: string): string {
  return `phk_${prefix}_${secret}_${fingerprint}`;
}
