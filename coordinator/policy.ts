// The access policy compiled for evaluation: which nodes each ACL's selectors pick, the packet
// filter a node enforces, and the routes the policy approves by itself. Pure functions of the
// policy and a node; visibility.ts keeps the per-node results up to date.
import { cidrContains, maskCidr, parseAddress, parseCidr, formatCidr, type Cidr } from '../proto/ip/address.js';
import { INTERNET_V4, INTERNET_V6 } from '../proto/ip/internet.js';
import { parseDestination, parseSelector, protocolNumbers, type ParsedSelector, type Policy } from '../proto/control/policy.js';
import type { FilterRule } from '../proto/control/schemas.js';

/** What the policy looks at in a node. */
export interface PolicyNode {
  id: number;
  /** Shown only: selectors never match names (anyone can register any name). */
  name: string;
  /** Owner from the auth key the node registered with (user:NAME). */
  user: string | null;
  ipv4: string;
  ipv6: string;
  tags: string[];
  /** Approved routes the node serves (subnet router / exit node). */
  routes: string[];
}

interface Selector {
  kind: ParsedSelector['kind'];
  text: string;
  /** For cidr selectors and host aliases. */
  cidr?: Cidr;
  /** For node:ID. */
  id?: number;
  /** For groups. */
  members?: Selector[];
}

interface Destination {
  selector: Selector;
  portsText: string;
}

export interface CompiledAcl {
  src: Selector[];
  dst: Destination[];
  protocols: number[];
}

const ANY_V4 = parseCidr('0.0.0.0/0');
const ANY_V6 = parseCidr('::/0');
const EXIT_ROUTE_TEXT = new Set(['0.0.0.0/0', '::/0']);

function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  return a.bits <= b.bits ? cidrContains(a, b.bytes) : cidrContains(b, a.bytes);
}

/** The narrower of two overlapping prefixes (their intersection). */
function narrower(a: Cidr, b: Cidr): Cidr {
  return a.bits >= b.bits ? a : b;
}

function hostCidr(ip: string): Cidr {
  const a = parseAddress(ip);
  return { family: a.family, bytes: a.bytes, bits: a.family === 4 ? 32 : 128 };
}

export class CompiledPolicy {
  readonly acls: CompiledAcl[];
  private readonly routeApprovers: { cidr: Cidr; who: Selector[] }[];
  private readonly exitApprovers: Selector[];

