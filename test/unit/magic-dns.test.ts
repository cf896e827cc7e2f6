// MagicDNS without the network: the coordinator's flags, the reserved address, the answers the
// agent gives from its name table, UDP truncation, the resolv.conf rewrite/restore, and a fuzz of
// the query path (random and mutated bytes: never a throw, malformed ones counted).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';
import { buildDnsConfig, DnsConfigError, MAGIC_DNS_IPV4 } from '../../proto/dns/dns-config.js';
import { Netmap } from '../../proto/control/schemas.js';
import { AddressPool } from '../../coordinator/addresses.js';
import { buildNameTable, reverseName } from '../../agent/dns/name-table.js';
import { decide, decodeQuery, fitUdp, MalformedQueryError } from '../../agent/dns/dns-answer.js';
import { handleQuery, newDnsCounters } from '../../agent/dns/dns-server.js';
import { DnsForwarder } from '../../agent/dns/dns-forwarder.js';
import { ResolvConf, ResolvConfBusyError } from '../../agent/dns/resolv-conf.js';

const table = buildNameTable({ domain: 'pinhole.internal', routes: [{ suffix: 'corp.example', resolver: '192.0.2.53:5353' }] }, [
  { name: 'alpha', ipv4: '100.64.0.1', ipv6: 'fd7a:1e57:9a3c::6440:1' },
  { name: 'beta', ipv4: '100.64.0.2', ipv6: 'fd7a:1e57:9a3c::6440:2' },
]);

function query(name: string, type: string, id = 7): DecodedPacket {
  return decodeQuery(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: type as 'A', name }] }));
}

function answerOf(name: string, type: string): { rcode: string; data: unknown[]; aa: boolean } {
  const d = decide(query(name, type), table);
  assert.equal(d.kind, 'answer', `${name} ${type} should be answered locally`);
  if (d.kind !== 'answer') throw new Error('unreachable');
  const r = dnsPacket.decode(dnsPacket.encode(d.response));
  return { rcode: (r as { rcode?: string }).rcode ?? '', data: (r.answers ?? []).map((a) => (a as { data?: unknown }).data), aa: r.flag_aa };
}

describe('coordinator DNS flags', () => {
  it('accepts a domain and split routes, lower-cased, trailing dot dropped', () => {
    assert.deepEqual(buildDnsConfig('Corp.Pinhole.', ['Corp.Example=192.0.2.53', 'lab.example=[fd00::53]:5353']), {
      domain: 'corp.pinhole', routes: [{ suffix: 'corp.example', resolver: '192.0.2.53' }, { suffix: 'lab.example', resolver: '[fd00::53]:5353' }],
    });
  });
  it('refuses bad domains and routes with one line naming the flag', () => {
    for (const [d, r] of [['bad_domain', []], ['', []], ['1.2.3.4', []], ['a..b', []], ['ok.internal', ['nosep']],
      ['ok.internal', ['x.example=1.2.3.256']], ['ok.internal', ['x.example=192.0.2.1:70000']], ['ok.internal', ['h.ok.internal=192.0.2.1']]] as const) {
      assert.throws(() => buildDnsConfig(d, r), (e: Error) => e instanceof DnsConfigError && /^--dns-(domain|route): /.test(e.message) && !e.message.includes('\n'));
    }
  });
  it('is part of the netmap schema (and optional, for netmaps saved before it)', () => {
    const base = {
      type: 'netmap', seq: 0, packetFilter: null, relays: [], peers: [],
      self: { id: 1, name: 'a', nodeKey: 'A'.repeat(43) + '=', ipv4: '100.64.0.1', ipv6: 'fd7a:1e57:9a3c::6440:1', keyExpiresAt: null, tags: [] },
    };
    assert.equal(Netmap.safeParse(base).success, true);
    assert.equal(Netmap.parse({ ...base, dns: { domain: 'pinhole.internal' } }).dns?.domain, 'pinhole.internal');
    assert.equal(Netmap.safeParse({ ...base, dns: { domain: 'Not A Name' } }).success, false);
  });
});

describe('address allocation', () => {
  it(`never hands out ${MAGIC_DNS_IPV4}`, () => {
    const pool = new AddressPool();
    pool.claim('100.100.100.99');
    assert.equal(pool.allocate().ipv4, '100.100.100.101');
    const fresh = new AddressPool();
    fresh.claim('100.100.100.98');
    assert.deepEqual([fresh.allocate().ipv4, fresh.allocate().ipv4], ['100.100.100.99', '100.100.100.101']);
  });
});

