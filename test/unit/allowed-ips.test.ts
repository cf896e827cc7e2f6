// Cryptokey routing: the longest matching prefix decides which peer owns an address, for IPv4 and
// IPv6, read straight out of a packet — checked by hand and against a linear-scan model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AllowedIps } from '../../proto/wireguard/allowed-ips.js';
import { cidrContains, formatCidr, maskCidr, parseAddress, parseCidr, type Cidr } from '../../proto/ip/address.js';

function lookup<T>(t: AllowedIps<T>, addr: string): T | undefined {
  const a = parseAddress(addr);
  // Put the address at an odd offset inside a larger buffer, like a header field in a packet.
  const buf = new Uint8Array(a.bytes.length + 7);
  buf.set(a.bytes, 5);
  return a.family === 4 ? t.lookupV4(buf, 5) : t.lookupV6(buf, 5);
}

function table(routes: Record<string, string>): AllowedIps<string> {
  const t = new AllowedIps<string>();
  for (const [cidr, peer] of Object.entries(routes)) t.insert(parseCidr(cidr), peer);
  return t;
}

test('longest prefix wins across overlapping IPv4 prefixes, /0 to /32', () => {
  const t = table({ '0.0.0.0/0': 'default', '10.0.0.0/8': 'a', '10.1.0.0/16': 'b', '10.1.2.0/24': 'c', '10.1.2.3/32': 'd', '10.1.2.128/25': 'e' });
  assert.equal(lookup(t, '10.1.2.3'), 'd');
  assert.equal(lookup(t, '10.1.2.4'), 'c');
  assert.equal(lookup(t, '10.1.2.200'), 'e');
  assert.equal(lookup(t, '10.1.3.1'), 'b');
  assert.equal(lookup(t, '10.2.0.0'), 'a');
  assert.equal(lookup(t, '11.0.0.0'), 'default');
  assert.equal(lookup(t, '255.255.255.255'), 'default');
  assert.equal(lookup(t, 'fd00::1'), undefined, 'families are separate');
  assert.equal(t.size, 6);
});

test('no match without a covering prefix; /32 and /128 match only themselves', () => {
  const t = table({ '192.168.1.1/32': 'h4', 'fd00::1/128': 'h6', '172.16.0.0/12': 'p' });
  assert.equal(lookup(t, '192.168.1.1'), 'h4');
  assert.equal(lookup(t, '192.168.1.0'), undefined);
  assert.equal(lookup(t, '192.168.1.2'), undefined);
  assert.equal(lookup(t, 'fd00::1'), 'h6');
  assert.equal(lookup(t, 'fd00::'), undefined);
  assert.equal(lookup(t, 'fd00::2'), undefined);
  assert.equal(lookup(t, '172.31.255.255'), 'p');
  assert.equal(lookup(t, '172.32.0.0'), undefined);
  assert.equal(lookup(new AllowedIps<string>(), '1.2.3.4'), undefined);
});

test('IPv6 longest prefix incl. ::/0 and prefixes crossing word boundaries', () => {
  const t = table({ '::/0': 'any', 'fd7a:115c:a1e0::/48': 'tail', 'fd7a:115c:a1e0:ab12::/64': 'net', 'fd7a:115c:a1e0:ab12:4843:cd96:6258:b240/128': 'host', 'fd7a:115c:a1e0:ab12:8000::/33': 'x', '2001:db8::/31': 'doc' });
  assert.equal(lookup(t, 'fd7a:115c:a1e0:ab12:4843:cd96:6258:b240'), 'host');
  assert.equal(lookup(t, 'fd7a:115c:a1e0:ab12:4843:cd96:6258:b241'), 'net');
  assert.equal(lookup(t, 'fd7a:115c:a1e0:1::1'), 'tail');
  assert.equal(lookup(t, '2001:db9:ffff::'), 'doc');
  assert.equal(lookup(t, '2001:dba::'), 'any');
  assert.equal(lookup(t, '::'), 'any');
});

test('inserting an existing prefix replaces its owner; host bits are masked', () => {
  const t = table({ '10.0.0.0/24': 'old' });
  t.insert(parseCidr('10.0.0.77/24'), 'new');
  assert.equal(lookup(t, '10.0.0.1'), 'new');
  assert.equal(t.size, 1);
  assert.deepEqual(t.entries().map((e) => [formatCidr(e.cidr), e.value]), [['10.0.0.0/24', 'new']]);
});

