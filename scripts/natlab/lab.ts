// The lab: owns every namespace and process of one run, and tears them all down exactly once.
import { randomBytes } from 'node:crypto';
import { registerForCleanup, unregisterForCleanup } from './cleanup.js';
import type { Host, ProcessRegistry } from './host.js';
import { Internet } from './internet.js';
import {
  createNamespace, deleteNamespace, deleteNamespaceSync, namespacePids, namespacePidsSync,
} from './namespace.js';
import type { LabProcess } from './process.js';
import { PublicHost, type PublicHostOptions } from './public-host.js';
import { Site, type SiteOptions } from './site.js';
import { isNatBehaviour } from './nat-rules.js';

export interface LabOptions {
  /** A label put into namespace names (letters, digits, '_'; ≤ 12 chars), e.g. the test's name. */
  name?: string;
}

/** The lab was used after destroy(). */
export class LabDestroyedError extends Error {
  constructor(id: string) {
    super(`natlab ${id} has been destroyed`);
    this.name = 'LabDestroyedError';
  }
}

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$/;

function checkName(kind: string, name: string): void {
  if (!NAME_RE.test(name)) throw new Error(`bad ${kind} name ${JSON.stringify(name)}: use letters, digits, '-', '_' (≤ 24 chars)`);
}

export class Lab implements ProcessRegistry {
  /** Random run id; every namespace, bridge and bridge port of this lab carries it. */
  readonly id: string;
  /** Prefix of every namespace name: `nl-<id>` or `nl-<name>-<id>`. */
  readonly prefix: string;
  readonly internet: Internet;
  readonly publicHosts: PublicHost[] = [];
  readonly sites: Site[] = [];
  private readonly reserved = new Set<string>();
  private readonly created: string[] = [];
  private readonly procs = new Set<LabProcess>();
  private destroying: Promise<void> | null = null;
  private nextSite = 1;

  constructor(opts: LabOptions = {}) {
    if (opts.name !== undefined && !/^[A-Za-z0-9_]{1,12}$/.test(opts.name)) throw new Error(`bad lab name ${JSON.stringify(opts.name)}`);
    this.id = randomBytes(5).readUIntBE(0, 5).toString(36).padStart(6, '0').slice(-6);
    this.prefix = opts.name ? `nl-${opts.name}-${this.id}` : `nl-${this.id}`;
    this.internet = new Internet(this.id, this.reserveNamespace('inet'), this);
  }

  /** The internet namespace (holds the bridge). */
  get inetNs(): string { return this.internet.ns; }

  /** Every namespace this lab has created so far. */
  get namespaces(): readonly string[] { return this.created; }

  /** All hosts: public hosts, then per site the CGN, router and inside hosts. */
  get hosts(): Host[] {
    return [...this.publicHosts, ...this.sites.flatMap((s) => [...(s.cgn ? [s.cgn] : []), s.router, ...s.hosts])];
  }

