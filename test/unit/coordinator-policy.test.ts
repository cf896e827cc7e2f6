// The policy language and durations on their own: what parses, what is refused with which reason,
// what a compiled policy picks, and that no input makes the parsers throw anything unexpected.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Policy, parseDestination, parsePorts, parseSelector } from '../../proto/control/policy.js';
import { formatDuration, parseDuration } from '../../proto/control/duration.js';
import { isDecodeError } from '../../proto/errors.js';
import { describeZodError } from '../../proto/control/schemas.js';
import { CompiledPolicy, type PolicyNode } from '../../coordinator/policy.js';

const node = (id: number, name: string, tags: string[] = [], routes: string[] = []): PolicyNode => ({
  id, name, ipv4: `100.64.0.${id}`, ipv6: `fd7a:1e57:9a3c::6440:${id.toString(16)}`, tags, routes,
});

describe('durations', () => {
  test('units and combinations', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('180d'), 180 * 86_400_000);
    for (const bad of ['', '10', '5 m', 'm5', '1y', '-1s', '1.5h']) assert.throws(() => parseDuration(bad), /not a duration/, bad);
  });

  test('format then parse gives the same milliseconds; junk only ever raises DecodeError', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 10 * 365 * 86_400_000 }), (ms) => parseDuration(formatDuration(ms)) === ms));
    fc.assert(fc.property(fc.string({ maxLength: 40 }), (s) => {
      try {
        parseDuration(s);
      } catch (err) {
        return isDecodeError(err);
      }
      return true;
    }));
  });
});

describe('policy syntax', () => {
  test('selectors, ports and destinations', () => {
    assert.deepEqual(parseSelector('*'), { kind: 'all', text: '*' });
    assert.equal(parseSelector('tag:web')?.kind, 'tag');
    assert.equal(parseSelector('group:ops')?.kind, 'group');
    assert.equal(parseSelector('10.0.0.0/8')?.kind, 'cidr');
    assert.equal(parseSelector('fd7a::1')?.kind, 'cidr');
    assert.deepEqual(parseSelector('Laptop'), { kind: 'name', text: 'laptop' });
    for (const bad of ['10.0.0.0/33', 'tag:', 'a b', '-x', '999.1.1.1']) assert.equal(parseSelector(bad), null, bad);
    assert.deepEqual(parsePorts('22,80-81'), [{ first: 22, last: 22 }, { first: 80, last: 81 }]);
    for (const bad of ['', '70000', '9-1', 'http', '22,']) assert.equal(parsePorts(bad), null, bad);
    assert.equal(parseDestination('fd7a::1:22')?.selector.text, 'fd7a::1');
    assert.equal(parseDestination('tag:web:*')?.portsText, '*');
    assert.equal(parseDestination('tag:web'), null);
  });

  test('no string makes the selector, port or destination parsers throw', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => {
      parseSelector(s);
      parsePorts(s);
      parseDestination(s);
      return true;
    }));
  });

  test('references must resolve: one-line reasons naming the place', () => {
    const cases: [unknown, string][] = [
      [{ acls: [{ action: 'accept', src: ['tag:x'], dst: ['*:*'] }] }, 'acls.0.src.0: tag:x is not declared under "tags"'],
      [{ groups: { 'group:a': ['group:b'] }, acls: [] }, 'groups.group:a.0: groups cannot contain groups (group:b)'],
      [{ hosts: { db: 'db.example' }, acls: [] }, 'hosts.db: "db.example" is not an IP address or CIDR'],
      [{ acls: [{ action: 'accept', src: ['*'], dst: ['*'] }] }, 'acls.0.dst.0: "*" is not SELECTOR:PORTS (e.g. tag:web:80,443 or *:*)'],
      [{ acls: [], autoApprovers: { routes: { '10.0.0.0/8': ['tag:r'] } } }, 'autoApprovers.routes.10.0.0.0/8.0: tag:r is not declared under "tags"'],
    ];
    for (const [p, reason] of cases) {
      const r = Policy.safeParse(p);
      assert.equal(r.success, false);
      assert.equal(describeZodError(r.error!), reason);
    }
  });
});

describe('compiled policy', () => {
  const policy = new CompiledPolicy(Policy.parse({
    groups: { 'group:ops': ['tag:admin', 'alice'] },
    tags: { 'tag:admin': [], 'tag:web': [], 'tag:router': [] },
    hosts: { office: '192.168.0.0/16' },
    acls: [
      { action: 'accept', src: ['group:ops'], dst: ['tag:web:22,443'] },
      { action: 'accept', src: ['100.64.0.0/10'], dst: ['office:*'], proto: ['tcp', 'icmp'] },
    ],
    autoApprovers: { routes: { '192.168.0.0/16': ['tag:router'] }, exitNode: ['tag:router'] },
  }));
  const alice = node(1, 'alice');
  const admin = node(2, 'ops-box', ['tag:admin']);
  const web = node(3, 'web', ['tag:web']);
  const router = node(4, 'gw', ['tag:router'], ['192.168.5.0/24']);

  test('roles: who is a source and a destination of which rule', () => {
    assert.deepEqual(policy.roles(alice), { src: [0, 1], dst: [] });
    assert.deepEqual(policy.roles(admin), { src: [0, 1], dst: [] });
    assert.deepEqual(policy.roles(web), { src: [1], dst: [0] });
    assert.deepEqual(policy.roles(router), { src: [1], dst: [1] });
  });

  test('filter rules: the destination node\'s own addresses or the served part of a prefix', () => {
    const src0 = policy.sourceAddresses(0, [alice, admin]);
    assert.deepEqual(src0, [alice.ipv4, alice.ipv6, admin.ipv4, admin.ipv6]);
    assert.deepEqual(policy.ruleFor(0, web, src0), { srcIps: src0, dst: [{ cidr: '100.64.0.3/32', ports: '22,443' }, { cidr: 'fd7a:1e57:9a3c::6440:3/128', ports: '22,443' }], protocols: [] });
    assert.deepEqual(policy.ruleFor(1, router, ['100.64.0.0/10']), { srcIps: ['100.64.0.0/10'], dst: [{ cidr: '192.168.5.0/24', ports: '*' }], protocols: [6, 1, 58] });
    assert.equal(policy.ruleFor(0, alice, src0), null);
  });

  test('auto-approval: only advertised routes inside an approver prefix, for matching nodes', () => {
    const adv = { advertisedRoutes: ['192.168.5.0/24', '10.0.0.0/8'], advertisedExitNode: true };
    assert.deepEqual(policy.autoApproved({ ...router, ...adv }), ['192.168.5.0/24', '0.0.0.0/0', '::/0']);
    assert.deepEqual(policy.autoApproved({ ...web, ...adv }), []);
  });
});