test('remove takes out exactly one prefix and less specific ones take over', () => {
  const t = table({ '10.0.0.0/8': 'a', '10.1.0.0/16': 'b', '10.1.1.0/24': 'c', '10.1.2.0/24': 'd' });
  assert.equal(t.remove(parseCidr('10.1.0.0/16')), true);
  assert.equal(t.remove(parseCidr('10.1.0.0/16')), false);
  assert.equal(t.remove(parseCidr('10.1.0.0/17')), false, 'a fork node is not a prefix');
  assert.equal(lookup(t, '10.1.1.1'), 'c');
  assert.equal(lookup(t, '10.1.3.1'), 'a');
  assert.equal(t.remove(parseCidr('10.1.1.9/24')), true, 'host bits masked');
  assert.equal(lookup(t, '10.1.1.1'), 'a');
  assert.equal(t.remove(parseCidr('10.0.0.0/8')), true);
  assert.equal(lookup(t, '10.1.1.1'), undefined);
  assert.equal(lookup(t, '10.1.2.1'), 'd');
  assert.equal(t.size, 1);
});

test('removeValue drops every prefix of one owner; clear drops all', () => {
  const peerA = { name: 'a' };
  const peerB = { name: 'b' };
  const t = new AllowedIps<{ name: string }>();
  for (const c of ['10.0.0.0/8', '10.2.0.0/16', 'fd00::/8', '0.0.0.0/0']) t.insert(parseCidr(c), peerA);
  for (const c of ['10.1.0.0/16', 'fd00:1::/32']) t.insert(parseCidr(c), peerB);
  t.removeValue(peerA);
  assert.equal(lookup(t, '10.2.0.1'), undefined);
  assert.equal(lookup(t, '10.1.0.1'), peerB);
  assert.equal(lookup(t, 'fd00:1::1'), peerB);
  assert.equal(lookup(t, 'fd00:2::1'), undefined);
  assert.deepEqual(t.entries().map((e) => formatCidr(e.cidr)).sort(), ['10.1.0.0/16', 'fd00:1::/32']);
  t.clear();
  assert.equal(t.size, 0);
  assert.deepEqual(t.entries(), []);
});

test('out-of-bounds offsets find nothing instead of reading garbage', () => {
  const t = table({ '0.0.0.0/0': 'v4', '::/0': 'v6' });
  assert.equal(t.lookupV4(new Uint8Array(4), 1), undefined);
  assert.equal(t.lookupV4(new Uint8Array(4), -1), undefined);
  assert.equal(t.lookupV6(new Uint8Array(16), 1), undefined);
  assert.equal(t.lookupV4(new Uint8Array(4), 0), 'v4');
  assert.equal(t.lookupV6(new Uint8Array(20), 4), 'v6');
});

test('malformed prefixes are programmer errors (RangeError)', () => {
  const t = new AllowedIps<string>();
  assert.throws(() => t.insert({ family: 4, bytes: new Uint8Array(16), bits: 8 }, 'x'), RangeError);
  assert.throws(() => t.insert({ family: 6, bytes: new Uint8Array(16), bits: 129 }, 'x'), RangeError);
  assert.throws(() => t.insert({ family: 5 as 4, bytes: new Uint8Array(4), bits: 8 }, 'x'), RangeError);
});

// Prefixes drawn from a small address space so that they overlap, nest and collide often.
const v4Bytes = fc.tuple(fc.constantFrom(0, 10, 128, 255), fc.constantFrom(0, 1, 128), fc.nat(255), fc.constantFrom(0, 1, 255));
const v6Bytes = fc.tuple(fc.constantFrom(0, 0xfd, 0xff), fc.constantFrom(0, 0x80), fc.nat(255), fc.constantFrom(0, 1), fc.nat(255));
const cidrArb: fc.Arbitrary<Cidr> = fc.oneof(
  fc.tuple(v4Bytes, fc.nat(32)).map(([b, bits]) => ({ family: 4 as const, bytes: Uint8Array.from(b), bits })),
  fc.tuple(v6Bytes, fc.nat(128)).map(([b, bits]) => {
    const bytes = new Uint8Array(16);
    [bytes[0], bytes[3], bytes[4], bytes[8], bytes[15]] = b;
    return { family: 6 as const, bytes, bits };
  }),
);
const op = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(fc.constant('insert' as const), cidrArb, fc.nat(5)) },
  { weight: 2, arbitrary: fc.tuple(fc.constant('remove' as const), cidrArb, fc.constant(0)) },
  { weight: 1, arbitrary: fc.tuple(fc.constant('removeValue' as const), cidrArb, fc.nat(5)) },
);

