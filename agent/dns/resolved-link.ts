// The systemd-resolved way of pointing the host at MagicDNS: per-link settings on the TUN
// (`resolvectl dns TUN 100.100.100.100`, `resolvectl domain TUN DOMAIN ~SUFFIX...`), so only
// the node domain and split-DNS suffixes come to the agent and the host's other lookups never
// depend on it. The settings vanish with the link, so a crash leaves nothing to restore.
// UNTESTED here: the lab machines do not run systemd-resolved (see docs/dns.md).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { MAGIC_DNS_IPV4 } from '../../proto/dns/dns-config.js';

const run = promisify(execFile);
/** resolved's varlink socket exists only while it runs. */
const RESOLVED_SOCKET = '/run/systemd/resolve/io.systemd.Resolve';
/** resolved's view of the real upstreams (not its 127.0.0.53 stub). */
export const RESOLVED_UPSTREAMS_FILE = '/run/systemd/resolve/resolv.conf';

export function resolvedRunning(): boolean {
  return existsSync(RESOLVED_SOCKET);
}

export async function configureResolvedLink(tun: string, domain: string, routeSuffixes: readonly string[]): Promise<void> {
  await run('resolvectl', ['dns', tun, MAGIC_DNS_IPV4], { timeout: 5000 });
  await run('resolvectl', ['domain', tun, domain, ...routeSuffixes.map((s) => `~${s}`)], { timeout: 5000 });
  await run('resolvectl', ['default-route', tun, 'false'], { timeout: 5000 }).catch(() => undefined);
}

export async function revertResolvedLink(tun: string): Promise<void> {
  await run('resolvectl', ['revert', tun], { timeout: 5000 }).catch(() => undefined);
}
