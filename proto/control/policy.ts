// The access policy an admin sets (PUT /api/v1/admin/policy): who may reach whom, on which ports.
// The coordinator compiles it into each node's peer list and packet filter.
//
//   {
//     "groups":  { "group:ops": ["tag:laptop", "alice-mbp"] },
//     "tags":    { "tag:server": ["group:ops"], "tag:laptop": [] },
//     "hosts":   { "office": "192.168.10.0/24" },
//     "acls": [
//       { "action": "accept", "src": ["group:ops"], "dst": ["tag:server:22,443", "office:*"] }
//     ],
//     "autoApprovers": { "routes": { "192.168.0.0/16": ["tag:server"] }, "exitNode": ["tag:server"] }
//   }
//
// Selectors (src, and the part of dst before the last ':'):
//   "*"                every node (in dst: any address)
//   "tag:NAME"         nodes carrying the tag (declared under "tags")
//   "group:NAME"       the group's members: tags or node names (no nested groups)
//   "NAME"             a "hosts" alias if there is one, else the node with that name
//   "IP" | "CIDR"      nodes with an address inside, or advertising an approved route overlapping it
// Ports (dst, after the last ':'): "*", "22", "80,443", "8000-8999", or a list of those.
import { z } from 'zod';
import { parseCidr } from '../ip/address.js';
import { CidrText, Tag } from './schemas.js';

export const GroupName = z.string().max(64).regex(/^group:[a-z0-9-]+$/i, 'a group like group:ops');
const AliasName = z.string().max(63).regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i, 'a host alias of letters, digits and "-"');
const SelectorText = z.string().min(1).max(128);

export type SelectorKind = 'all' | 'tag' | 'group' | 'cidr' | 'name';
export interface ParsedSelector { kind: SelectorKind; text: string }
export interface PortRange { first: number; last: number }
export interface ParsedDestination { selector: ParsedSelector; ports: PortRange[]; portsText: string }

/** "*", tag:x, group:x, an IP/CIDR, or a bare name (host alias or node name); null if none of those. */
export function parseSelector(text: string): ParsedSelector | null {
  if (text === '*') return { kind: 'all', text };
  if (/^tag:[a-z0-9-]+$/i.test(text)) return { kind: 'tag', text };
  if (/^group:[a-z0-9-]+$/i.test(text)) return { kind: 'group', text };
  if (/^[0-9a-f:.]+(\/\d{1,3})?$/i.test(text) && (text.includes('.') || text.includes(':'))) {
    try {
      parseCidr(text);
      return { kind: 'cidr', text };
    } catch {
      return null;
    }
  }
  if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i.test(text) && text.length <= 63) return { kind: 'name', text: text.toLowerCase() };
  return null;
}

/** "80,443", "1000-2000", "*" → ranges; null if malformed. */
export function parsePorts(text: string): PortRange[] | null {
  if (text === '*') return [{ first: 0, last: 65535 }];
  const out: PortRange[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part);
    if (!m) return null;
    const first = Number(m[1]);
    const last = m[2] === undefined ? first : Number(m[2]);
    if (first > 65535 || last > 65535 || first > last) return null;
    out.push({ first, last });
  }
  return out;
}

/** "SELECTOR:PORTS", split at the last ':' (so "fd7a::1:22" is fd7a::1, port 22). */
export function parseDestination(text: string): ParsedDestination | null {
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return null;
  const selector = parseSelector(text.slice(0, colon));
  const portsText = text.slice(colon + 1);
  const ports = parsePorts(portsText);
  return selector && ports ? { selector, ports, portsText } : null;
}

const PROTOCOL_NUMBERS = { tcp: 6, udp: 17, icmp: 1 } as const;
export type PolicyProtocol = keyof typeof PROTOCOL_NUMBERS;
/** IP protocol numbers for the names an ACL may list (ICMP covers ICMPv6 too). */
export function protocolNumbers(names: readonly PolicyProtocol[]): number[] {
  const out: number[] = [];
  for (const n of names) {
    out.push(PROTOCOL_NUMBERS[n]);
    if (n === 'icmp') out.push(58);
  }
  return out;
}

