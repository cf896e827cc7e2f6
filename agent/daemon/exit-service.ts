// The serving side of subnet routers and exit nodes: a decrypted packet from a peer whose
// destination is not this node's own overlay address but inside a route this node serves (its
// netmap self record's approved routes) goes to the userspace NAT, which carries it on ordinary
// host sockets; the NAT's answers go back into the tunnel through the device. No kernel
// forwarding, no nftables. The packet filter (if any) has already passed the packet.
import { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import { maskCidr, parseAddress, parseCidr } from '../../proto/ip/address.js';
import type { SelfNode } from '../../proto/control/schemas.js';
import { OVERLAY_IPV4_RANGE } from '../../proto/control/routes.js';

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

const OVERLAY_V4 = maskCidr(parseCidr(OVERLAY_IPV4_RANGE));

export class ExitService {
  private readonly served = new AllowedIps<true>();
  /** The overlay (100.64.0.0/10 and this network's IPv6 /48, own addresses included): never the NAT's business. */
  private readonly overlay = new AllowedIps<true>();
  private routesKey = '';
  readonly counters: ExitServiceCounters = { toNat: 0 };

  constructor(private readonly nat: NatEngine) {
    this.overlay.insert(OVERLAY_V4, true);
  }

  /** Served routes and own addresses from the netmap's self record; false when it serves nothing. */
  update(self: Pick<SelfNode, 'ipv4' | 'ipv6' | 'routes'>): boolean {
    const routes = self.routes ?? [];
    const key = `${self.ipv4} ${self.ipv6} ${routes.join(',')}`;
    if (key !== this.routesKey) {
      this.routesKey = key;
      this.served.clear();
      for (const r of routes) {
        try {
          this.served.insert(maskCidr(parseCidr(r)), true);
        } catch { /* schema-checked by the control client; a bad one is simply not served */ }
      }
      const v6 = parseAddress(self.ipv6).bytes;
      this.overlay.clear();
      this.overlay.insert(OVERLAY_V4, true);
      this.overlay.insert(maskCidr({ family: 6, bytes: v6, bits: 48 }), true);
    }
    return routes.length > 0;
  }

  /** True if the packet was for a served route and the NAT took it; false: it goes to the TUN. */
  take(buf: Buffer, off: number, len: number): boolean {
    const version = buf[off]! >>> 4;
    if (version === 4) {
      const d = off + 16;
      if (this.overlay.lookupV4(buf, d) !== undefined || this.served.lookupV4(buf, d) === undefined) return false;
    } else {
      const d = off + 24;
      if (this.overlay.lookupV6(buf, d) !== undefined || this.served.lookupV6(buf, d) === undefined) return false;
    }
    this.counters.toNat++;
    this.nat.handle(buf.subarray(off, off + len));
    return true;
  }

  status(): { served: number; toNat: number; nat: unknown } {
    return { served: this.served.size, toNat: this.counters.toNat, nat: this.nat.status() };
  }

  close(): void {
    this.nat.close();
  }
}
