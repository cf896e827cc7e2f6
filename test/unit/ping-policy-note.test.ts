// `pinhole ping` says when the access policy lets nothing in from the peer: acceptsAnythingFrom
// decides it from the node's packet filter rules, ignoring ports and protocols.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { acceptsAnythingFrom } from '../../agent/filter/filter-rules.js';
import type { FilterRule } from '../../proto/control/schemas.js';

const rule = (srcIps: string[], ports = '22', protocols: number[] = [6]): FilterRule => ({ srcIps, dst: [{ cidr: '100.64.0.1/32', ports }], protocols });

test('a rule naming the peer (host or prefix, v4 or v6) lets something in; others do not', () => {
  const rules = [rule(['100.64.0.2']), rule(['100.80.0.0/12', 'fd7a:115c:a1e0::/48'])];
  assert.equal(acceptsAnythingFrom(rules, '100.64.0.2'), true);
  assert.equal(acceptsAnythingFrom(rules, '100.64.0.3'), false);
  assert.equal(acceptsAnythingFrom(rules, '100.81.2.3'), true);
  assert.equal(acceptsAnythingFrom(rules, 'fd7a:115c:a1e0::5'), true);
  assert.equal(acceptsAnythingFrom(rules, 'fd7a:115c:a1e1::5'), false);
});

test('an empty rule set (a policy that lets nothing in) and unparsable rules accept nothing', () => {
  assert.equal(acceptsAnythingFrom([], '100.64.0.2'), false);
  assert.equal(acceptsAnythingFrom([rule(['not-an-ip'])], '100.64.0.2'), false);
  assert.equal(acceptsAnythingFrom([rule(['100.64.0.2'], 'bogus')], '100.64.0.2'), false, 'a rule that does not compile fails closed');
});

test('the whole overlay as the source lets every peer in', () => {
  assert.equal(acceptsAnythingFrom([rule(['100.64.0.0/10'], '*', [])], '100.127.255.254'), true);
});
