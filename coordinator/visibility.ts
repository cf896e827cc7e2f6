// Who sees whom. Node A has B in its netmap when the policy lets A reach B or B reach A, so the
// relation is symmetric: "the nodes that must hear about a change to B" are exactly B's peers.
// Kept incrementally: a node joining, leaving or changing tags/routes re-evaluates that one node
// against the ACLs, never the whole mesh.
import type { FilterRule } from '../proto/control/schemas.js';
import type { CompiledPolicy, PolicyNode } from './policy.js';

export interface Visibility {
  /** True when every node sees every node (no policy): callers may skip per-pair checks. */
  readonly everyone: boolean;
  has(id: number): boolean;
  /** Adds or re-evaluates an active (registered, unexpired) node. */
  update(node: PolicyNode): void;
  remove(id: number): void;
  peersOf(id: number): Iterable<number>;
  /** The packet filter a node enforces; null: no policy, everything allowed. */
  filterFor(id: number): FilterRule[] | null;
  /** Nodes whose packet filter lists this node's addresses. */
  filterDependents(id: number): Iterable<number>;
}

/** No policy: every active node sees every other. */
export class EveryoneVisibility implements Visibility {
  readonly everyone = true;
  private readonly active = new Set<number>();

  has(id: number): boolean { return this.active.has(id); }
  update(node: PolicyNode): void { this.active.add(node.id); }
  remove(id: number): void { this.active.delete(id); }

  *peersOf(id: number): Iterable<number> {
    if (!this.active.has(id)) return;
    for (const p of this.active) if (p !== id) yield p;
  }

  filterFor(): FilterRule[] | null { return null; }
  filterDependents(): Iterable<number> { return []; }
}

interface AclMembers {
  src: Set<number>;
  dst: Set<number>;
  /** Source addresses, rebuilt when the source members change. */
  srcIps: string[] | null;
}

/** A policy in force: membership of every node in every ACL's sources and destinations. */
export class PolicyVisibility implements Visibility {
  readonly everyone = false;
  private readonly members: AclMembers[];
  private readonly roles = new Map<number, { src: number[]; dst: number[] }>();
  private readonly nodes = new Map<number, PolicyNode>();

  constructor(private readonly policy: CompiledPolicy) {
    this.members = policy.acls.map(() => ({ src: new Set(), dst: new Set(), srcIps: null }));
  }

  has(id: number): boolean { return this.nodes.has(id); }

  update(node: PolicyNode): void {
    this.remove(node.id);
    const r = this.policy.roles(node);
    this.nodes.set(node.id, node);
    this.roles.set(node.id, r);
    for (const i of r.src) {
      this.members[i]!.src.add(node.id);
      this.members[i]!.srcIps = null;
    }
    for (const i of r.dst) this.members[i]!.dst.add(node.id);
  }

  remove(id: number): void {
    const r = this.roles.get(id);
    if (!r) return;
    for (const i of r.src) {
      this.members[i]!.src.delete(id);
      this.members[i]!.srcIps = null;
    }
    for (const i of r.dst) this.members[i]!.dst.delete(id);
    this.roles.delete(id);
    this.nodes.delete(id);
  }

  peersOf(id: number): Iterable<number> {
    const r = this.roles.get(id);
    const out = new Set<number>();
    if (!r) return out;
    for (const i of r.src) for (const p of this.members[i]!.dst) out.add(p);
    for (const i of r.dst) for (const p of this.members[i]!.src) out.add(p);
    out.delete(id);
    return out;
  }

  filterFor(id: number): FilterRule[] | null {
    const r = this.roles.get(id);
    const node = this.nodes.get(id);
    if (!r || !node) return [];
    const rules: FilterRule[] = [];
    for (const i of r.dst) {
      const m = this.members[i]!;
      m.srcIps ??= this.policy.sourceAddresses(i, [...m.src].map((n) => this.nodes.get(n)!));
      const rule = this.policy.ruleFor(i, node, m.srcIps);
      if (rule) rules.push(rule);
    }
    return rules;
  }

  filterDependents(id: number): Iterable<number> {
    const r = this.roles.get(id);
    const out = new Set<number>();
    if (!r) return out;
    for (const i of r.src) for (const p of this.members[i]!.dst) out.add(p);
    return out;
  }
}
