// The console's policy editor check: the text validated exactly as `pinhole admin policy set FILE`
// validates it (proto/control/policy-text.ts, the same schema a save applies), each problem at its
// line, with the current holder of any bare hostname named. Nothing is saved.
import { checkPolicySource } from '../../proto/control/policy-text.js';
import type { NodeRegistry } from '../registry.js';

export interface PolicyTextIssue {
  /** 1-based line in the text. */
  line: number;
  /** "path: reason". */
  message: string;
}

/** Largest policy text the editor checks (the admin API's body limit). */
export const MAX_POLICY_TEXT = 1024 * 1024;

/** Problems of a policy text; [] means a save would accept it. */
export function checkPolicyText(text: string, registry?: NodeRegistry): PolicyTextIssue[] {
  const nodeIds = registry ? new Map([...registry.all()].map((n) => [n.name, n.id])) : undefined;
  const r = checkPolicySource(text, nodeIds);
  return r.ok ? [] : r.problems.map((p) => ({ line: p.line, message: p.column !== undefined ? `column ${p.column}: ${p.text}` : p.text }));
}
