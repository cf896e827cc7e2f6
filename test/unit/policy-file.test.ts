// `pinhole admin policy set FILE` checks the file first and names every error by FILE:LINE:
// JSON syntax (with the column), shape errors, unknown fields and broken references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkPolicyText } from '../../agent/cli/policy-file.js';
import { parseJsonWithLines, JsonSyntaxError } from '../../proto/control/json-lines.js';

test('a valid policy passes and comes back parsed', () => {
  const r = checkPolicyText('p.json', '{ "acls": [ { "action": "accept", "src": ["*"], "dst": ["*:*"] } ] }');
  assert.ok(r.ok);
  assert.equal(r.policy.acls.length, 1);
});

test('schema errors are named by the line of the offending value or key, in file order', () => {
  const text = [
    '{',
    '  "acls": [',
    '    {',
    '      "action": "deny",',
    '      "src": ["*"],',
    '      "dst": "all"',
    '    }',
    '  ],',
    '  "owners": {}',
    '}',
  ].join('\n');
  const r = checkPolicyText('p.json', text);
  assert.ok(!r.ok);
  assert.equal(r.errors.length, 3, r.errors.join('\n'));
  assert.match(r.errors[0]!, /^p\.json:4: acls\.0\.action: /);
  assert.match(r.errors[1]!, /^p\.json:6: acls\.0\.dst: /);
  assert.match(r.errors[2]!, /^p\.json:9: owners: unknown field/);
});

test('reference errors (undeclared tags, bad ports, bad hosts) point at their line', () => {
  const text = '{\n  "tags": {"tag:a": []},\n  "hosts": {"office": "nope"},\n  "acls": [\n    {"action": "accept", "src": ["tag:b"], "dst": ["tag:a:1-99999"]}\n  ]\n}';
  const r = checkPolicyText('x.json', text);
  assert.ok(!r.ok);
  assert.deepEqual(r.errors.map((e) => e.split(':').slice(0, 2).join(':')), ['x.json:3', 'x.json:5', 'x.json:5']);
  assert.match(r.errors[0]!, /hosts\.office: "nope" is not an IP address or CIDR/);
  assert.match(r.errors.join('\n'), /tag:b is not declared under "tags"/);
});

test('JSON syntax errors give line and column; the reader agrees with JSON.parse on valid text', () => {
  const r = checkPolicyText('s.json', '{\n  "acls": [\n    {"action": "accept",, }\n  ]\n}');
  assert.ok(!r.ok);
  assert.match(r.errors[0]!, /^s\.json:3:25: not valid JSON: expected a "quoted" member name/);
  for (const bad of ['', '{', '{"a":1}x', '[1,]', '{"a" 1}', '"\\x"', 'nul', '{"a":"\u0001"}']) {
    assert.throws(() => parseJsonWithLines(bad), JsonSyntaxError, JSON.stringify(bad));
  }
  for (const good of ['{}', '[]', '{"a":[1,2.5e3,-0,true,false,null,"x\\n\\u00e9"],"b":{"c":{}}}', ' 7 ']) {
    assert.deepEqual(parseJsonWithLines(good).value, JSON.parse(good));
  }
});

test('a bare hostname is refused with the hint and the node holding it now; every error in one pass', () => {
  const text = [
    '{',
    '  "groups": { "group:ops": ["alice-laptop", "user:alice"] },',
    '  "acls": [',
    '    { "action": "accept", "src": ["group:ops"], "dst": ["web:22"] },',
    '    { "action": "deny", "src": ["*"], "dst": ["*:*"] }',
    '  ],',
    '  "autoApprovers": { "exitNode": ["alice-laptop"] }',
    '}',
  ].join('\n');
  const r = checkPolicyText('p.json', text, new Map([['alice-laptop', 7]]));
  assert.ok(!r.ok);
  assert.deepEqual(r.errors, [
    'p.json:2: groups.group:ops.0: "alice-laptop" is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID (alice-laptop is node:7)',
    'p.json:4: acls.0.dst.0: "web" is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID',
    r.errors[2]!,
    'p.json:7: autoApprovers.exitNode.0: "alice-laptop" is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID (alice-laptop is node:7)',
  ]);
  assert.match(r.errors[2]!, /^p\.json:5: acls\.1\.action: /, 'the shape error did not hide the others');
  assert.deepEqual(r.hostnames.sort(), ['alice-laptop', 'web']);
  const without = checkPolicyText('p.json', text);
  assert.ok(!without.ok && without.errors[0]!.endsWith('node:ID'));
});

test('every error in one pass: undefined group, bad action, unknown field and ports out of range', () => {
  const text = [
    '{',
    '  "groups": { "group:ops": ["user:alice"] },',
    '  "acls": [',
    '    { "action": "accept", "src": ["group:nope"], "dst": ["tag:web:99999"] },',
    '    { "action": "allow", "src": ["*"], "dst": ["*:22"], "ports": 1 },',
    '    { "action": "accept", "src": ["*"], "dst": ["*:90-80"] }',
    '  ],',
    '  "tags": { "tag:web": [] }',
    '}',
  ].join('\n');
  const r = checkPolicyText('p.json', text);
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(r.errors, [
    'p.json:4: acls.0.src.0: group:nope is not defined under "groups"',
    'p.json:4: acls.0.dst.0: "tag:web:99999": port out of range (0-65535): 99999',
    'p.json:5: acls.1.action: Invalid input: expected "accept"',
    'p.json:5: acls.1.ports: unknown field (not part of the policy format)',
    'p.json:6: acls.2.dst.0: "*:90-80": port range 90-80 runs backwards',
  ]);
});
