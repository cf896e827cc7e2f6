// A site: a router namespace (optionally behind a carrier-grade NAT) with a LAN of inside hosts.
import { NamespaceHost, type Host, type ProcessRegistry } from './host.js';
import type { Internet, InternetLink } from './internet.js';
import { addAddress, addRoute, createVethPair, ipIn, runIn } from './namespace.js';
import { applyRouterRules, type NatBehaviour, type ResolvedForward } from './nat-rules.js';
import { isNoImpairment, type NetemOptions } from './netem.js';

/** A router port forward: WAN `proto/port` → `to:toPort` (toPort defaults to port). */
export interface PortForward {
  proto: 'udp' | 'tcp';
  port: number;
  /** Inside host or its address (e.g. '198.18.1.2'); default the site's first host, 198.18.N.2. */
  to?: string | Host;
  toPort?: number;
}

export interface SiteOptions {
  nat: NatBehaviour;
  /** Put the site's router behind a carrier-grade NAT (CGN segment 198.18.(100+N).0/24). */
  doubleNat?: boolean;
  /** Behaviour of the carrier-grade NAT; default 'port-restricted-cone' (RFC 6888 asks CGNs for EIM). */
  cgnNat?: NatBehaviour;
  /** The site router drops every outbound UDP packet (TCP still works). */
  udpBlocked?: boolean;
  /** Impairment of the site's link to the internet, applied in each direction. */
  netem?: NetemOptions;
  forwards?: readonly PortForward[];
}

/** What a site needs from its lab (kept narrow so site.ts does not import lab.ts). */
export interface SiteContext {
  runId: string;
  internet: Internet;
  registry: ProcessRegistry;
  /** Registers and creates a namespace named after the run; returns its name. */
  newNamespace(suffix: string, forwarding: boolean): Promise<string>;
  /** The namespace name newNamespace(suffix) would create (reserved synchronously). */
  reserveNamespace(suffix: string): string;
}

const WAN = 'wan0';
const LAN = 'lan0';

export class Site {
  readonly lan: string;
  readonly gateway: string;
  /** The site's address on the lab internet (the CGN's, with doubleNat). */
  readonly wanIp: string;
  /** The site's own router (the home router, with doubleNat). */
  readonly router: Host;
  /** The carrier-grade NAT in front of the router, with doubleNat. */
  readonly cgn: Host | null;
  readonly hosts: Host[] = [];
  readonly forwards: ResolvedForward[] = [];
  readonly nat: NatBehaviour;
  readonly cgnNat: NatBehaviour | null;
  readonly udpBlocked: boolean;
  private wanLink: InternetLink | null = null;
  private nextHost = 2;
  private netem: NetemOptions | null = null;

  /** index N gives LAN 198.18.N.0/24 (and CGN segment 198.18.(100+N).0/24). */
  constructor(readonly name: string, readonly index: number, private readonly opts: SiteOptions, private readonly ctx: SiteContext) {
    if (index < 1 || index > 99) throw new Error('a lab holds at most 99 sites');
    this.nat = opts.nat;
    this.cgnNat = opts.doubleNat ? opts.cgnNat ?? 'port-restricted-cone' : null;
    this.udpBlocked = !!opts.udpBlocked;
    this.lan = `198.18.${index}.0/24`;
    this.gateway = `198.18.${index}.1`;
    this.wanIp = ctx.internet.allocate('198.51.100');
    const routerWan = opts.doubleNat ? this.cgnInside(2) : this.wanIp;
    this.router = new NamespaceHost('router', 'router', ctx.reserveNamespace(`${name}-router`), [routerWan, this.gateway], ctx.registry);
    this.cgn = opts.doubleNat
      ? new NamespaceHost('cgn', 'cgn', ctx.reserveNamespace(`${name}-cgn`), [this.wanIp, this.cgnInside(1)], ctx.registry)
      : null;
  }

  /** Address .host on the CGN segment. */
  private cgnInside(host: number): string {
    return `198.18.${100 + this.index}.${host}`;
  }

  /** Creates the namespaces, links, addresses, routes and NAT rules. */
  async build(): Promise<void> {
    const { internet } = this.ctx;
    await this.ctx.newNamespace(`${this.name}-router`, true);
    const edge = this.cgn ?? this.router; // the namespace facing the internet
    if (this.cgn) await this.ctx.newNamespace(`${this.name}-cgn`, true);
    this.wanLink = await internet.attach(edge.ns, WAN, internet.allocatePort(), [this.wanIp]);
    if (this.cgn) {
      await createVethPair(this.cgn.ns, LAN, this.router.ns, WAN);
      await addAddress(this.cgn.ns, LAN, `${this.cgnInside(1)}/24`);
      await addAddress(this.router.ns, WAN, `${this.cgnInside(2)}/24`);
      await addRoute(this.router.ns, 'default', { via: this.cgnInside(1) });
      // only needed when the home router does not NAT, harmless otherwise
      await addRoute(this.cgn.ns, this.lan, { via: this.cgnInside(2) });
    }
    // A fixed MAC, as for the internet bridge: adding a host must not change the gateway's MAC.
    const mac = `02:70:68:01:${(this.index >> 8).toString(16).padStart(2, '0')}:${(this.index & 0xff).toString(16).padStart(2, '0')}`;
    await ipIn(this.router.ns, ['link', 'add', LAN, 'address', mac, 'type', 'bridge']);
    await ipIn(this.router.ns, ['link', 'set', LAN, 'up']);
    await addAddress(this.router.ns, LAN, `${this.gateway}/24`);
    for (const f of this.opts.forwards ?? []) this.forwards.push(this.resolve(f));
    await this.applyRules();
    if (this.cgn && this.cgnNat === 'none') await internet.routeLan(`198.18.${100 + this.index}.0/24`, this.wanIp);
    if (this.nat === 'none' && (!this.cgn || this.cgnNat === 'none')) await internet.routeLan(this.lan, this.wanIp);
    if (this.opts.netem) await this.setNetem(this.opts.netem);
  }

