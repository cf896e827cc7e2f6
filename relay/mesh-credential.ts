// The mesh credential on disk (--mesh-key-file): one line of at least 32 characters (e.g.
// `head -c 32 /dev/urandom | base64`), the same file on every relay of the mesh. A file that
// group or others may read is refused, as the relay's key file is.
import { readFileSync, statSync } from 'node:fs';

export class MeshCredentialError extends Error {
  override readonly name = 'MeshCredentialError';
}

export const MIN_CREDENTIAL_CHARS = 32;

export function readMeshCredential(path: string): Uint8Array {
  const st = statSync(path);
  if (!st.isFile()) throw new MeshCredentialError(`--mesh-key-file: ${path} is not a regular file`);
  if ((st.mode & 0o077) !== 0) {
    throw new MeshCredentialError(`--mesh-key-file: ${path} is readable by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 ${path}`);
  }
  const text = readFileSync(path, 'utf8').trim();
  if (text.length < MIN_CREDENTIAL_CHARS || /\s/.test(text)) {
    throw new MeshCredentialError(`--mesh-key-file: ${path} must hold one line of at least ${MIN_CREDENTIAL_CHARS} characters (e.g. head -c 32 /dev/urandom | base64)`);
  }
  return new TextEncoder().encode(text);
}
