// The relay's static key on disk: one line, the base64 X25519 private key (the format of
// `pinhole genkey` and `wg genkey`). Created with mode 0600 when missing; a file that group or
// others may read, or that holds anything else, is refused.
import { closeSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../proto/wireguard/keys.js';

export class RelayKeyFileError extends Error {
  override readonly name = 'RelayKeyFileError';
}

export interface RelayKey {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  /** True when this call wrote a new key. */
  created: boolean;
}

export function loadOrCreateRelayKey(path: string): RelayKey {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new RelayKeyFileError(`--key-file: cannot create ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return readRelayKey(path);
  }
  const privateKey = generatePrivateKey();
  try {
    writeSync(fd, `${encodeKey(privateKey)}\n`);
  } finally {
    closeSync(fd);
  }
  return { privateKey, publicKey: publicKeyFromPrivate(privateKey), created: true };
}

function readRelayKey(path: string): RelayKey {
  const st = statSync(path);
  if (!st.isFile()) throw new RelayKeyFileError(`--key-file: ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new RelayKeyFileError(`--key-file: ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 ${path}`);
  }
  let privateKey: Uint8Array;
  try {
    privateKey = decodeKey(readFileSync(path, 'utf8').trim());
  } catch {
    throw new RelayKeyFileError(`--key-file: ${path} does not hold a key (one base64 X25519 private key, as \`pinhole genkey\` writes)`);
  }
  return { privateKey, publicKey: publicKeyFromPrivate(privateKey), created: false };
}
