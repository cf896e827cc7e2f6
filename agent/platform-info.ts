// What the agent tells the coordinator about itself at registration: its pinhole version (the one
// `pinhole --version` prints) and its OS ("linux", plus the distribution's ID and VERSION_ID from
// /etc/os-release when that file says so). Both are cut to the bounds and characters the
// coordinator accepts (proto/control/schemas.ts AgentOs, AgentVersion): a strange os-release
// never makes a registration fail.
import { readFileSync } from 'node:fs';
import { MAX_AGENT_OS, MAX_AGENT_VERSION } from '../proto/control/schemas.js';

/** The version in package.json (dist/agent/ sits two levels below it); "unknown" if unreadable. */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' && pkg.version !== '' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Printable characters only, at most `max` of them ('' when nothing is left). */
export function boundedText(text: string, max: number): string {
  return text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, '').trim().slice(0, max).trim();
}

/** ID and VERSION_ID of an os-release file's text ("debian 12"); '' when it names neither. */
export function distributionOf(osRelease: string): string {
  const fields = new Map<string, string>();
  for (const line of osRelease.split('\n')) {
    const m = /^([A-Z_]+)=("?)(.*)\2\s*$/.exec(line.trim());
    if (m) fields.set(m[1]!, m[3]!);
  }
  return [fields.get('ID'), fields.get('VERSION_ID')].filter((v) => v).join(' ');
}

export function osDescription(platform: string = process.platform, osReleasePath = '/etc/os-release'): string {
  let distro = '';
  if (platform === 'linux') {
    try {
      distro = distributionOf(readFileSync(osReleasePath, 'utf8').slice(0, 16 * 1024));
    } catch {
      // no os-release (a container without it): the platform alone
    }
  }
  return boundedText(distro ? `${platform} ${distro}` : platform, MAX_AGENT_OS) || 'unknown';
}

/** The fields of a registration request (both always valid for AgentOs/AgentVersion). */
export function platformInfo(): { os: string; version: string } {
  return { os: osDescription(), version: boundedText(packageVersion(), MAX_AGENT_VERSION) || 'unknown' };
}
