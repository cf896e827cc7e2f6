// The policy language and durations on their own: what parses, what is refused with which reason,
// what a compiled policy picks, and that no input makes the parsers throw anything unexpected.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Policy, parseDestination, parsePorts, parseSelector, policyIssues } from '../../proto/control/policy.js';
import { INTERNET_V4, INTERNET_V6, internetPrefixes, isInternetAddress, subtractPrefixes } from '../../proto/ip/internet.js';
import { cidrContains, formatCidr, parseAddress, parseCidr } from '../../proto/ip/address.js';
import { formatDuration, parseDuration } from '../../proto/control/duration.js';
import { isDecodeError } from '../../proto/errors.js';
import { describeZodError } from '../../proto/control/schemas.js';
import { CompiledPolicy, type PolicyNode } from '../../coordinator/policy.js';

const node = (id: number, name: string, tags: string[] = [], routes: string[] = [], user: string | null = null): PolicyNode => ({
  id, name, user, ipv4: `100.64.0.${id}`, ipv6: `fd7a:1e57:9a3c::6440:${id.toString(16)}`, tags, routes,
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
    groups: { 'group:ops': ['tag:admin', 'user:alice'] },
    tags: { 'tag:admin': [], 'tag:web': [], 'tag:router': [] },
    hosts: { office: '192.168.0.0/16' },
    acls: [
      { action: 'accept', src: ['group:ops'], dst: ['tag:web:22,443'] },
      { action: 'accept', src: ['100.64.0.0/10'], dst: ['office:*'], proto: ['tcp', 'icmp'] },
    ],
    autoApprovers: { routes: { '192.168.0.0/16': ['tag:router'] }, exitNode: ['tag:router'] },
  }));
  const alice = node(1, 'alice', [], [], 'alice');
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

