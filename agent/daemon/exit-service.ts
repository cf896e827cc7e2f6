// The serving side of subnet routers and exit nodes: a decrypted packet from a peer whose
// destination is not this node's own overlay address but inside a route this node serves (its
// netmap self record's approved routes) goes to the userspace NAT, which carries it on ordinary
// host sockets; the NAT's answers go back into the tunnel through the device. No kernel
// forwarding, no nftables. The device drops whatever is neither ours nor served (notForUs).
// Behind the exit routes the NAT reaches the internet only (agent/nat/exit-policy.ts): not this
// host's addresses or networks, not special-purpose ranges, not the routes it learned from peers.
import { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import { maskCidr, parseAddress, parseCidr, type Cidr } from '../../proto/ip/address.js';
import type { SelfNode } from '../../proto/control/schemas.js';
import { OVERLAY_IPV4_RANGE } from '../../proto/control/routes.js';
import type { DestinationPolicy } from '../nat/destination-policy.js';
import { ExitDestinationPolicy, type ExitPolicyStatus } from '../nat/exit-policy.js';
import { readHostAddresses, type HostAddresses } from './host-addresses.js';

/** The userspace NAT as this file uses it (agent/nat/userspace-nat.ts). */
export interface NatEngine {
  /** Takes a packet for an outside destination; copies what it keeps; never throws. */
  handle(packet: Uint8Array): void;
  status(): unknown;
  close(): void;
}

export interface ExitServiceCounters {
  /** Packets handed to the NAT. */
  toNat: number;
}

export interface ExitServiceStatus {
  served: number;
  toNat: number;
  /** The "internet only" rule behind the exit routes. */
  exitPolicy: ExitPolicyStatus;
  nat: unknown;
}

const OVERLAY_V4 = maskCidr(parseCidr(OVERLAY_IPV4_RANGE));

export class ExitService {
  private readonly served = new AllowedIps<true>();
  /** The overlay (100.64.0.0/10 and this network's IPv6 /48, own addresses included): never the NAT's business. */
  private readonly overlay = new AllowedIps<true>();
  private routesKey = '';
  readonly counters: ExitServiceCounters = { toNat: 0 };
  readonly policy = new ExitDestinationPolicy();
  private readonly nat: NatEngine;

  /** `createNat` builds the NAT with this service's destination policy. */
  constructor(createNat: (policy: DestinationPolicy) => NatEngine, private readonly hostAddresses: () => HostAddresses = readHostAddresses) {
    this.overlay.insert(OVERLAY_V4, true);
    this.nat = createNat(this.policy);
    this.refreshHost();
  }

  /**
   * Served routes and own addresses from the netmap's self record, and the routes this node
   * uses through its peers; false when it serves nothing.
   */
  update(self: Pick<SelfNode, 'ipv4' | 'ipv6' | 'routes'>, peerRoutes: readonly Cidr[] = []): boolean {
    const routes = self.routes ?? [];
    const key = `${self.ipv4} ${self.ipv6} ${routes.join(',')}`;
    if (key !== this.routesKey) {
      this.routesKey = key;
      this.served.clear();
      const subnets: Cidr[] = [];
      for (const r of routes) {
        try {
          const c = maskCidr(parseCidr(r));
          this.served.insert(c, true);
          if (c.bits > 0) subnets.push(c);
        } catch { /* schema-checked by the control client; a bad one is simply not served */ }
      }
      this.policy.update({ subnetRoutes: subnets });
      const v6 = parseAddress(self.ipv6).bytes;
      this.overlay.clear();
      this.overlay.insert(OVERLAY_V4, true);
      this.overlay.insert(maskCidr({ family: 6, bytes: v6, bits: 48 }), true);
    }
    this.policy.update({ peerRoutes });
    return routes.length > 0;
  }

  /** Re-reads this host's interface addresses (interfaces come and go). */
  refreshHost(): void {
    const { own, connected } = this.hostAddresses();
    this.policy.update({ ownAddresses: own, connectedNetworks: connected });
  }

  /** True when the packet's destination is inside a route this node serves (and not the overlay). */
  serves(buf: Buffer, off: number): boolean {
    const version = buf[off]! >>> 4;
    if (version === 4) {
      const d = off + 16;
      return this.overlay.lookupV4(buf, d) === undefined && this.served.lookupV4(buf, d) !== undefined;
    }
    const d = off + 24;
    return this.overlay.lookupV6(buf, d) === undefined && this.served.lookupV6(buf, d) !== undefined;
  }

  /** Hands a packet for a served route (serves() said so) to the NAT. */
  take(buf: Buffer, off: number, len: number): void {
    this.counters.toNat++;
    this.nat.handle(buf.subarray(off, off + len));
  }

  status(): ExitServiceStatus {
    return { served: this.served.size, toNat: this.counters.toNat, exitPolicy: this.policy.status(), nat: this.nat.status() };
  }

  close(): void {
    this.nat.close();
  }
}
