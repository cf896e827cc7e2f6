// The resolv.conf way of pointing the host at MagicDNS (used when systemd-resolved is not
// running): the original file is saved in the state dir, then rewritten in place (it may be a
// bind mount, as under `ip netns exec`, where a rename over it fails) with
// `nameserver 100.100.100.100` and `search DOMAIN`. restore() writes the saved file back;
// `down`, agent exit and the next start after a crash call it.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { writeFileAtomic } from '../daemon/atomic-file.js';
import { MAGIC_DNS_IPV4 } from '../../proto/dns/dns-config.js';

const MARK = '# written by pinhole';

export interface ResolvConfFacts {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** The lines that matter of a resolv.conf (nameserver, search/domain, options). */
export function parseResolvConf(text: string): ResolvConfFacts {
  const facts: ResolvConfFacts = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) facts.nameservers.push(rest[0]);
    else if (key === 'search' || key === 'domain') facts.search = rest;
    else if (key === 'options') facts.options.push(...rest);
  }
  return facts;
}

export function renderResolvConf(domain: string, original: ResolvConfFacts, backupPath: string): string {
  const search = [domain, ...original.search.filter((s) => s !== domain)].slice(0, 6);
  return [
    `${MARK} (MagicDNS); the original is in ${backupPath} and comes back on \`pinhole down\``,
    `nameserver ${MAGIC_DNS_IPV4}`,
    `search ${search.join(' ')}`,
    ...(original.options.length > 0 ? [`options ${original.options.join(' ')}`] : []),
    '',
  ].join('\n');
}

/** The live file was written by a pinhole agent whose backup is not ours (another agent on this host). */
export class ResolvConfBusyError extends Error {
  override readonly name = 'ResolvConfBusyError';
}

export class ResolvConf {
  constructor(readonly path: string, readonly backupPath: string) {}

  /** The file as the host had it: the backup if one is on file (we wrote the live one), else the live file. */
  async original(): Promise<string> {
    const backup = await readFile(this.backupPath, 'utf8').catch(() => null);
    if (backup !== null) return backup;
    return readFile(this.path, 'utf8').catch(() => '');
  }

  /** The host's resolvers (never MagicDNS itself). */
  async upstreams(): Promise<string[]> {
    return parseResolvConf(await this.original()).nameservers.filter((n) => n !== MAGIC_DNS_IPV4);
  }

  async apply(domain: string): Promise<void> {
    const hasBackup = await readFile(this.backupPath, 'utf8').then(() => true, () => false);
    const original = await this.original();
    // Saving another agent's rewrite as "the original" would leave the host on 100.100.100.100 for good.
    if (!hasBackup && original.startsWith(MARK)) throw new ResolvConfBusyError(`${this.path} was written by another pinhole agent; leaving it alone`);
    // The backup first: a crash between the two writes leaves the original on file.
    await writeFileAtomic(this.backupPath, original, 0o644);
    await writeFile(this.path, renderResolvConf(domain, parseResolvConf(original), this.backupPath));
  }

  /** Puts the original back; a no-op when there is no backup. */
  async restore(): Promise<boolean> {
    const backup = await readFile(this.backupPath, 'utf8').catch(() => null);
    if (backup === null) return false;
    await writeFile(this.path, backup);
    await rm(this.backupPath, { force: true });
    return true;
  }
}
