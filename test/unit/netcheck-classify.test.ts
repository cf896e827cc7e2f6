// The decision tables behind netcheck's verdicts: RFC 5780 §4.3/§4.4 read the way coturn's
// turnutils_natdiscovery reads them, mapping from several plain servers, and the memory that keeps
// a shared socket's filtering test honest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filteringFromTests, mappingFromObservations, mappingFromTests } from '../../agent/netcheck/classify.js';
import { FILTER_STATE_MS, FilterState, filterStateFor } from '../../agent/netcheck/filter-state.js';

const ep = (s: string) => {
  const i = s.lastIndexOf(':');
  return { address: s.slice(0, i), port: Number(s.slice(i + 1)) };
};

test('mapping from RFC 5780 tests I, II, III', () => {
  const I = ep('198.51.100.7:40000');
  assert.equal(mappingFromTests(I, ep('198.51.100.7:40000'), null), 'endpoint-independent', 'II = I decides; III is not needed');
  assert.equal(mappingFromTests(I, ep('198.51.100.7:40000'), ep('198.51.100.7:5')), 'endpoint-independent', 'as coturn: III is not consulted when II = I');
  assert.equal(mappingFromTests(I, ep('198.51.100.7:41000'), ep('198.51.100.7:41000')), 'address-dependent');
  assert.equal(mappingFromTests(I, ep('198.51.100.7:41000'), ep('198.51.100.7:42000')), 'address-and-port-dependent');
  assert.equal(mappingFromTests(I, ep('198.51.100.8:40000'), ep('198.51.100.8:40001')), 'address-and-port-dependent', 'another public IP is another mapping');
  assert.equal(mappingFromTests(I, null, null), null);
  assert.equal(mappingFromTests(I, ep('198.51.100.7:41000'), null), null);
});

test('filtering from RFC 5780 tests II (change IP and port) and III (change port)', () => {
  assert.equal(filteringFromTests(true, true), 'endpoint-independent');
  assert.equal(filteringFromTests(true, false), 'endpoint-independent', 'as coturn: II decides alone');
  assert.equal(filteringFromTests(false, true), 'address-dependent');
  assert.equal(filteringFromTests(false, false), 'address-and-port-dependent');
  assert.equal(filteringFromTests(null, true), null);
  assert.equal(filteringFromTests(false, null), null);
});

test('mapping from plain servers: same public address to two IPs, per-IP, per-port, and not enough to tell', () => {
  const o = (server: string, mapped: string) => ({ server: ep(server), mapped: ep(mapped) });
  assert.deepEqual(mappingFromObservations([o('203.0.113.1:3478', '198.51.100.7:40000'), o('203.0.113.2:3478', '198.51.100.7:40000')]),
    { mapping: 'endpoint-independent', variesByDestIp: false });
  assert.deepEqual(mappingFromObservations([o('203.0.113.1:3478', '198.51.100.7:40000'), o('203.0.113.2:3478', '198.51.100.7:41000')]),
    { mapping: null, variesByDestIp: true }, 'varies by IP; no same-IP pair to tell port dependence');
  assert.deepEqual(mappingFromObservations([
    o('203.0.113.1:3478', '198.51.100.7:40000'), o('203.0.113.1:3479', '198.51.100.7:40000'), o('203.0.113.2:3478', '198.51.100.7:41000'),
  ]), { mapping: 'address-dependent', variesByDestIp: true });
  assert.deepEqual(mappingFromObservations([
    o('203.0.113.1:3478', '198.51.100.7:40000'), o('203.0.113.1:3479', '198.51.100.7:40001'), o('203.0.113.2:3478', '198.51.100.7:41000'),
  ]), { mapping: 'address-and-port-dependent', variesByDestIp: true });
  assert.deepEqual(mappingFromObservations([o('203.0.113.1:3478', '198.51.100.7:40000')]), { mapping: null, variesByDestIp: null });
  assert.deepEqual(mappingFromObservations([]), { mapping: null, variesByDestIp: null });
});

test('filter state: sends to the other address or the primary IP\'s other port make a server unclean for a while', () => {
  const s = new FilterState();
  const primary = ep('203.0.113.10:3478');
  const other = ep('192.0.2.10:3479');
  const t = 1_000_000;
  s.noteSend(primary, t);
  assert.equal(s.isClean(primary, other, t), true, 'test I to the primary is part of the test');
  s.noteSend(ep('192.0.2.10:3478'), t + 1);
  assert.equal(s.isClean(primary, other, t + 2), false, 'any port of the other IP opens an address-dependent filter');
  assert.equal(s.isClean(primary, other, t + 2 + FILTER_STATE_MS), true, 'forgotten after FILTER_STATE_MS');

  const s2 = new FilterState();
  s2.noteSend(ep('203.0.113.10:3479'), t);
  assert.equal(s2.isClean(primary, other, t + 5), false, 'the primary IP on the other port answers test III');
  const before = s2.lastMeasurement;
  assert.equal(before, null);
  s2.remember({ II: false, III: true, measuredAt: t, server: '203.0.113.10:3478' });
  assert.equal(s2.lastMeasurement?.III, true);
});

test('filter state is kept per public mapping: the same public ip:port finds it again, another one starts afresh', () => {
  const now = Date.now();
  const a = filterStateFor('198.51.100.7:40000', now);
  a.noteSend(ep('192.0.2.10:3478'), now);
  assert.equal(filterStateFor('198.51.100.7:40000', now + 10), a);
  const b = filterStateFor('198.51.100.99:40000', now + 10);
  assert.notEqual(b, a);
  assert.equal(b.isClean(ep('203.0.113.10:3478'), ep('192.0.2.10:3479'), now + 10), true);
  // Idle states are dropped once they could no longer matter.
  filterStateFor('198.51.100.100:1', now + FILTER_STATE_MS + 20);
  assert.notEqual(filterStateFor('198.51.100.7:40000', now + FILTER_STATE_MS + 20), a);
});
