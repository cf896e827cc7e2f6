// The lab's "internet": one bridge in its own namespace, which also routes to un-NATed site LANs.
import { NamespaceHost, type ProcessRegistry } from './host.js';
import { addAddress, addRoute, createNamespace, createVethPair, ipIn } from './namespace.js';
import { LinkEmulator, type NetemOptions } from './netem.js';

/** The three documentation /24s that make up the lab internet; the bridge owns .1 of each. */
export const INTERNET_PREFIXES = ['203.0.113', '198.51.100', '192.0.2'] as const;
export type InternetPrefix = (typeof INTERNET_PREFIXES)[number];

/** The internet bridge's own MAC (locally administered), fixed so that adding ports never changes it. */
export const BRIDGE_MAC = '02:70:68:00:00:01';

/** A veth from some namespace to the internet bridge: `inner` in that namespace, `port` on the bridge. */
export interface InternetLink {
  ns: string;
  inner: string;
  inetNs: string;
  port: string;
  /** Impairs this link (both directions); null or {} removes the impairment. */
  setNetem(opts: NetemOptions | null): Promise<void>;
}

export class Internet {
  readonly bridge: string;
  private nextHost: Record<InternetPrefix, number> = { '203.0.113': 10, '198.51.100': 10, '192.0.2': 10 };
  private nextPort = 0;

  /** The internet namespace as a host (runs link emulators; handy for tcpdump on the bridge). */
  readonly host: NamespaceHost;

  constructor(readonly runId: string, readonly ns: string, registry: ProcessRegistry) {
    this.bridge = `br-${runId}`;
    this.host = new NamespaceHost('internet', 'public', ns, ['203.0.113.1', '198.51.100.1', '192.0.2.1'], registry);
  }

  /** Creates the namespace and the bridge with the gateway addresses. */
  async create(): Promise<void> {
    await createNamespace(this.ns, { forwarding: true });
    // A fixed MAC: a bridge left to pick its own takes the lowest MAC of its ports, so adding a
    // site could change the gateway's MAC under every host's ARP entry, and traffic through the
    // gateway (the coordinator's replies to a site, say) vanished until ARP refreshed, 30-60 s.
    await ipIn(this.ns, ['link', 'add', this.bridge, 'address', BRIDGE_MAC, 'type', 'bridge']);
    await ipIn(this.ns, ['link', 'set', this.bridge, 'up']);
    for (const p of INTERNET_PREFIXES) await addAddress(this.ns, this.bridge, `${p}.1/24`);
  }

  /** Next free address in one of the internet /24s (synchronous, so concurrent callers never collide). */
  allocate(prefix: InternetPrefix): string {
    const n = this.nextHost[prefix]++;
    if (n > 254) throw new Error(`lab internet ${prefix}.0/24 is full`);
    return `${prefix}.${n}`;
  }

  /** Next bridge port name (carries the run id; ≤ 15 chars). */
  allocatePort(): string {
    return `p${this.runId}-${this.nextPort++}`;
  }

  /**
   * Plugs ns into the bridge as `inner` with the given addresses: on-link routes to all three
   * internet /24s and a default route via the bridge, which routes to un-NATed site LANs.
   */
  async attach(ns: string, inner: string, port: string, ips: readonly string[]): Promise<InternetLink> {
    await createVethPair(ns, inner, this.ns, port);
    await ipIn(this.ns, ['link', 'set', port, 'master', this.bridge]);
    for (const ip of ips) await addAddress(ns, inner, `${ip}/24`);
    for (const p of INTERNET_PREFIXES) await addRoute(ns, `${p}.0/24`, { dev: inner });
    const own = INTERNET_PREFIXES.find((p) => ips[0]!.startsWith(`${p}.`))!;
    await addRoute(ns, 'default', { via: `${own}.1`, dev: inner });
    const emulator = new LinkEmulator(this.host, this.bridge, port, port.slice(1));
    return { ns, inner, inetNs: this.ns, port, setNetem: (opts) => emulator.set(opts) };
  }

  /** Makes an un-NATed LAN reachable from everywhere on the internet. */
  async routeLan(cidr: string, via: string): Promise<void> {
    await addRoute(this.ns, cidr, { via });
  }
}
