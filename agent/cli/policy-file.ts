// `pinhole admin policy set FILE` checks the file before sending it: JSON syntax, the policy
// schema and every reference, each error named by FILE:LINE and all of them in one pass, so
// nothing is sent (and nothing applied) on error. The check itself: proto/control/policy-text.ts.
import type { Policy } from '../../proto/control/policy.js';
import { checkPolicySource } from '../../proto/control/policy-text.js';

export type PolicyFileCheck =
  | { ok: true; policy: Policy }
  /** `hostnames`: bare node names the file used (the caller may look up who holds them now). */
  | { ok: false; errors: string[]; hostnames: string[] };

/**
 * Validates policy text; errors are "FILE:LINE: path: reason", in file order. `nodeIds` (node
 * name → id, as the coordinator lists them) turns a hostname refusal's hint into "(NAME is node:ID)".
 */
export function checkPolicyText(file: string, text: string, nodeIds?: ReadonlyMap<string, number>): PolicyFileCheck {
  const r = checkPolicySource(text, nodeIds);
  if (r.ok) return r;
  const errors = [...new Set(r.problems.map((p) => `${file}:${p.line}${p.column !== undefined ? `:${p.column}` : ''}: ${p.text}`))];
  const hostnames = [...new Set(r.problems.flatMap((p) => (p.hostname !== undefined ? [p.hostname] : [])))];
  return { ok: false, errors, hostnames };
}
