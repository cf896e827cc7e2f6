// Which peer-supplied endpoints (netmap endpoints, call-me-maybe) this node will probe. A peer
// must not be able to make us send disco pings to ourselves, our LAN's link-local or broadcast
// addresses, multicast groups, or into the overlay: only addresses a peer could really be
// reached at pass. The lab's "internet" (192.0.2/24, 198.51.100/24, 203.0.113/24) and LANs
// (198.18/15) are ordinary unicast and pass.
import { networkInterfaces } from 'node:os';
import { tryParseAddress } from '../../proto/ip/address.js';

export type CandidateRefusal =
  | 'port-zero' | 'unspecified' | 'loopback' | 'link-local' | 'multicast' | 'broadcast' | 'reserved' | 'overlay' | 'own-address';

/** Our own interface addresses (and IPv4 subnet broadcasts), as packed-address IP bytes in hex. */
export interface LocalAddressSet {
  own: Set<string>;
  broadcast: Set<string>;
}

/** The overlay prefixes the coordinator allocates from (coordinator/addresses.ts). */
const OVERLAY_V6_PREFIX = [0xfd, 0x7a, 0x1e, 0x57, 0x9a, 0x3c];

/** Why the packed UDP address (family byte 4|6, port u16be at 2, IP at 4) must not be probed, or null. */
export function candidateRefusal(addr: Uint8Array, local: LocalAddressSet, off = 0): CandidateRefusal | null {
  const port = (addr[off + 2]! << 8) | addr[off + 3]!;
  if (port === 0) return 'port-zero';
  let why: CandidateRefusal | null;
  if (addr[off] === 4) why = refuseV4(addr.subarray(off + 4, off + 8));
  else if (addr[off] === 6) why = refuseV6(addr.subarray(off + 4, off + 20));
  else return 'reserved';
  if (why) return why;
  const ip = ipHex(addr, off);
  if (local.broadcast.has(ip)) return 'broadcast';
  if (local.own.has(ip)) return 'own-address';
  return null;
}

function refuseV4(a: Uint8Array): CandidateRefusal | null {
  const [b0, b1] = [a[0]!, a[1]!];
  if (b0 === 0) return 'unspecified'; // 0/8: "this network"
  if (b0 === 127) return 'loopback';
  if (b0 === 169 && b1 === 254) return 'link-local'; // also cloud metadata 169.254.169.254
  if (b0 >= 224 && b0 <= 239) return 'multicast';
  if (a.every((x) => x === 255)) return 'broadcast';
  if (b0 >= 240) return 'reserved';
  if (b0 === 100 && (b1 & 0xc0) === 64) return 'overlay'; // 100.64.0.0/10
  return null;
}

function refuseV6(a: Uint8Array): CandidateRefusal | null {
  if (a.subarray(0, 10).every((x) => x === 0) && a[10] === 0xff && a[11] === 0xff) return refuseV4(a.subarray(12));
  if (a.subarray(0, 15).every((x) => x === 0)) return a[15] === 1 ? 'loopback' : 'unspecified';
  if (a[0] === 0xfe && (a[1]! & 0xc0) === 0x80) return 'link-local'; // fe80::/10
  if (a[0] === 0xff) return 'multicast';
  if (OVERLAY_V6_PREFIX.every((x, i) => a[i] === x)) return 'overlay';
  return null;
}

function ipHex(addr: Uint8Array, off: number): string {
  return Buffer.from(addr.subarray(off + 4, off + (addr[off] === 4 ? 8 : 20))).toString('hex');
}

/** Every address on every local interface (the TUN's too), and each IPv4 subnet's broadcast. */
export function readLocalAddresses(): LocalAddressSet {
  const own = new Set<string>();
  const broadcast = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const ip = ipBytes(a.address.split('%')[0]!);
      if (!ip) continue;
      own.add(Buffer.from(ip).toString('hex'));
      if (ip.length === 4) {
        const mask = ipBytes(a.netmask);
        if (mask && mask.length === 4 && !mask.every((x) => x === 255)) {
          broadcast.add(Buffer.from(ip.map((b, i) => b | (~mask[i]! & 0xff))).toString('hex'));
        }
      }
    }
  }
  return { own, broadcast };
}

function ipBytes(text: string): Uint8Array | null {
  return tryParseAddress(text)?.bytes ?? null;
}
