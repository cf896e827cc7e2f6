// `pinhole admin policy set FILE` checks the file before sending it: JSON syntax, the policy
// schema and every reference, each error named by FILE:LINE and all of them in one pass, so
// nothing is sent (and nothing applied) on error.
import { JsonSyntaxError, keyLine, parseJsonWithLines } from '../../proto/control/json-lines.js';
import { Policy, policyIssues } from '../../proto/control/policy.js';

export type PolicyFileCheck =
  | { ok: true; policy: Policy }
  /** `hostnames`: bare node names the file used (the caller may look up who holds them now). */
  | { ok: false; errors: string[]; hostnames: string[] };

/**
 * Validates policy text; errors are "FILE:LINE: path: reason", in file order. `nodeIds` (node
 * name → id, as the coordinator lists them) turns a hostname refusal's hint into "(NAME is node:ID)".
 */
export function checkPolicyText(file: string, text: string, nodeIds?: ReadonlyMap<string, number>): PolicyFileCheck {
  let doc;
  try {
    doc = parseJsonWithLines(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return { ok: false, errors: [`${file}:${err.line}:${err.column}: not valid JSON: ${err.message}`], hostnames: [] };
    throw err;
  }
  const issues = policyIssues(doc.value);
  if (issues.length === 0) return { ok: true, policy: Policy.parse(doc.value) };
  const found: { line: number; text: string }[] = [];
  const hostnames = new Set<string>();
  for (const issue of issues) {
    if (issue.unknownKey !== undefined) {
      const k = issue.unknownKey;
      found.push({ line: keyLine(doc, issue.path, k), text: `${[...issue.path, k].join('.')}: unknown field (not part of the policy format)` });
      continue;
    }
    const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    let hint = '';
    if (issue.hostname !== undefined) {
      hostnames.add(issue.hostname);
      const id = nodeIds?.get(issue.hostname);
      if (id !== undefined) hint = ` (${issue.hostname} is node:${id})`;
    }
    found.push({ line: doc.lineOf(issue.path), text: `${where}${issue.message}${hint}` });
  }
  found.sort((a, b) => a.line - b.line);
  const errors = [...new Set(found.map((f) => `${file}:${f.line}: ${f.text}`))];
  return { ok: false, errors, hostnames: [...hostnames] };
}
