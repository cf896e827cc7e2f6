// The policy in force: kept in memory, written through with the routes it auto-approves (one
// transaction), and handed to the netmap hub, which turns it into peer lists and packet filters.
import { Policy, type PolicyReply } from '../proto/control/policy.js';
import { describeZodError } from '../proto/control/schemas.js';
import { BadRequestError } from './errors.js';
import type { NetmapHub } from './netmap.js';
import { CompiledPolicy } from './policy.js';
import { policyNodeOf, type NodeRegistry } from './registry.js';
import type { ControlStore, PolicyRow, RouteApprovalRow } from './store/interface.js';

export class StoredPolicyInvalidError extends Error {
  override readonly name = 'StoredPolicyInvalidError';
}

export class AccessPolicy {
  private compiled: CompiledPolicy | null = null;
  private updatedAt: number | null;

  constructor(
    private readonly store: ControlStore,
    private readonly registry: NodeRegistry,
    private readonly netmap: NetmapHub,
    stored: PolicyRow,
    private readonly now: () => number = Date.now,
  ) {
    this.updatedAt = stored.updatedAt;
    if (stored.json !== null) {
      const parsed = Policy.safeParse(JSON.parse(stored.json));
      if (!parsed.success) throw new StoredPolicyInvalidError(`the stored policy no longer validates: ${describeZodError(parsed.error)}`);
      this.compiled = new CompiledPolicy(parsed.data);
    }
    registry.autoApprove = (node) => this.compiled?.autoApproved({ ...policyNodeOf(node), advertisedRoutes: node.advertisedRoutes, advertisedExitNode: node.advertisedExitNode }) ?? [];
    netmap.setPolicy(this.compiled);
  }

  reply(): PolicyReply {
    return { policy: this.compiled?.source ?? null, updatedAt: this.updatedAt === null ? null : new Date(this.updatedAt).toISOString() };
  }

  /** Validates, stores and applies a policy (null: back to everyone-sees-everyone). */
  async set(body: unknown | null): Promise<PolicyReply> {
    let compiled: CompiledPolicy | null = null;
    if (body !== null) {
      const parsed = Policy.safeParse(body);
      if (!parsed.success) throw new BadRequestError(`policy: ${describeZodError(parsed.error)}`);
      compiled = new CompiledPolicy(parsed.data);
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
