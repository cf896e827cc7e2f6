// A policy as text (JSON), checked as the coordinator will check it: syntax, the schema and every
// reference, each problem placed at its line, all of them in one pass and in text order. The
// admin CLI (`policy set FILE`) and the web console's editor both ask this one function.
import { JsonSyntaxError, keyLine, parseJsonWithLines } from './json-lines.js';
import { Policy, policyIssues } from './policy.js';

export interface PolicyTextProblem {
  /** 1-based line of the offending value or key. */
  line: number;
  /** Only for a JSON syntax error. */
  column?: number;
  /** "path: reason" (path omitted for the whole document). */
  text: string;
  /** A bare node name the policy used (the caller may say which node holds it now). */
  hostname?: string;
}

export type PolicyTextCheck = { ok: true; policy: Policy } | { ok: false; problems: PolicyTextProblem[] };

export function checkPolicySource(text: string, nodeIds?: ReadonlyMap<string, number>): PolicyTextCheck {
  let doc;
  try {
    doc = parseJsonWithLines(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return { ok: false, problems: [{ line: err.line, column: err.column, text: `not valid JSON: ${err.message}` }] };
    throw err;
  }
  const issues = policyIssues(doc.value);
  if (issues.length === 0) return { ok: true, policy: Policy.parse(doc.value) };
  const problems: PolicyTextProblem[] = [];
  for (const issue of issues) {
    if (issue.unknownKey !== undefined) {
      const k = issue.unknownKey;
      problems.push({ line: keyLine(doc, issue.path, k), text: `${[...issue.path, k].join('.')}: unknown field (not part of the policy format)` });
      continue;
    }
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    let hint = '';
    if (issue.hostname !== undefined) {
      const id = nodeIds?.get(issue.hostname);
      if (id !== undefined) hint = ` (${issue.hostname} is node:${id})`;
    }
    problems.push({ line: doc.lineOf(issue.path), text: `${where}${issue.message}${hint}`, ...(issue.hostname !== undefined ? { hostname: issue.hostname } : {}) });
  }
  problems.sort((a, b) => a.line - b.line);
  return { ok: false, problems };
}
