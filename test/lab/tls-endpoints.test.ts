// Operators who front the coordinator and the relay with their own certificate: both serve HTTPS
// with --tls-cert/--tls-key (a self-signed certificate made here with openssl), the admin CLI runs
// its control channel inside TLS when it trusts the certificate and refuses with one line when it
// does not, and the relay announces wss://.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { startRelayProcess, type RelayProcess } from '../helpers/relay-process.js';

const run = promisify(execFile);

describe('HTTPS with an operator\'s certificate', { timeout: 60_000 }, () => {
  let dir: string;
  let cert: string;
  let key: string;
  let coord: CoordinatorProcess;
  let relay: RelayProcess | null = null;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pinhole-tls-'));
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    coord = await CoordinatorProcess.start({ flags: ['--tls-cert', cert, '--tls-key', key] });
  });
  after(async () => {
    await relay?.stop('SIGKILL');
    await coord?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const admin = (env: Record<string, string>, url = coord.url) => run(process.execPath, [PINHOLE_BIN, 'admin', '--coordinator', url,
    '--coordinator-key', coord.fingerprint, '--token-file', coord.tokenFile, 'authkey', 'create'], { env: { ...process.env, ...env } })
    .then((r) => ({ code: 0, ...r }), (e: { code: number; stdout: string; stderr: string }) => e);

  test('the coordinator serves https; the admin CLI trusts it through NODE_EXTRA_CA_CERTS, and refuses an untrusted one in one line', async () => {
    assert.match(coord.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const ok = await admin({ NODE_EXTRA_CA_CERTS: cert });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /^phk_[0-9a-f]{12}_[0-9a-f]{64}_[0-9a-f]{32}$/m);
    const untrusted = await admin({});
    assert.notEqual(untrusted.code, 0);
    assert.equal(untrusted.stderr.trim().split('\n').length, 1, untrusted.stderr);
    assert.match(untrusted.stderr, /cannot reach the coordinator .*(SELF_SIGNED|certificate)/i);
    const plain = await admin({ NODE_EXTRA_CA_CERTS: cert }, coord.url.replace('https:', 'http:'));
    assert.notEqual(plain.code, 0, 'plain HTTP to the TLS port gets nothing');
  });

  test('the relay serves wss:// with the same flags', async () => {
    relay = await startRelayProcess(['--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--open', '--tls-cert', cert, '--tls-key', key]);
    assert.match(relay.url, /^wss:\/\/127\.0\.0\.1:\d+\/relay$/);
    const health = await run('curl', ['-sS', '--cacert', cert, relay.url.replace('wss:', 'https:').replace('/relay', '/healthz')]);
    assert.equal(JSON.parse(health.stdout).relayKey, Buffer.from(relay.keyBytes).toString('base64'));
  });
});
