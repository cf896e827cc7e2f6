// The policy in force: kept in memory, written through with the routes it auto-approves (one
// transaction), and handed to the netmap hub, which turns it into peer lists and packet filters.
import { Policy, PolicyShape, policyIssues, type PolicyIssue, type PolicyReply } from '../proto/control/policy.js';
import { BadRequestError } from './errors.js';
import type { NetmapHub } from './netmap.js';
import { CompiledPolicy } from './policy.js';
import { policyNodeOf, type NodeRegistry } from './registry.js';
import type { ControlStore, PolicyRow, RouteApprovalRow } from './store/interface.js';

export class StoredPolicyInvalidError extends Error {
  override readonly name = 'StoredPolicyInvalidError';
}

/** Refusals name at most this many problems (a policy may have thousands of selectors). */
const MAX_REPORTED_ISSUES = 20;

export class AccessPolicy {
  private compiled: CompiledPolicy | null = null;
  private updatedAt: number | null;

  constructor(
    private readonly store: ControlStore,
    private readonly registry: NodeRegistry,
    private readonly netmap: NetmapHub,
    stored: PolicyRow,
    private readonly now: () => number = Date.now,
    warn: (message: string) => void = () => undefined,
  ) {
    this.updatedAt = stored.updatedAt;
    if (stored.json !== null) {
      const value: unknown = JSON.parse(stored.json);
      const issues = policyIssues(value);
      const fatal = issues.filter((i) => i.hostname === undefined);
      if (fatal.length > 0) throw new StoredPolicyInvalidError(`the stored policy no longer validates: ${this.describe(fatal)}`);
      // Set before hostnames were refused: those selectors now match nobody (CompiledPolicy).
      if (issues.length > 0) {
        warn(`the stored policy names hostnames (${[...new Set(issues.map((i) => i.hostname))].join(', ')}), which match no node now; set the policy again with user:, tag: or node: selectors`);
      }
      this.compiled = new CompiledPolicy(PolicyShape.parse(value));
    }
    registry.autoApprove = (node) => this.compiled?.autoApproved({ ...policyNodeOf(node), advertisedRoutes: node.advertisedRoutes, advertisedExitNode: node.advertisedExitNode }) ?? [];
    netmap.setPolicy(this.compiled);
  }

  /**
   * Applies a policy another replica committed (read back from the database), without writing it.
   * It validated there; one that no longer validates here (a different version) is refused, and
   * the policy in force stays.
   */
  applyStored(stored: PolicyRow): void {
    let compiled: CompiledPolicy | null = null;
    if (stored.json !== null) {
      const value: unknown = JSON.parse(stored.json);
      if (policyIssues(value).some((i) => i.hostname === undefined)) throw new StoredPolicyInvalidError('the policy another replica stored does not validate here');
      compiled = new CompiledPolicy(PolicyShape.parse(value));
    }
    this.compiled = compiled;
    this.updatedAt = stored.updatedAt;
    this.netmap.setPolicy(compiled);
  }

  /** One line for a refusal: "acls.0.src.0: reason; ...", a hostname's current node id added. */
  private describe(issues: PolicyIssue[]): string {
    const text = issues.slice(0, MAX_REPORTED_ISSUES).map((i) => {
      const path = i.path.join('.');
      const holder = i.hostname === undefined ? undefined : [...this.registry.all()].find((n) => n.name === i.hostname);
      return `${path ? `${path}: ` : ''}${i.message}${holder ? ` (${i.hostname} is node:${holder.id})` : ''}`;
    });
    const more = issues.length - MAX_REPORTED_ISSUES;
    return text.join('; ') + (more > 0 ? `; and ${more} more` : '');
  }

  reply(): PolicyReply {
    return { policy: this.compiled?.source ?? null, updatedAt: this.updatedAt === null ? null : new Date(this.updatedAt).toISOString() };
  }

  /** Validates, stores and applies a policy (null: back to everyone-sees-everyone). */
  async set(body: unknown | null): Promise<PolicyReply> {
    let compiled: CompiledPolicy | null = null;
    if (body !== null) {
      const issues = policyIssues(body);
      if (issues.length > 0) throw new BadRequestError(`policy: ${this.describe(issues)}`);
      compiled = new CompiledPolicy(Policy.parse(body));
    }
    const approvals: RouteApprovalRow[] = [];
    if (compiled) {
      for (const n of this.registry.all()) {
        const auto = compiled.autoApproved({ ...policyNodeOf(n), advertisedRoutes: n.advertisedRoutes, advertisedExitNode: n.advertisedExitNode });
        const missing = auto.filter((r) => !n.approvedRoutes.includes(r));
        if (missing.length > 0) approvals.push({ id: n.id, approvedRoutes: [...n.approvedRoutes, ...missing] });
      }
    }
    const at = this.now();
    await this.store.savePolicy({ json: compiled ? JSON.stringify(compiled.source) : null, updatedAt: at }, approvals);
    this.compiled = compiled;
    this.updatedAt = at;
    this.registry.applyApprovals(approvals);
    this.netmap.setPolicy(compiled);
    return this.reply();
  }
}