describe('answers from the name table', () => {
  it('A and AAAA for HOST.DOMAIN, case-insensitive, authoritative', () => {
    assert.deepEqual(answerOf('beta.pinhole.internal', 'A'), { rcode: 'NOERROR', data: ['100.64.0.2'], aa: true });
    assert.deepEqual(answerOf('BETA.Pinhole.Internal.', 'AAAA').data, ['fd7a:1e57:9a3c::6440:2']);
    assert.deepEqual(answerOf('beta.pinhole.internal', 'MX'), { rcode: 'NOERROR', data: [], aa: true });
  });
  it('NXDOMAIN for unknown names in the domain and unknown overlay reverse names', () => {
    assert.equal(answerOf('gamma.pinhole.internal', 'A').rcode, 'NXDOMAIN');
    assert.equal(answerOf('x.beta.pinhole.internal', 'A').rcode, 'NXDOMAIN');
    assert.equal(answerOf(reverseName('100.64.9.9'), 'PTR').rcode, 'NXDOMAIN');
    assert.equal(answerOf(reverseName('fd7a:1e57:9a3c::6440:99'), 'PTR').rcode, 'NXDOMAIN');
  });
  it('PTR for overlay IPv4 and IPv6', () => {
    assert.equal(reverseName('100.64.0.2'), '2.0.64.100.in-addr.arpa');
    assert.deepEqual(answerOf(reverseName('100.64.0.1'), 'PTR').data, ['alpha.pinhole.internal']);
    assert.deepEqual(answerOf(reverseName('fd7a:1e57:9a3c::6440:2'), 'PTR').data, ['beta.pinhole.internal']);
  });
  it('forwards split-DNS suffixes to their resolver and everything else to the host', () => {
    assert.deepEqual(decide(query('wiki.corp.example', 'A'), table), { kind: 'forward', resolvers: ['192.0.2.53:5353'] });
    assert.deepEqual(decide(query('example.org', 'A'), table), { kind: 'forward', resolvers: 'host' });
    assert.deepEqual(decide(query(reverseName('198.51.100.7'), 'PTR'), table), { kind: 'forward', resolvers: 'host' });
    assert.deepEqual(decide(query('beta.pinhole.internal', 'A'), null), { kind: 'forward', resolvers: 'host' });
  });
  it('refuses responses and questionless packets as malformed', () => {
    assert.throws(() => decodeQuery(dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'a' }] })), MalformedQueryError);
    assert.throws(() => decodeQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [] })), MalformedQueryError);
  });
  it('truncates a reply that does not fit the client\'s UDP size: TC set, no answers', () => {
    const big = dnsPacket.encode({
      type: 'response', id: 9, questions: [{ type: 'TXT', name: 'big.example' }],
      answers: [{ type: 'TXT', name: 'big.example', data: Array.from({ length: 8 }, () => 'x'.repeat(200)) }],
    });
    const fit = fitUdp(big, 512);
    assert.equal(fit.truncated, true);
    const r = dnsPacket.decode(fit.bytes);
    assert.equal(r.flag_tc, true);
    assert.equal(r.id, 9);
    assert.equal(r.answers?.length, 0);
    assert.equal(fitUdp(big, 4096).truncated, false);
  });
});

describe('query path fuzz', () => {
  const opts = () => ({ table: () => table, upstreams: () => [] as string[], forwarder: new DnsForwarder(50, 4), counters: newDnsCounters() });
  const valid = dnsPacket.encode({ type: 'query', id: 3, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'beta.pinhole.internal' }] });

  it('random bytes: never throws; what it cannot read is dropped and counted', async () => {
    const o = opts();
    let dropped = 0;
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.constantFrom<'udp' | 'tcp'>('udp', 'tcp'), async (bytes, t) => {
      const reply = await handleQuery(Buffer.from(bytes), t, o);
      if (reply === null) dropped++;
      else assert.doesNotThrow(() => dnsPacket.decode(reply));
    }), { numRuns: 2000 });
    assert.equal(o.counters.malformed, dropped);
    assert.ok(dropped > 1900, `random bytes dropped: ${dropped}`);
  });

  it('mutated valid queries: never throws, every reply decodes', async () => {
    const o = opts();
    await fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(valid.length), async (edits, cut) => {
      const b = Buffer.from(valid);
      for (const [i, v] of edits) b[i] = v;
      const reply = await handleQuery(b.subarray(0, Math.max(cut, 12)), 'udp', o);
      if (reply !== null) assert.doesNotThrow(() => dnsPacket.decode(reply));
    }), { numRuns: 2000 });
    assert.equal(o.counters.queries, 2000);
  });

  it('a name it cannot forward (no resolver) gets SERVFAIL, counted', async () => {
    const o = opts();
    const q = dnsPacket.encode({ type: 'query', id: 5, questions: [{ type: 'A', name: 'example.org' }] });
    const r = dnsPacket.decode((await handleQuery(q, 'udp', o))!);
    assert.equal((r as { rcode?: string }).rcode, 'SERVFAIL');
    assert.equal(o.counters.forwardFailed, 1);
  });
});

describe('resolv.conf', () => {
  it('rewrites with a backup, keeps the original across a second apply (crash), restores it exactly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pinhole-resolv-'));
    try {
      const path = join(dir, 'resolv.conf');
      const original = '# mine\nnameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lab.example\noptions edns0 ndots:2\n';
      await writeFile(path, original);
      const rc = new ResolvConf(path, join(dir, 'backup'));
      await rc.apply('pinhole.internal');
      const text = await readFile(path, 'utf8');
      assert.match(text, /^nameserver 100\.100\.100\.100$/m);
      assert.doesNotMatch(text, /192\.0\.2\.1/);
      assert.match(text, /^search pinhole\.internal lab\.example$/m);
      assert.match(text, /^options edns0 ndots:2$/m);
      await rc.apply('pinhole.internal'); // as after a crash: the backup is the original, not our file
      assert.deepEqual(await rc.upstreams(), ['192.0.2.1', '192.0.2.2']);
      assert.equal(await rc.restore(), true);
      assert.equal(await readFile(path, 'utf8'), original);
      assert.equal(await rc.restore(), false);
      assert.equal(await readFile(path, 'utf8'), original);
      // A second agent (its own backup path) must not take the first one's rewrite for the original.
      await rc.apply('pinhole.internal');
      const other = new ResolvConf(path, join(dir, 'other-backup'));
      await assert.rejects(other.apply('pinhole.internal'), ResolvConfBusyError);
      await rc.restore();
      assert.equal(await readFile(path, 'utf8'), original);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
