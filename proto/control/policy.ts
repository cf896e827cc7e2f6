// The access policy an admin sets (PUT /api/v1/admin/policy): who may reach whom, on which ports.
// The coordinator compiles it into each node's peer list and packet filter.
//
//   {
//     "groups":  { "group:ops": ["user:alice", "tag:laptop"] },
//     "tags":    { "tag:server": ["group:ops"], "tag:laptop": [] },
//     "hosts":   { "office": "192.168.10.0/24" },
//     "acls": [
//       { "action": "accept", "src": ["group:ops"], "dst": ["tag:server:22,443", "office:*"] },
//       { "action": "accept", "src": ["user:bob"], "dst": ["autogroup:internet:*"] }
//     ],
//     "autoApprovers": { "routes": { "192.168.0.0/16": ["tag:server"] }, "exitNode": ["node:7"] }
//   }
//
// Selectors (src, and the part of dst before the last ':') name identities a node cannot pick
// for itself (docs/security-identity.md):
//   "*"                every node (in dst: any address)
//   "tag:NAME"         nodes registered with an auth key carrying the tag (declared under "tags")
//   "user:NAME"        nodes registered with an auth key created with --user NAME
//   "node:ID"          the node with that coordinator id (ids are never reused)
//   "group:NAME"       the group's members: any of the above but groups (no nested groups)
//   "NAME"             a "hosts" alias; a bare node name is refused (anyone can register any name)
//   "IP" | "CIDR"      nodes with an address inside, or advertising an approved route overlapping it
//   "autogroup:internet"  dst only: public address space (proto/ip/internet.ts) through exit nodes
// Ports (dst, after the last ':'): "*", "22", "80,443", "8000-8999", or a list of those.
import * as z from 'zod/mini';
import { parseCidr } from '../ip/address.js';
import { CidrText, Tag, UserName } from './schemas.js';

export const GroupName = z.string().check(z.maxLength(64), z.regex(/^group:[a-z0-9-]+$/i, 'a group like group:ops'));
const AliasName = z.string().check(z.maxLength(63), z.regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/i, 'a host alias of letters, digits and "-"'));
const SelectorText = z.string().check(z.minLength(1), z.maxLength(128));

export type SelectorKind = 'all' | 'tag' | 'user' | 'node' | 'group' | 'cidr' | 'internet' | 'name';
export interface ParsedSelector { kind: SelectorKind; text: string }
export interface PortRange { first: number; last: number }
export interface ParsedDestination { selector: ParsedSelector; ports: PortRange[]; portsText: string }

export const INTERNET_SELECTOR = 'autogroup:internet';

/**
 * "*", tag:x, user:x, node:N, group:x, autogroup:internet, an IP/CIDR, or a bare name (a host
 * alias, or a node name, which the policy refuses); null if none of those.
 */