describe('identities a node cannot choose', () => {
  test('user:, node: and autogroup:internet parse; malformed ones do not', () => {
    assert.deepEqual(parseSelector('user:Alice@Example.com'), { kind: 'user', text: 'user:alice@example.com' });
    assert.deepEqual(parseSelector('node:7'), { kind: 'node', text: 'node:7' });
    assert.deepEqual(parseSelector('AutoGroup:Internet'), { kind: 'internet', text: 'autogroup:internet' });
    assert.equal(parseDestination('user:alice:22')?.selector.text, 'user:alice');
    assert.equal(parseDestination('autogroup:internet:*')?.selector.kind, 'internet');
    for (const bad of ['user:', 'user:-x', 'user:a b', 'node:0', 'node:07', 'node:x', 'autogroup:lan', 'autogroup:']) assert.equal(parseSelector(bad), null, bad);
  });

  test('a bare hostname is refused wherever a selector goes, with the hint; hosts aliases are fine', () => {
    const issues = policyIssues({
      groups: { 'group:ops': ['alice-laptop'] },
      tags: { 'tag:web': ['bob'] },
      hosts: { office: '198.18.5.0/24' },
      acls: [{ action: 'accept', src: ['alice-laptop', 'user:alice'], dst: ['office:*', 'web:80', 'carol'] }],
      autoApprovers: { routes: { '198.18.0.0/15': ['gw'] }, exitNode: ['exit-box'] },
    });
    assert.deepEqual(issues.map((i) => [i.path.join('.'), i.hostname]), [
      ['groups.group:ops.0', 'alice-laptop'],
      ['tags.tag:web.0', 'bob'],
      ['acls.0.src.0', 'alice-laptop'],
      ['acls.0.dst.1', 'web'],
      ['acls.0.dst.2', 'carol'],
      ['autoApprovers.routes.198.18.0.0/15.0', 'gw'],
      ['autoApprovers.exitNode.0', 'exit-box'],
    ]);
    assert.equal(issues[2]!.message, '"alice-laptop" is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID');
    const r = Policy.safeParse({ acls: [{ action: 'accept', src: ['alice-laptop'], dst: ['*:*'] }] });
    assert.equal(r.success, false);
    assert.match(describeZodError(r.error!), /^acls\.0\.src\.0: "alice-laptop" is a hostname/);
  });

  test('autogroup:internet is a destination only', () => {
    const issues = policyIssues({
      groups: { 'group:g': ['autogroup:internet'] },
      acls: [{ action: 'accept', src: ['autogroup:internet'], dst: ['autogroup:internet:443'] }],
      autoApprovers: { exitNode: ['autogroup:internet'] },
    });
    assert.deepEqual(issues.map((i) => i.path.join('.')), ['groups.group:g.0', 'acls.0.src.0', 'autoApprovers.exitNode.0']);
    assert.ok(issues.every((i) => i.message === 'autogroup:internet is only a destination (acls dst)'));
  });

  test('shape errors and reference errors come out together, in one pass', () => {
    const issues = policyIssues({ acls: [{ action: 'deny', src: ['alice-laptop'], dst: 'all' }, { action: 'accept', src: ['tag:x'], dst: ['*:*'] }], owners: {} });
    const where = issues.map((i) => `${i.path.join('.')}${i.unknownKey ? `+${i.unknownKey}` : ''}`).sort();
    assert.deepEqual(where, ['+owners', 'acls.0.action', 'acls.0.dst', 'acls.0.src.0', 'acls.1.src.0']);
    // Junk of any shape never makes the reference pass throw.
    fc.assert(fc.property(fc.jsonValue(), (v) => Array.isArray(policyIssues(v))));
    fc.assert(fc.property(fc.record({ groups: fc.dictionary(fc.string(), fc.anything()), acls: fc.array(fc.anything()), autoApprovers: fc.anything() }, { requiredKeys: [] }), (v) => Array.isArray(policyIssues(v))));
  });

  const policy = new CompiledPolicy(Policy.parse({
    groups: { 'group:ops': ['user:alice', 'node:9'] },
    tags: { 'tag:web': [] },
    acls: [
      { action: 'accept', src: ['group:ops'], dst: ['tag:web:22'] },
      { action: 'accept', src: ['user:bob'], dst: ['autogroup:internet:*'] },
    ],
    autoApprovers: { exitNode: ['user:alice'], routes: { '198.18.0.0/15': ['node:9'] } },
  }));
  const web = node(3, 'web', ['tag:web']);
  const alice = node(5, 'alice-laptop', [], [], 'alice');

  test('membership follows the user and the node id, never the name', () => {
    assert.deepEqual(policy.roles(alice), { src: [0], dst: [] });
    assert.deepEqual(policy.roles(node(9, 'anything')), { src: [0], dst: [] });
    // A squatter with alice's name (after she renamed or left), and one with node 9's old name.
    assert.deepEqual(policy.roles(node(12, 'alice-laptop', [], [], 'mallory')), { src: [], dst: [] });
    assert.deepEqual(policy.roles(node(13, 'anything', [], [], null)), { src: [], dst: [] });
    // Alice renamed: still in.
    assert.deepEqual(policy.roles({ ...alice, name: 'alice-work' }), { src: [0], dst: [] });
    const adv = { advertisedRoutes: ['198.18.5.0/24'], advertisedExitNode: true };
    assert.deepEqual(policy.autoApproved({ ...alice, ...adv }), ['0.0.0.0/0', '::/0']);
    assert.deepEqual(policy.autoApproved({ ...node(12, 'alice-laptop', [], [], 'mallory'), ...adv }), []);
    assert.deepEqual(policy.autoApproved({ ...node(9, 'gw'), ...adv }), ['198.18.5.0/24']);
    assert.deepEqual(policy.sourceAddresses(0, [alice, web]), [alice.ipv4, alice.ipv6]);
  });

  test('autogroup:internet picks exit nodes and compiles to public space, never their LANs', () => {
    const exit = node(20, 'exit', [], ['0.0.0.0/0', '::/0', '198.18.7.0/24']);
    const router = node(21, 'router', [], ['198.18.8.0/24']);
    const bob = node(22, 'bob-laptop', [], [], 'bob');
    assert.deepEqual(policy.roles(exit).dst, [1]);
    assert.deepEqual(policy.roles(router).dst, [], 'a subnet router is not the internet');
    assert.deepEqual(policy.roles(bob).src, [1]);
    const rule = policy.ruleFor(1, exit, [bob.ipv4, bob.ipv6])!;
    const cidrs = rule.dst.map((d) => d.cidr);
    assert.deepEqual(cidrs, [...INTERNET_V4.map(formatCidr), '2000::/3']);
    assert.ok(rule.dst.every((d) => d.ports === '*'));
    const covered = (ip: string): boolean => {
      const a = parseAddress(ip);
      return cidrs.some((c) => { const p = parseCidr(c); return p.family === a.family && cidrContains(p, a.bytes); });
    };
    for (const ip of ['203.0.113.7', '198.51.100.1', '192.0.2.99', '8.8.8.8', '1.1.1.1', '2001:db8::1', '2a00:1450::1']) assert.ok(covered(ip), ip);
    for (const ip of ['198.18.7.1', '198.19.255.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '100.64.0.20', '127.0.0.1', '169.254.169.254', '224.0.0.1', '255.255.255.255', '0.1.2.3', '192.0.0.9', 'fd7a:1e57:9a3c::6440:14', 'fe80::1', 'ff02::1', '::1', 'fd00:ec2::254']) {
      assert.ok(!covered(ip), ip);
    }
    // An exit node that serves only IPv4 gets only the IPv4 part.
    const v4only = policy.ruleFor(1, node(23, 'exit4', [], ['0.0.0.0/0']), [])!;
    assert.ok(v4only.dst.every((d) => !d.cidr.includes(':')));
  });
});

describe('public address space (autogroup:internet)', () => {
  test('the prefix list and the address test agree, on any address', () => {
    const inList = (bytes: Uint8Array): boolean => (bytes.length === 4 ? INTERNET_V4 : INTERNET_V6).some((c) => cidrContains(c, bytes));
    fc.assert(fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), (b) => inList(b) === isInternetAddress(b)), { numRuns: 20_000 });
    fc.assert(fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => inList(b) === isInternetAddress(b)), { numRuns: 5_000 });
    assert.deepEqual(internetPrefixes(6), ['2000::/3']);
    assert.ok(INTERNET_V4.length <= 80, `${INTERNET_V4.length} prefixes: the minimal split of 0.0.0.0/0 around 11 holes`);
  });

  test('subtracting prefixes leaves disjoint prefixes covering exactly the rest', () => {
    const whole = parseCidr('0.0.0.0/0');
    fc.assert(fc.property(fc.array(fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 1, max: 32 })), { maxLength: 6 }), fc.uint8Array({ minLength: 4, maxLength: 4 }), (holes, probe) => {
      const hs = holes.map(([b, bits]) => ({ family: 4 as const, bytes: b, bits }));
      const rest = subtractPrefixes(whole, hs);
      const inHole = hs.some((h) => cidrContains(h, probe));
      const hits = rest.filter((c) => cidrContains(c, probe)).length;
      return hits === (inHole ? 0 : 1);
    }), { numRuns: 2_000 });
  });
});
