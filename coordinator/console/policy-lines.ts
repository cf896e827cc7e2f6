// The console's policy editor check: the policy as text (JSON), validated exactly as a save would
// validate it (policyIssues, the admin API's check), each problem placed at its line so the editor
// can show it there before anything is saved.
import { isMap, isNode, isPair, isScalar, parseDocument, type Document } from 'yaml';
import { policyIssues } from '../../proto/control/policy.js';

export interface PolicyTextIssue {
  /** 1-based line in the text, or null when the problem has no place (e.g. the whole document). */
  line: number | null;
  path: string;
  message: string;
}

/** Largest policy text the editor checks (the admin API's body limit). */
export const MAX_POLICY_TEXT = 1024 * 1024;

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Offset of the node at `path` (or of the deepest existing parent; of a named key if given). */
function offsetOf(doc: Document, path: (string | number)[], key: string | undefined): number | null {
  for (let n = path.length; n >= 0; n--) {
    const node: unknown = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (!isNode(node)) continue;
    if (key !== undefined && n === path.length && isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && p.key.value === key);
      if (pair && isNode(pair.key) && pair.key.range) return pair.key.range[0];
    }
    if (node.range) return node.range[0];
  }
  return null;
}

/** Problems of a policy text; [] means a save would accept it. */
export function checkPolicyText(text: string): PolicyTextIssue[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message.split('\n')[0]!;
    const pos = /position (\d+)/.exec(message);
    const lc = /line (\d+)/.exec(message);
    const line = lc ? Number(lc[1]) : pos ? lineAt(text, Number(pos[1])) : null;
    return [{ line, path: '', message: `not valid JSON: ${message}` }];
  }
  const issues = policyIssues(value);
  if (issues.length === 0) return [];
  const doc = parseDocument(text, { keepSourceTokens: false });
  return issues.map((i) => {
    const at = offsetOf(doc, i.path, i.unknownKey);
    return { line: at === null ? null : lineAt(text, at), path: i.path.join('.'), message: i.message };
  });
}