export function parseSelector(text: string): ParsedSelector | null {
  if (text === '*') return { kind: 'all', text };
  if (/^tag:[a-z0-9-]+$/i.test(text)) return { kind: 'tag', text };
  if (text.startsWith('user:')) return UserName.safeParse(text.slice(5)).success ? { kind: 'user', text: text.toLowerCase() } : null;
  if (/^node:[1-9][0-9]{0,14}$/.test(text)) return { kind: 'node', text };
  if (text.toLowerCase() === INTERNET_SELECTOR) return { kind: 'internet', text: INTERNET_SELECTOR };
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

/** What is wrong with the ports of "SELECTOR:PORTS" when they are numbers but not ports (99999, 90-80); else null. */
function portsProblem(text: string): string | null {
  const portsText = text.slice(text.lastIndexOf(':') + 1);
  for (const part of portsText.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return null;
    const [first, last] = [Number(m[1]), Number(m[2] ?? m[1])];
    if (first > 65535 || last > 65535) return `"${text}": port out of range (0-65535): ${part}`;
    if (first > last) return `"${text}": port range ${part} runs backwards`;
  }
  return null;
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

export const PolicyAcl = z.strictObject({
  action: z.literal('accept'),
  src: z.array(SelectorText).check(z.minLength(1), z.maxLength(256)),
  dst: z.array(SelectorText).check(z.minLength(1), z.maxLength(256)),
  /** Empty or absent: TCP, UDP and ICMP. */
  proto: z.optional(z.array(z.enum(['tcp', 'udp', 'icmp'])).check(z.maxLength(3))),
});
export type PolicyAcl = z.infer<typeof PolicyAcl>;

/** The shape alone (types, unknown fields), without the reference checks (referenceIssues). */
export const PolicyShape = z.strictObject({
  groups: z.optional(z.record(GroupName, z.array(SelectorText).check(z.maxLength(1024)))),
  /** Tag owners: who may put a tag on a node. Recorded now; enforced when nodes can request tags. */
  tags: z.optional(z.record(Tag, z.array(SelectorText).check(z.maxLength(256)))),
  hosts: z.optional(z.record(AliasName, z.string().check(z.maxLength(64)))),
  acls: z.array(PolicyAcl).check(z.maxLength(1024)),
  autoApprovers: z.optional(z.strictObject({
    routes: z.optional(z.record(CidrText, z.array(SelectorText).check(z.maxLength(256)))),
    exitNode: z.optional(z.array(SelectorText).check(z.maxLength(256))),
  })),
});

/** One thing wrong with a policy: `hostname` when a bare node name was used, `unknownKey` for a field not in the format. */
export interface PolicyIssue {
  path: (string | number)[];
  message: string;
  hostname?: string;
  unknownKey?: string;
}

/** The refusal for a bare node name (the caller may add which node holds it now). */
export function hostnameMessage(name: string): string {
  return `"${name}" is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID`;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const entriesOf = (v: unknown): [string, unknown][] => (isRecord(v) ? Object.entries(v) : []);
const itemsOf = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/**
 * Checks what the shape alone cannot: selectors parse and name identities (no bare hostnames),
 * groups and tags are declared, hosts are IPs. Reads any value, skipping parts of the wrong
 * shape, so it can run next to a failed shape check and every error is reported in one pass.
 */
export function referenceIssues(value: unknown): PolicyIssue[] {
  const issues: PolicyIssue[] = [];
  const fail = (path: (string | number)[], message: string, hostname?: string): void => {
    issues.push(hostname === undefined ? { path, message } : { path, message, hostname });
  };
  const p = isRecord(value) ? value : {};
  const groups = new Set(entriesOf(p.groups).map(([g]) => g));
  const tags = new Set(entriesOf(p.tags).map(([t]) => t));
  const hosts = new Set(entriesOf(p.hosts).map(([h]) => h.toLowerCase()));
  for (const [alias, v] of entriesOf(p.hosts)) {
    const sel = typeof v === 'string' ? parseSelector(v) : null;
    if (typeof v === 'string' && (!sel || sel.kind !== 'cidr')) fail(['hosts', alias], `"${v}" is not an IP address or CIDR`);
  }
  const checkSelector = (path: (string | number)[], text: unknown, where: 'src' | 'dst' | 'group'): void => {
    if (typeof text !== 'string') return;
    const sel = parseSelector(text);
    if (!sel) return fail(path, `"${text}" is not a selector (*, tag:x, user:x, node:N, group:x, a hosts alias, an IP or CIDR)`);
    if (sel.kind === 'name' && !hosts.has(sel.text)) return fail(path, hostnameMessage(sel.text), sel.text);
    if (sel.kind === 'internet' && where !== 'dst') fail(path, `${INTERNET_SELECTOR} is only a destination (acls dst)`);
    if (sel.kind === 'tag' && !tags.has(sel.text)) fail(path, `${sel.text} is not declared under "tags"`);
    if (sel.kind === 'group' && where === 'group') fail(path, `groups cannot contain groups (${sel.text})`);
    if (sel.kind === 'group' && !groups.has(sel.text)) fail(path, `${sel.text} is not defined under "groups"`);
  };
  for (const [g, members] of entriesOf(p.groups)) itemsOf(members).forEach((m, i) => checkSelector(['groups', g, i], m, 'group'));
  for (const [t, owners] of entriesOf(p.tags)) itemsOf(owners).forEach((o, i) => checkSelector(['tags', t, i], o, 'src'));
  itemsOf(p.acls).forEach((acl, i) => {
    if (!isRecord(acl)) return;
    itemsOf(acl.src).forEach((s, j) => checkSelector(['acls', i, 'src', j], s, 'src'));
    itemsOf(acl.dst).forEach((d, j) => {
      if (typeof d !== 'string') return;
      const dst = parseDestination(d);
      const bare = dst ? null : parseSelector(d);
      // "alice-laptop" without ports: the name is the bigger problem.
      if (bare?.kind === 'name' && !hosts.has(bare.text)) return checkSelector(['acls', i, 'dst', j], d, 'dst');
      if (!dst) return fail(['acls', i, 'dst', j], portsProblem(d) ?? `"${d}" is not SELECTOR:PORTS (e.g. tag:web:80,443 or *:*)`);
      checkSelector(['acls', i, 'dst', j], d.slice(0, d.lastIndexOf(':')), 'dst');
    });
  });
  const approvers = isRecord(p.autoApprovers) ? p.autoApprovers : {};
  for (const [cidr, who] of entriesOf(approvers.routes)) {
    try {
      parseCidr(cidr);
    } catch {
      fail(['autoApprovers', 'routes', cidr], `"${cidr}" is not a CIDR`);
    }
    itemsOf(who).forEach((s, i) => checkSelector(['autoApprovers', 'routes', cidr, i], s, 'src'));
  }
  itemsOf(approvers.exitNode).forEach((s, i) => checkSelector(['autoApprovers', 'exitNode', i], s, 'src'));
  return issues;
}

function checkReferences(p: z.infer<typeof PolicyShape>, ctx: z.core.$RefinementCtx<z.infer<typeof PolicyShape>>): void {
  for (const issue of referenceIssues(p)) {
    ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message, ...(issue.hostname === undefined ? {} : { params: { hostname: issue.hostname } }) });
  }
}

export const Policy = PolicyShape.check(z.superRefine(checkReferences));

/** Every problem with a policy, in one pass: shape errors and reference errors side by side. */
export function policyIssues(value: unknown): PolicyIssue[] {
  const out: PolicyIssue[] = [];
  const shape = PolicyShape.safeParse(value);
  if (!shape.success) {
    for (const issue of shape.error.issues) {
      const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
      if (issue.code === 'unrecognized_keys') {
        for (const k of issue.keys) out.push({ path, message: `unrecognized key "${k}"`, unknownKey: k });
      } else {
        out.push({ path, message: issue.message });
      }
    }
  }
  return [...out, ...referenceIssues(value)];
}
export type Policy = z.infer<typeof Policy>;

/** GET/PUT /api/v1/admin/policy reply: the policy in force (null: none, every node sees every node). */
export const PolicyReply = z.object({ policy: z.nullable(Policy), updatedAt: z.nullable(z.string()) });
export type PolicyReply = z.infer<typeof PolicyReply>;