  /** Adds an inside host 198.18.N.2, .3, ... on the site LAN, default route via the router. */
  async addHost(name: string): Promise<Host> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,23}$/.test(name)) throw new Error(`bad host name ${JSON.stringify(name)}`);
    const k = this.nextHost++;
    if (k > 254) throw new Error(`site ${this.name} LAN is full`);
    const ip = `198.18.${this.index}.${k}`;
    const host = new NamespaceHost(name, 'inside', this.ctx.reserveNamespace(`${this.name}-${name}`), [ip], this.ctx.registry);
    await this.ctx.newNamespace(`${this.name}-${name}`, false);
    const port = `l${this.ctx.runId}-${k}`;
    await createVethPair(host.ns, 'eth0', this.router.ns, port);
    await ipIn(this.router.ns, ['link', 'set', port, 'master', LAN]);
    await addAddress(host.ns, 'eth0', `${ip}/24`);
    await addRoute(host.ns, 'default', { via: this.gateway });
    this.hosts.push(host);
    return host;
  }

  /**
   * Connects `host` (an inside host of another site) to this site's LAN as a second uplink
   * `ifName`, with an address here but the link down and no route: a laptop that can move from
   * its first site to this one (roaming tests). Returns its address on this LAN.
   */
  async addUplink(host: Host, ifName: string): Promise<string> {
    const k = this.nextHost++;
    if (k > 254) throw new Error(`site ${this.name} LAN is full`);
    const ip = `198.18.${this.index}.${k}`;
    const port = `l${this.ctx.runId}-${k}`;
    await createVethPair(host.ns, ifName, this.router.ns, port);
    await ipIn(this.router.ns, ['link', 'set', port, 'master', LAN]);
    await addAddress(host.ns, ifName, `${ip}/24`);
    await ipIn(host.ns, ['link', 'set', ifName, 'down']);
    return ip;
  }

  /** Adds a port forward on the router (and through the CGN with doubleNat) and reloads the rules. */
  async addForward(f: PortForward): Promise<void> {
    this.forwards.push(this.resolve(f));
    await this.applyRules();
  }

  /** Replaces the WAN link impairment (both directions); null or {} removes it. */
  async setNetem(opts: NetemOptions | null): Promise<void> {
    const link = this.wanLink;
    if (!link) throw new Error(`site ${this.name} is not built yet`);
    await link.setNetem(opts);
    this.netem = isNoImpairment(opts) ? null : opts;
  }

  /** Forgets every NAT mapping (`conntrack -F` on the router and the CGN): inside hosts get new ports. */
  async flushConntrack(): Promise<void> {
    for (const r of [this.router, this.cgn]) if (r) await runIn(r.ns, ['conntrack', '-F']);
  }

  /** One line per node, for logs and the CLI. */
  describe(): string {
    const flags = [
      this.nat,
      this.cgn ? `behind CGN (${this.cgnNat})` : '',
      this.udpBlocked ? 'UDP blocked' : '',
      this.netem ? `netem ${JSON.stringify(this.netem)}` : '',
      ...this.forwards.map((f) => `fwd ${f.proto}/${f.port}->${f.toIp}:${f.toPort}`),
    ].filter(Boolean);
    const lines = [`site ${this.name}: wan ${this.wanIp}, lan ${this.lan} [${flags.join(', ')}]`];
    if (this.cgn) lines.push(`  cgn     ${this.cgn.ns}  ${this.cgn.ips.join(' ')}`);
    lines.push(`  router  ${this.router.ns}  ${this.router.ips.join(' ')}`);
    for (const h of this.hosts) lines.push(`  ${h.name.padEnd(7)} ${h.ns}  ${h.ip}`);
    return lines.join('\n');
  }

  private resolve(f: PortForward): ResolvedForward {
    const toIp = f.to === undefined ? `198.18.${this.index}.2` : typeof f.to === 'string' ? f.to : f.to.ip;
    const toPort = f.toPort ?? f.port;
    if (f.proto !== 'udp' && f.proto !== 'tcp') throw new Error(`forward proto must be udp or tcp`);
    for (const p of [f.port, toPort]) if (!Number.isInteger(p) || p < 1 || p > 65535) throw new Error(`bad forward port ${p}`);
    if (!toIp.startsWith(`198.18.${this.index}.`)) throw new Error(`forward target ${toIp} is not on site ${this.name}'s LAN ${this.lan}`);
    return { proto: f.proto, port: f.port, toIp, toPort };
  }

  private async applyRules(): Promise<void> {
    const coneTarget = `198.18.${this.index}.2`;
    await applyRouterRules(this.router.ns, { nat: this.nat, wanIf: WAN, coneTarget, forwards: this.forwards, udpBlocked: this.udpBlocked });
    if (this.cgn) {
      // the CGN passes forwarded ports on, unchanged, to the home router's WAN address
      const through = this.forwards.map((f) => ({ proto: f.proto, port: f.port, toIp: this.cgnInside(2), toPort: f.port }));
      await applyRouterRules(this.cgn.ns, { nat: this.cgnNat!, wanIf: WAN, coneTarget: this.cgnInside(2), forwards: through, udpBlocked: false });
    }
  }
}