/** The specification: a list of (masked prefix, owner), scanned for the longest match. */
class LinearModel {
  routes: Array<{ cidr: Cidr; key: string; value: number }> = [];
  insert(c: Cidr, value: number): void {
    const m = maskCidr(c);
    const key = formatCidr(m);
    const existing = this.routes.find((r) => r.key === key);
    if (existing) existing.value = value;
    else this.routes.push({ cidr: m, key, value });
  }
  remove(c: Cidr): boolean {
    const key = formatCidr(maskCidr(c));
    const before = this.routes.length;
    this.routes = this.routes.filter((r) => r.key !== key);
    return this.routes.length !== before;
  }
  removeValue(value: number): void {
    this.routes = this.routes.filter((r) => r.value !== value);
  }
  lookup(addr: Uint8Array): number | undefined {
    let best: { bits: number; value: number } | undefined;
    for (const r of this.routes) {
      if (r.cidr.bytes.length !== addr.length || !cidrContains(r.cidr, addr)) continue;
      if (!best || r.cidr.bits > best.bits) best = { bits: r.cidr.bits, value: r.value };
    }
    return best?.value;
  }
}

/** Trie internals, looked at only to check that removals leave no dead nodes behind. */
interface NodeView {
  hasValue: boolean;
  bits: number;
  child0: NodeView | null;
  child1: NodeView | null;
  parent: NodeView | null;
}
function checkShape(t: AllowedIps<number>): void {
  const internals = t as unknown as { v4: { root: NodeView | null }; v6: { root: NodeView | null } };
  const walk = (n: NodeView | null, parent: NodeView | null): void => {
    if (n === null) return;
    assert.equal(n.parent, parent, 'parent pointer');
    if (parent) assert.ok(n.bits > parent.bits, 'children are longer prefixes');
    if (!n.hasValue) assert.ok(n.child0 && n.child1, 'a node without a value joins two subtrees');
    walk(n.child0, n);
    walk(n.child1, n);
  };
  walk(internals.v4.root, null);
  walk(internals.v6.root, null);
  if (t.size === 0) assert.ok(internals.v4.root === null && internals.v6.root === null, 'empty table, empty tries');
}

test('matches a linear-scan model over random insert/remove/lookup sequences', () => {
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80, size: 'max' }), fc.array(cidrArb, { minLength: 20, maxLength: 20 }), (ops, probes) => {
      const t = new AllowedIps<number>();
      const model = new LinearModel();
      for (const [kind, cidr, value] of ops) {
        if (kind === 'insert') {
          t.insert(cidr, value);
          model.insert(cidr, value);
        } else if (kind === 'remove') {
          assert.equal(t.remove(cidr), model.remove(cidr));
        } else {
          t.removeValue(value);
          model.removeValue(value);
        }
        // Probe at the prefix's own address, and just past it, after every step.
        for (const addr of [cidr.bytes, ...probes.slice(0, 3).map((p) => p.bytes)]) {
          const got = addr.length === 4 ? t.lookupV4(addr, 0) : t.lookupV6(addr, 0);
          assert.equal(got, model.lookup(addr));
        }
      }
      for (const p of probes) {
        const got = p.bytes.length === 4 ? t.lookupV4(p.bytes, 0) : t.lookupV6(p.bytes, 0);
        assert.equal(got, model.lookup(p.bytes));
      }
      assert.equal(t.size, model.routes.length);
      checkShape(t);
      const entries = t.entries().map((e) => `${formatCidr(e.cidr)}=${e.value}`).sort();
      assert.deepEqual(entries, model.routes.map((r) => `${r.key}=${r.value}`).sort());
      for (const e of t.entries()) assert.equal(t.remove(e.cidr), true);
      checkShape(t);
      return true;
    }),
    { numRuns: 10_000 },
  );
});
