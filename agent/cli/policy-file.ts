// `pinhole admin policy set FILE` checks the file before sending it: JSON syntax and the policy
// schema, every error named by FILE:LINE, so nothing is sent (and nothing applied) on error.
import { JsonSyntaxError, keyLine, parseJsonWithLines } from '../../proto/control/json-lines.js';
import { Policy } from '../../proto/control/policy.js';

export type PolicyFileCheck = { ok: true; policy: Policy } | { ok: false; errors: string[] };

/** Validates policy text; errors are "FILE:LINE: path: reason", in file order. */
export function checkPolicyText(file: string, text: string): PolicyFileCheck {
  let doc;
  try {
    doc = parseJsonWithLines(text);
  } catch (err) {
    if (err instanceof JsonSyntaxError) return { ok: false, errors: [`${file}:${err.line}:${err.column}: not valid JSON: ${err.message}`] };
    throw err;
  }
  const parsed = Policy.safeParse(doc.value);
  if (parsed.success) return { ok: true, policy: parsed.data };
  const found: { line: number; text: string }[] = [];
  for (const issue of parsed.error.issues) {
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    const where = path.length > 0 ? `${path.join('.')}: ` : '';
    if (issue.code === 'unrecognized_keys') {
      for (const k of issue.keys) found.push({ line: keyLine(doc, path, k), text: `${[...path, k].join('.')}: unknown field (not part of the policy format)` });
      continue;
    }
    found.push({ line: doc.lineOf(path), text: `${where}${issue.message}` });
  }
  found.sort((a, b) => a.line - b.line);
  const errors = [...new Set(found.map((f) => `${file}:${f.line}: ${f.text}`))];
  return { ok: false, errors };
}
