// An exit node gives its clients the internet, nothing more. A destination that only the exit
// routes (0.0.0.0/0, ::/0) cover is refused when it is one of the exit node's own addresses, in
// a network it is directly connected to, in a special-purpose range (private, CGNAT/overlay,
// loopback, link-local, ULA, cloud metadata), or in a route the exit node itself learned from
// its peers: otherwise a client would borrow the exit node's position and privileges. A network
// the exit node also serves as an approved subnet route is reachable as that subnet route.
// Addresses are matched by longest prefix; refusals are counted by reason.
import { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import { formatCidr, maskCidr, parseCidr, type Cidr } from '../../proto/ip/address.js';
import type { DestinationPolicy } from './destination-policy.js';

export type ExitRefusal = 'ownAddress' | 'connectedNetwork' | 'specialPurpose' | 'peerRoute';

/**
 * Not the internet, wherever the exit node stands. The documentation ranges (192.0.2/24,
 * 198.51.100/24, 203.0.113/24) and the benchmark range 198.18/15 are left out on purpose: the
 * lab's internet and site LANs use them, and the connected-network rule covers a LAN anyway.
 */
export const SPECIAL_PURPOSE_RANGES: readonly string[] = [
  '0.0.0.0/8', // "this network"
  '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', // RFC 1918
  '100.64.0.0/10', // CGNAT, and the overlay
  '127.0.0.0/8', // loopback
  '169.254.0.0/16', // link-local, cloud metadata 169.254.169.254
  '168.63.129.16/32', // Azure's host endpoint (metadata, DNS, health)
  '192.0.0.0/24', // IETF protocol assignments
  '224.0.0.0/4', '240.0.0.0/4', // multicast, reserved and broadcast
  '::/128', '::1/128',
  '::ffff:0:0/96', // IPv4-mapped: the IPv4 rules must not be dodged through a v6 socket
  '64:ff9b:1::/48', // local-use NAT64 (RFC 8215): may map onto private IPv4
  'fc00::/7', // ULA, the overlay's /48, AWS metadata fd00:ec2::254
  'fe80::/10', // link-local
  'ff00::/8', // multicast
];

export interface ExitPolicyInputs {
  /** Approved subnet routes this node serves: reachable, as subnet routes. */
  subnetRoutes: readonly Cidr[];
  /** Every address of every interface of the exit node (taken as /32, /128). */
  ownAddresses: readonly Cidr[];
  /** The networks of those interfaces (masked). */
  connectedNetworks: readonly Cidr[];
  /** Routes the exit node uses through its peers (accepted subnet routes). */
  peerRoutes: readonly Cidr[];
}

export interface ExitPolicyStatus {
  /** Refused packets by reason. */
  refused: Record<ExitRefusal, number>;
  /** Prefixes refused beyond the special-purpose set: own addresses, connected networks, peer routes. */
  ownAddresses: string[];
  connectedNetworks: string[];
  peerRoutes: string[];
}

const SPECIAL = SPECIAL_PURPOSE_RANGES.map((r) => maskCidr(parseCidr(r)));

export class ExitDestinationPolicy implements DestinationPolicy {
  readonly refused: Record<ExitRefusal, number> = { ownAddress: 0, connectedNetwork: 0, specialPurpose: 0, peerRoute: 0 };
  private readonly subnets = new AllowedIps<true>();
  private readonly blocked = new AllowedIps<ExitRefusal>();
  private inputs: ExitPolicyInputs = { subnetRoutes: [], ownAddresses: [], connectedNetworks: [], peerRoutes: [] };
  private key = '';

  constructor(inputs?: Partial<ExitPolicyInputs>) {
    this.update(inputs ?? {});
  }

  /** Replaces the inputs given (the rest stay); rebuilds the tables only if something changed. */
  update(inputs: Partial<ExitPolicyInputs>): void {
    const next = { ...this.inputs, ...inputs };
    const key = [next.subnetRoutes, next.ownAddresses, next.connectedNetworks, next.peerRoutes]
      .map((list) => list.map(formatCidr).sort().join(',')).join(' ');
    this.inputs = next;
    if (key === this.key) return;
    this.key = key;
    this.rebuild();
  }

  refuses(buf: Uint8Array, off: number, version: 4 | 6): boolean {
    const lookup = <T>(t: AllowedIps<T>): T | undefined => (version === 4 ? t.lookupV4(buf, off) : t.lookupV6(buf, off));
    if (lookup(this.subnets) !== undefined) return false;
    const why = lookup(this.blocked);
    if (why === undefined) return false;
    this.refused[why]++;
    return true;
  }

  status(): ExitPolicyStatus {
    const list = (l: readonly Cidr[]): string[] => l.map(formatCidr);
    return {
      refused: { ...this.refused },
      ownAddresses: list(this.inputs.ownAddresses),
      connectedNetworks: list(this.inputs.connectedNetworks),
      peerRoutes: list(this.inputs.peerRoutes),
    };
  }

  private rebuild(): void {
    const { subnetRoutes, ownAddresses, connectedNetworks, peerRoutes } = this.inputs;
    this.subnets.clear();
    for (const r of subnetRoutes) if (r.bits > 0) this.subnets.insert(maskCidr(r), true);
    this.blocked.clear();
    // Broadest first: a more specific prefix of another kind replaces the same prefix's reason.
    for (const c of SPECIAL) this.blocked.insert(c, 'specialPurpose');
    for (const r of peerRoutes) if (r.bits > 0) this.blocked.insert(maskCidr(r), 'peerRoute');
    for (const n of connectedNetworks) if (n.bits > 0) this.blocked.insert(maskCidr(n), 'connectedNetwork');
    for (const a of ownAddresses) this.blocked.insert({ family: a.family, bytes: a.bytes, bits: a.family === 4 ? 32 : 128 }, 'ownAddress');
  }
}
