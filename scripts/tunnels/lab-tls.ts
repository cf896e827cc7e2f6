// A self-signed certificate for a lab server's address (openssl, P-256, two days), as an
// operator's own certificate would be: processes that talk to the server trust it through
// NODE_EXTRA_CA_CERTS (tlsEnv), as docs/security.md tells operators to.
import { execFile } from 'node:child_process';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

export interface LabCertificate { cert: string; key: string }

/** Writes cert.pem and key.pem (0600) into `dir` for a server at `ip`. */
export async function makeLabCertificate(dir: string, ip: string): Promise<LabCertificate> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
    '-subj', `/CN=${ip}`, '-addext', `subjectAltName=IP:${ip}`, '-keyout', key, '-out', cert], { timeout: 20_000 });
  await chmod(key, 0o600);
  return { cert, key };
}

/** The environment that makes a Node.js process trust `cert` (empty without one). */
export function tlsEnv(cert: LabCertificate | undefined): Record<string, string> {
  return cert ? { NODE_EXTRA_CA_CERTS: cert.cert } : {};
}
