// MagicDNS on a managed node: the DNS server on 100.100.100.100 (added to the TUN as a /32),
// its name table kept in step with the netmap (also the one on disk, so names keep resolving
// while the coordinator is away), and the OS pointed at it — systemd-resolved per link when it
// runs, else resolv.conf with a backup — unless `up --accept-dns=false`.
import { join } from 'node:path';
import type { Logger } from 'pino';
import { readFile } from 'node:fs/promises';
import { DEFAULT_DNS_DOMAIN, MAGIC_DNS_IPV4, type DnsConfig } from '../../proto/dns/dns-config.js';
import type { Peer, SelfNode } from '../../proto/control/schemas.js';
import { addAddress } from '../tun/iface.js';
import { DnsServer, newDnsCounters, type DnsCounters } from './dns-server.js';
import { buildNameTable, type NameTable } from './name-table.js';
import { parseResolvConf, ResolvConf } from './resolv-conf.js';
import { configureResolvedLink, RESOLVED_UPSTREAMS_FILE, resolvedRunning, revertResolvedLink } from './resolved-link.js';

export const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
const BACKUP_FILE = 'resolv.conf.pinhole-backup';

export interface MagicDnsOptions {
  /** --resolv-conf (default /etc/resolv.conf). */
  resolvConfPath: string;
  stateDir: string;
  log: Logger;
}

export interface DnsStatusJson {
  domain: string;
  address: string | null;
  /** How the OS is pointed at us: 'resolved' (per link), 'resolv.conf', or 'off' (--accept-dns=false or down). */
  os: 'resolved' | 'resolv.conf' | 'off';
  upstreams: string[];
  routes: DnsConfig['routes'];
  names: number;
  counters: DnsCounters;
}

export class MagicDns {
  readonly counters = newDnsCounters();
  private readonly resolvConf: ResolvConf;
  private table: NameTable | null = null;
  private server: DnsServer | null = null;
  private tun: string | null = null;
  private os: DnsStatusJson['os'] = 'off';
  private osDomain = '';
  private upstreams: string[] = [];
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: MagicDnsOptions) {
    this.resolvConf = new ResolvConf(opts.resolvConfPath, join(opts.stateDir, BACKUP_FILE));
  }

  /** Daemon start: a resolv.conf left rewritten by a crashed agent gets its original back. */
  recover(): Promise<void> {
    return this.serialize(async () => {
      if (await this.resolvConf.restore()) this.opts.log.warn(`restored ${this.resolvConf.path} from the backup a previous run left`);
    });
  }

  setNetmap(dns: DnsConfig | undefined, self: SelfNode, peers: Iterable<Peer>): void {
    const config = dns ?? { domain: DEFAULT_DNS_DOMAIN, routes: [] };
    this.table = buildNameTable(config, [self, ...peers]);
    if (this.os !== 'off' && (this.osDomain !== config.domain)) void this.serialize(() => this.applyOs());
  }

  /** The tunnel is up: serve on 100.100.100.100 and, with acceptDns, point the OS at it. */
  start(tun: string, acceptDns: boolean): Promise<void> {
    return this.serialize(async () => {
      this.tun = tun;
      this.upstreams = await this.readUpstreams();
      await addAddress(tun, `${MAGIC_DNS_IPV4}/32`);
      const server = new DnsServer({ table: () => this.table, upstreams: () => this.upstreams, counters: this.counters });
      await server.listen(MAGIC_DNS_IPV4);
      this.server = server;
      this.opts.log.info(`MagicDNS on ${MAGIC_DNS_IPV4}:53 (domain ${this.table?.domain ?? DEFAULT_DNS_DOMAIN}, upstreams ${this.upstreams.join(', ') || 'none'})`);
      if (acceptDns) await this.applyOs();
    });
  }

  setAcceptDns(acceptDns: boolean): Promise<void> {
    return this.serialize(async () => {
      if (!this.server) return;
      if (acceptDns) await this.applyOs();
      else await this.revertOs();
    });
  }

  /** The tunnel goes: stop serving and give the OS its resolver back. */
  stop(): Promise<void> {
    return this.serialize(async () => {
      this.server?.close();
      this.server = null;
      await this.revertOs();
      this.tun = null;
    });
  }

  status(): DnsStatusJson {
    return {
      domain: this.table?.domain ?? DEFAULT_DNS_DOMAIN, address: this.server ? MAGIC_DNS_IPV4 : null, os: this.os,
      upstreams: this.upstreams, routes: this.table?.routes ?? [], names: this.table?.hosts.size ?? 0, counters: { ...this.counters },
    };
  }

  private async readUpstreams(): Promise<string[]> {
    if (resolvedRunning()) {
      const text = await readFile(RESOLVED_UPSTREAMS_FILE, 'utf8').catch(() => '');
      return parseResolvConf(text).nameservers.filter((n) => n !== MAGIC_DNS_IPV4);
    }
    return this.resolvConf.upstreams();
  }

  private async applyOs(): Promise<void> {
    if (!this.tun) return;
    const domain = this.table?.domain ?? DEFAULT_DNS_DOMAIN;
    try {
      if (resolvedRunning()) {
        await configureResolvedLink(this.tun, domain, (this.table?.routes ?? []).map((r) => r.suffix));
        this.os = 'resolved';
      } else {
        await this.resolvConf.apply(domain);
        this.os = 'resolv.conf';
      }
      this.osDomain = domain;
    } catch (err) {
      this.opts.log.error(`pointing the OS resolver at MagicDNS failed: ${(err as Error).message}`);
    }
  }

  private async revertOs(): Promise<void> {
    const was = this.os;
    this.os = 'off';
    this.osDomain = '';
    try {
      if (was === 'resolved' && this.tun) await revertResolvedLink(this.tun);
      // Always, not only when we know we wrote it: a backup on file means the live file is ours.
      if (await this.resolvConf.restore()) this.opts.log.info(`restored ${this.resolvConf.path}`);
    } catch (err) {
      this.opts.log.error(`restoring ${this.resolvConf.path} failed: ${(err as Error).message}`);
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