  /** Adds a host on the internet: 203.0.113.10, .11, ... (+ 192.0.2.x per extra address). */
  async addPublicHost(name: string, opts: PublicHostOptions = {}): Promise<PublicHost> {
    this.assertAlive();
    checkName('host', name);
    const count = opts.ips ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 8) throw new Error('ips must be 1..8');
    const ips = [this.internet.allocate('203.0.113')];
    for (let i = 1; i < count; i++) ips.push(this.internet.allocate('192.0.2'));
    const host = new PublicHost(name, this.reserveNamespace(`pub-${name}`), ips, this);
    const port = this.internet.allocatePort();
    this.publicHosts.push(host);
    await this.newNamespace(`pub-${name}`, false);
    host.link = await this.internet.attach(host.ns, 'eth0', port, ips);
    if (opts.netem) await host.setNetem(opts.netem);
    return host;
  }

  /** Adds a site: router (NAT per opts.nat) + LAN 198.18.N.0/24; add inside hosts with site.addHost(). */
  async addSite(name: string, opts: SiteOptions): Promise<Site> {
    this.assertAlive();
    checkName('site', name);
    if (!opts || !isNatBehaviour(opts.nat)) throw new Error(`site ${name}: nat must be one of none, full-cone, restricted-cone, port-restricted-cone, symmetric`);
    if (opts.cgnNat !== undefined && !isNatBehaviour(opts.cgnNat)) throw new Error(`site ${name}: bad cgnNat`);
    const site = new Site(name, this.nextSite++, opts, {
      runId: this.id,
      internet: this.internet,
      registry: this,
      newNamespace: (suffix, forwarding) => this.newNamespace(suffix, forwarding),
      reserveNamespace: (suffix) => this.reserveNamespace(suffix),
    });
    this.sites.push(site);
    await site.build();
    return site;
  }

  /** Human-readable topology: one line per namespace with its addresses. */
  describe(): string {
    const lines = [`natlab ${this.id}: internet ${this.inetNs} (bridge ${this.internet.bridge}, gateway 203.0.113.1 198.51.100.1 192.0.2.1)`];
    for (const h of this.publicHosts) lines.push(`public ${h.name}: ${h.ns}  ${h.ips.join(' ')}`);
    for (const s of this.sites) lines.push(s.describe());
    return lines.join('\n');
  }

  /** Kills every process started in the lab, then deletes its namespaces. Idempotent; never rejects. */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  /** Synchronous, best-effort teardown for process exit. */
  destroySync(): void {
    this.destroying ??= Promise.resolve();
    unregisterForCleanup(this);
    for (const p of this.procs) p.signal('SIGKILL');
    for (const ns of this.created) for (const pid of namespacePidsSync(ns)) kill(pid, 'SIGKILL');
    for (const ns of [...this.created].reverse()) deleteNamespaceSync(ns);
  }

  // --- ProcessRegistry, used by hosts ---

  track(proc: LabProcess): void {
    this.procs.add(proc);
    void proc.exited.then(() => this.procs.delete(proc));
  }

  assertAlive(): void {
    if (this.destroying) throw new LabDestroyedError(this.id);
  }

  // --- internals ---

  /** Claims a namespace name synchronously so concurrent builders cannot collide. */
  reserveNamespace(suffix: string): string {
    const ns = `${this.prefix}-${suffix}`;
    if (this.reserved.has(ns)) throw new Error(`name already used in this lab: ${suffix}`);
    this.reserved.add(ns);
    return ns;
  }

  async newNamespace(suffix: string, forwarding: boolean): Promise<string> {
    this.assertAlive();
    const ns = `${this.prefix}-${suffix}`;
    this.created.push(ns); // before creation: a half-made namespace must still be deleted
    await createNamespace(ns, { forwarding });
    return ns;
  }

  /** @internal used by createLab */
  async start(): Promise<void> {
    registerForCleanup(this);
    this.created.push(this.internet.ns);
    await this.internet.create();
  }

  private async teardown(): Promise<void> {
    unregisterForCleanup(this);
    await Promise.all([...this.procs].map((p) => p.kill('SIGTERM', 1500)));
    // Anything else running in our namespaces (e.g. a daemon a test started with ip netns exec itself).
    let strays = (await Promise.all(this.created.map((ns) => namespacePids(ns)))).flat();
    for (const pid of strays) kill(pid, 'SIGTERM');
    for (let i = 0; i < 10 && strays.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      strays = strays.filter((pid) => alive(pid));
    }
    for (const pid of strays) kill(pid, 'SIGKILL');
    for (const ns of [...this.created].reverse()) {
      try { await deleteNamespace(ns); } catch { deleteNamespaceSync(ns); }
    }
  }
}

function kill(pid: number, sig: NodeJS.Signals): void {
  try { process.kill(pid, sig); } catch { /* gone */ }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** Creates a lab: the internet namespace with its bridge. Torn down on exit/SIGINT/SIGTERM if not destroyed. */
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  const lab = new Lab(opts);
  try {
    await lab.start();
  } catch (e) {
    await lab.destroy();
    throw e;
  }
  return lab;
}