export const PolicyAcl = z.object({
  action: z.literal('accept'),
  src: z.array(SelectorText).min(1).max(256),
  dst: z.array(SelectorText).min(1).max(256),
  /** Empty or absent: TCP, UDP and ICMP. */
  proto: z.array(z.enum(['tcp', 'udp', 'icmp'])).max(3).optional(),
}).strict();
export type PolicyAcl = z.infer<typeof PolicyAcl>;

const PolicyShape = z.object({
  groups: z.record(GroupName, z.array(SelectorText).max(1024)).optional(),
  /** Tag owners: who may put a tag on a node. Recorded now; enforced when nodes can request tags. */
  tags: z.record(Tag, z.array(SelectorText).max(256)).optional(),
  hosts: z.record(AliasName, z.string().max(64)).optional(),
  acls: z.array(PolicyAcl).max(1024),
  autoApprovers: z.object({
    routes: z.record(CidrText, z.array(SelectorText).max(256)).optional(),
    exitNode: z.array(SelectorText).max(256).optional(),
  }).strict().optional(),
}).strict();

/** Checks what the shape alone cannot: selectors parse, groups and tags are declared, hosts are IPs. */
function checkReferences(p: z.infer<typeof PolicyShape>, ctx: z.RefinementCtx): void {
  const fail = (path: (string | number)[], message: string): void => { ctx.addIssue({ code: 'custom', path, message }); };
  const groups = p.groups ?? {};
  const tags = p.tags ?? {};
  const hosts = p.hosts ?? {};
  for (const [alias, value] of Object.entries(hosts)) {
    const sel = parseSelector(value);
    if (!sel || sel.kind !== 'cidr') fail(['hosts', alias], `"${value}" is not an IP address or CIDR`);
  }
  const checkSelector = (path: (string | number)[], text: string, inGroup: boolean): void => {
    const sel = parseSelector(text);
    if (!sel) return fail(path, `"${text}" is not a selector (*, tag:x, group:x, a name, an IP or CIDR)`);
    if (sel.kind === 'tag' && !(sel.text in tags)) fail(path, `${sel.text} is not declared under "tags"`);
    if (sel.kind === 'group' && inGroup) fail(path, `groups cannot contain groups (${sel.text})`);
    if (sel.kind === 'group' && !(sel.text in groups)) fail(path, `${sel.text} is not defined under "groups"`);
  };
  for (const [g, members] of Object.entries(groups)) members.forEach((m, i) => checkSelector(['groups', g, i], m, true));
  for (const [t, owners] of Object.entries(tags)) owners.forEach((o, i) => checkSelector(['tags', t, i], o, false));
  p.acls.forEach((acl, i) => {
    acl.src.forEach((s, j) => checkSelector(['acls', i, 'src', j], s, false));
    acl.dst.forEach((d, j) => {
      const dst = parseDestination(d);
      if (!dst) return fail(['acls', i, 'dst', j], `"${d}" is not SELECTOR:PORTS (e.g. tag:web:80,443 or *:*)`);
      checkSelector(['acls', i, 'dst', j], d.slice(0, d.lastIndexOf(':')), false);
    });
  });
  for (const [cidr, who] of Object.entries(p.autoApprovers?.routes ?? {})) {
    try {
      parseCidr(cidr);
    } catch {
      fail(['autoApprovers', 'routes', cidr], `"${cidr}" is not a CIDR`);
    }
    who.forEach((s, i) => checkSelector(['autoApprovers', 'routes', cidr, i], s, false));
  }
  (p.autoApprovers?.exitNode ?? []).forEach((s, i) => checkSelector(['autoApprovers', 'exitNode', i], s, false));
}

export const Policy = PolicyShape.superRefine(checkReferences);
export type Policy = z.infer<typeof Policy>;

/** GET/PUT /api/v1/admin/policy reply: the policy in force (null: none, every node sees every node). */
export const PolicyReply = z.object({ policy: Policy.nullable(), updatedAt: z.string().nullable() });
export type PolicyReply = z.infer<typeof PolicyReply>;
