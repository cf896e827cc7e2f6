// nftables rulesets for the lab's NAT routers (recipes verified in docs: shared/natlab.md).
import { runIn } from './namespace.js';

/** RFC 4787 behaviour of a site router (RFC 3489 names). */
export type NatBehaviour = 'none' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric';

export const NAT_BEHAVIOURS: readonly NatBehaviour[] = ['none', 'full-cone', 'restricted-cone', 'port-restricted-cone', 'symmetric'];

export function isNatBehaviour(s: string): s is NatBehaviour {
  return (NAT_BEHAVIOURS as readonly string[]).includes(s);
}

/** A router port forward: WAN `proto/port` is DNATed to `toIp:toPort`. */
export interface ResolvedForward {
  proto: 'udp' | 'tcp';
  port: number;
  toIp: string;
  toPort: number;
}

export interface RouterRuleOptions {
  nat: NatBehaviour;
  /** The router's internet-facing interface. */
  wanIf: string;
  /** Where full/restricted cone deliver unsolicited UDP to port P (as P; the site's first inside host). */
  coneTarget: string;
  forwards: readonly ResolvedForward[];
  /** Drop every UDP packet the router would forward out of wanIf. */
  udpBlocked: boolean;
  /** How long a restricted cone remembers a contacted address. */
  contactedTimeoutS?: number;
}

export const NAT_TABLE = 'natlab';

/** The complete `table ip natlab` for a router, as nft -f input that atomically replaces the old one. */
export function routerRuleset(o: RouterRuleOptions): string {
  const wan = JSON.stringify(o.wanIf);
  const restricted = o.nat === 'restricted-cone';
  const cone = o.nat === 'full-cone' || restricted;
  const pre: string[] = [];
  for (const f of o.forwards) pre.push(`iifname ${wan} ${f.proto} dport ${f.port} dnat to ${f.toIp}:${f.toPort}`);
  // Restricted cone: unsolicited UDP to port P only from an address the mapping P has contacted.
  // The set is keyed per mapping (port . address): one router-wide address set (natlab.md's first
  // recipe) lets any mapping's contact open every other mapping, which coturn then reports as EIF.
  if (cone) pre.push(`iifname ${wan} udp dport 1024-65535 ${restricted ? 'udp dport . ip saddr @contacted ' : ''}dnat to ${o.coneTarget}`);
  const post: string[] = [];
  if (o.nat !== 'none') post.push(`oifname ${wan} masquerade${o.nat === 'symmetric' ? ' fully-random' : ''}`);
  const fwd: string[] = [];
  if (o.udpBlocked) fwd.push(`oifname ${wan} meta l4proto udp drop`);
  if (restricted) fwd.push(`oifname ${wan} ip saddr ${o.coneTarget} update @contacted { udp sport . ip daddr timeout ${o.contactedTimeoutS ?? 60}s }`);
  // Without this, an early unsolicited packet leaves an unreplied conntrack entry that later
  // steals the inside host's port and makes a cone NAT look symmetric (see natlab.md).
  const input = [`iifname ${wan} ct state new drop`];
  const chain = (name: string, hook: string, prio: string, type: string, rules: string[]) =>
    `  chain ${name} {\n    type ${type} hook ${hook} priority ${prio}; policy accept;\n${rules.map((r) => `    ${r}\n`).join('')}  }\n`;
  return [
    `add table ip ${NAT_TABLE}`,
    `delete table ip ${NAT_TABLE}`,
    `table ip ${NAT_TABLE} {`,
    restricted ? '  set contacted { type inet_service . ipv4_addr; flags timeout; }' : '',
    chain('prerouting', 'prerouting', 'dstnat', 'nat', pre),
    chain('postrouting', 'postrouting', 'srcnat', 'nat', post),
    chain('forward', 'forward', 'filter', 'filter', fwd),
    chain('input', 'input', 'filter', 'filter', input),
    '}',
    '',
  ].filter((l) => l !== '').join('\n');
}

/** Loads a router ruleset into ns (atomic replace). */
export async function applyRouterRules(ns: string, o: RouterRuleOptions): Promise<void> {
  await runIn(ns, ['nft', '-f', '-'], routerRuleset(o));
}
