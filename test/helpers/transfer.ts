// Runs scripts/tunnels/tcp-transfer.js between two lab hosts and returns both ends' hashes.
import { join } from 'node:path';
import type { Host } from '../../scripts/natlab/index.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';

const TOOL = join(REPO_ROOT, 'dist', 'scripts', 'tunnels', 'tcp-transfer.js');

export interface TransferResult {
  sent: { bytes: number; sha256: string };
  received: { bytes: number; sha256: string };
}

/** Streams `bytes` from `client` to `server` listening on serverIp:port; `during` runs mid-transfer. */
export async function tcpTransfer(
  server: Host, client: Host, serverIp: string, port: number, bytes: number, during?: () => Promise<void>,
): Promise<TransferResult> {
  const srv = server.spawn(['node', TOOL, 'serve', serverIp, String(port)]);
  try {
    await srv.waitForOutput(/listening/, 10_000);
    const cli = client.spawn(['node', TOOL, 'send', serverIp, String(port), String(bytes)]);
    if (during) await during();
    const [, sb, ss] = (await cli.waitForOutput(/sent (\d+) ([0-9a-f]{64})/, 120_000))!;
    const [, rb, rs] = (await srv.waitForOutput(/received (\d+) ([0-9a-f]{64})/, 30_000))!;
    return { sent: { bytes: Number(sb), sha256: ss! }, received: { bytes: Number(rb), sha256: rs! } };
  } finally {
    if (srv.running) await srv.kill('SIGKILL', 100);
  }
}

export async function ping(host: Host, ip: string, count = 3, timeoutS = 10): Promise<{ ok: boolean; output: string }> {
  const r = await host.exec(['ping', '-c', String(count), '-i', '0.2', '-W', String(timeoutS), ip]);
  return { ok: r.code === 0, output: r.stdout + r.stderr };
}
