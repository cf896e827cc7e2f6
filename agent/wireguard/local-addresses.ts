// The inbound destination check: a decrypted packet from a peer reaches this node's TUN only if
// its destination is one of this node's own addresses (its overlay IPv4 and IPv6 in managed
// mode, its `Address =` entries in static mode). Anything else would be routed onward by the
// host (ip_forward=1) on a peer's say-so; routes this node serves go to its NAT instead
// (the device's inbound hook). The native data path does the same lookup on a mirror of this
// table (fast-path.ts → fast_routes.c); test/unit/destination-check.test.ts compares the two.
import { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import { formatCidr, type Cidr } from '../../proto/ip/address.js';

export class LocalAddresses {
  private readonly table = new AllowedIps<true>();
  private key = '';
  /** Called after a change (the device re-mirrors the table into the native path). */
  onChange: (() => void) | undefined;

  constructor(addresses: readonly Cidr[] = []) {
    this.set(addresses);
  }

  /** This node's addresses, each taken as a host (/32, /128): a prefix length on an address is its network's, not ours. */
  set(addresses: readonly Cidr[]): void {
    const hosts = addresses.map((a) => ({ family: a.family, bytes: Uint8Array.from(a.bytes), bits: a.family === 4 ? 32 : 128 }));
    const key = hosts.map(formatCidr).sort().join(',');
    if (key === this.key) return;
    this.key = key;
    this.table.clear();
    for (const h of hosts) this.table.insert(h, true);
    this.onChange?.();
  }

  /** The addresses, as "ADDR/32" / "ADDR/128". */
  list(): string[] {
    return this.table.entries().map((e) => formatCidr(e.cidr));
  }

  /**
   * True when the destination of the IP packet at buf[off, off+len) is one of ours. The caller
   * has checked the IP header (ipPacketLength > 0), so version and length are sound.
   */
  hasDestination(buf: Uint8Array, off: number, len: number): boolean {
    const version = buf[off]! >>> 4;
    if (version === 4) return len >= 20 && this.table.lookupV4(buf, off + 16) !== undefined;
    if (version === 6) return len >= 40 && this.table.lookupV6(buf, off + 24) !== undefined;
    return false;
  }

  /** The native mirror: v4 entries of 9 bytes and v6 entries of 21 (address, bits, u32 LE 0), as setRoutes takes them. */
  packed(): { v4: Uint8Array; v6: Uint8Array } {
    const entries = this.table.entries();
    const pack = (family: 4 | 6): Uint8Array => {
      const list = entries.filter((e) => e.cidr.family === family);
      const len = family === 4 ? 4 : 16;
      const out = new Uint8Array(list.length * (len + 5));
      list.forEach((e, i) => {
        out.set(e.cidr.bytes, i * (len + 5));
        out[i * (len + 5) + len] = e.cidr.bits;
      });
      return out;
    };
    return { v4: pack(4), v6: pack(6) };
  }
}
