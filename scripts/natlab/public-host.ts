// A host plugged straight into the lab internet (relay, STUN/TURN server, coordinator, ...).
import { NamespaceHost, type ProcessRegistry } from './host.js';
import type { InternetLink } from './internet.js';
import type { NetemOptions } from './netem.js';

export interface PublicHostOptions {
  /** How many addresses (default 1). The first is 203.0.113.x, extra ones 192.0.2.x (e.g. coturn's RFC 5780 pair). */
  ips?: number;
  /** Impairment of the host's link to the internet, applied in each direction. */
  netem?: NetemOptions;
}

export class PublicHost extends NamespaceHost {
  link: InternetLink | null = null;

  constructor(name: string, ns: string, ips: readonly string[], registry: ProcessRegistry) {
    super(name, 'public', ns, ips, registry);
  }

  /** Replaces the link impairment (both directions); null or {} removes it. */
  async setNetem(opts: NetemOptions | null): Promise<void> {
    if (!this.link) throw new Error(`public host ${this.name} is not attached yet`);
    await this.link.setNetem(opts);
  }
}