  constructor(readonly source: Policy) {
    const hosts = new Map(Object.entries(source.hosts ?? {}).map(([k, v]) => [k.toLowerCase(), maskCidr(parseCidr(v))]));
    const groups = new Map(Object.entries(source.groups ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
    const compile = (text: string): Selector => {
      const p = parseSelector(text);
      if (!p) throw new RangeError(`bad selector ${text}`); // Policy.parse already refused these
      if (p.kind === 'cidr') return { kind: 'cidr', text: p.text, cidr: maskCidr(parseCidr(p.text)) };
      if (p.kind === 'name' && hosts.has(p.text)) return { kind: 'cidr', text: p.text, cidr: hosts.get(p.text)! };
      if (p.kind === 'group') return { kind: 'group', text: p.text, members: (groups.get(p.text.toLowerCase()) ?? []).map(compile) };
      if (p.kind === 'tag') return { kind: 'tag', text: p.text.toLowerCase() };
      if (p.kind === 'node') return { kind: 'node', text: p.text, id: Number(p.text.slice(5)) };
      if (p.kind === 'user') return { kind: 'user', text: p.text.slice(5) };
      return { kind: p.kind, text: p.text };
    };
    this.acls = source.acls.map((acl) => ({
      src: acl.src.map(compile),
      dst: acl.dst.map((d) => {
        const parsed = parseDestination(d)!;
        return { selector: compile(d.slice(0, d.lastIndexOf(':'))), portsText: parsed.portsText };
      }),
      protocols: protocolNumbers(acl.proto ?? []),
    }));
    this.routeApprovers = Object.entries(source.autoApprovers?.routes ?? {}).map(([cidr, who]) => ({ cidr: maskCidr(parseCidr(cidr)), who: who.map(compile) }));
    this.exitApprovers = (source.autoApprovers?.exitNode ?? []).map(compile);
  }

  /** Does the selector pick this node? A prefix picks nodes inside it or serving a route overlapping it. */
  matches(sel: Selector, node: PolicyNode): boolean {
    switch (sel.kind) {
      case 'all': return true;
      case 'tag': return node.tags.includes(sel.text);
      case 'user': return node.user === sel.text;
      case 'node': return node.id === sel.id;
      // A bare name that is not a hosts alias: refused when a policy is set; one stored before
      // that rule matches nothing rather than whoever holds the name now.
      case 'name': return false;
      case 'internet': return node.routes.some((r) => EXIT_ROUTE_TEXT.has(r));
      case 'group': return sel.members!.some((m) => this.matches(m, node));
      case 'cidr': {
        const c = sel.cidr!;
        if (cidrContains(c, parseAddress(c.family === 4 ? node.ipv4 : node.ipv6).bytes)) return true;
        return node.routes.some((r) => overlaps(c, parseCidr(r)));
      }
    }
  }

  /** ACL indexes where the node is a source, and where it is a destination. */
  roles(node: PolicyNode): { src: number[]; dst: number[] } {
    const src: number[] = [];
    const dst: number[] = [];
    this.acls.forEach((acl, i) => {
      if (acl.src.some((s) => this.matches(s, node))) src.push(i);
      if (acl.dst.some((d) => this.matches(d.selector, node))) dst.push(i);
    });
    return { src, dst };
  }

  /** Source addresses of an ACL, given the nodes its selectors picked. */
  sourceAddresses(aclIndex: number, members: Iterable<PolicyNode>): string[] {
    const acl = this.acls[aclIndex]!;
    const out = new Set<string>();
    for (const s of acl.src) {
      if (s.kind === 'all') return ['0.0.0.0/0', '::/0'];
      if (s.kind === 'cidr') out.add(formatCidr(s.cidr!));
    }
    if (acl.src.some((s) => s.kind !== 'cidr')) {
      for (const n of members) {
        if (acl.src.some((s) => s.kind !== 'cidr' && this.matches(s, n))) {
          out.add(n.ipv4);
          out.add(n.ipv6);
        }
      }
    }
    return [...out];
  }

  /** The filter rule a destination node enforces for one ACL (null if the ACL does not pick it). */
  ruleFor(aclIndex: number, node: PolicyNode, srcIps: string[]): FilterRule | null {
    const acl = this.acls[aclIndex]!;
    const dst: FilterRule['dst'] = [];
    const add = (c: Cidr, ports: string): void => {
      const cidr = formatCidr(c);
      if (!dst.some((d) => d.cidr === cidr && d.ports === ports)) dst.push({ cidr, ports });
    };
    for (const d of acl.dst) {
      if (!this.matches(d.selector, node)) continue;
      const sel = d.selector;
      if (sel.kind === 'all') {
        add(ANY_V4, d.portsText);
        add(ANY_V6, d.portsText);
      } else if (sel.kind === 'internet') {
        // Public space only, through the exit routes this node serves: never its LANs.
        if (node.routes.includes('0.0.0.0/0')) for (const c of INTERNET_V4) add(c, d.portsText);
        if (node.routes.includes('::/0')) for (const c of INTERNET_V6) add(c, d.portsText);
      } else if (sel.kind === 'cidr') {
        for (const own of [hostCidr(node.ipv4), hostCidr(node.ipv6)]) if (overlaps(sel.cidr!, own)) add(own, d.portsText);
        for (const r of node.routes) {
          const rc = parseCidr(r);
          if (overlaps(sel.cidr!, rc)) add(narrower(sel.cidr!, rc), d.portsText);
        }
      } else {
        add(hostCidr(node.ipv4), d.portsText);
        add(hostCidr(node.ipv6), d.portsText);
      }
    }
    return dst.length === 0 ? null : { srcIps, dst, protocols: acl.protocols };
  }

  /** Routes the policy approves for a node by itself (autoApprovers), among those it advertises. */
  autoApproved(node: PolicyNode & { advertisedRoutes: string[]; advertisedExitNode: boolean }): string[] {
    const out: string[] = [];
    for (const r of node.advertisedRoutes) {
      const rc = parseCidr(r);
      const ok = this.routeApprovers.some((a) => a.cidr.family === rc.family && a.cidr.bits <= rc.bits && cidrContains(a.cidr, rc.bytes) && a.who.some((w) => this.matches(w, node)));
      if (ok) out.push(r);
    }
    if (node.advertisedExitNode && this.exitApprovers.some((w) => this.matches(w, node))) out.push('0.0.0.0/0', '::/0');
    return out;
  }
}
