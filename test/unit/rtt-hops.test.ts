// bench-rtt's split of a ping round trip into hops, from tcpdump's text output.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quantile, splitRoundTrips } from '../../scripts/tunnels/rtt-hops.js';

const A = '198.18.0.1';
const B = '198.18.0.2';
// One second plus µs offsets, printed as tcpdump -tt --time-stamp-precision=nano does.
const ts = (us: number) => `1796691444.${String(Math.round(us * 1000)).padStart(9, '0')}`;
const icmp = (us: number, kind: 'request' | 'reply', seq: number) =>
  `${ts(us)} IP ${kind === 'request' ? '100.64.0.1 > 100.64.0.2' : '100.64.0.2 > 100.64.0.1'}: ICMP echo ${kind}, id 7, seq ${seq}, length 64`;
const udp = (us: number, fromA: boolean) => `${ts(us)} IP ${fromA ? `${A}.51820 > ${B}` : `${B}.51820 > ${A}`}.51820: UDP, length 128`;

test('each hop is the time between two captured events, per sequence number', () => {
  const tunA = [icmp(1000, 'request', 1), icmp(1400, 'reply', 1), icmp(51000, 'request', 2), icmp(51900, 'reply', 2)].join('\n');
  const wire = [udp(1050, true), udp(1330, false), udp(51100, true), udp(51800, false)].join('\n');
  const tunB = [icmp(1150, 'request', 1), icmp(1170, 'reply', 1), icmp(51600, 'request', 2), icmp(51620, 'reply', 2)].join('\n');
  const rows = splitRoundTrips(`tcpdump: verbose output suppressed\n${tunA}\n`, wire, tunB, A);
  assert.equal(rows.length, 2);
  const close = (x: number, y: number) => assert.ok(Math.abs(x - y) < 1e-6, `${x} vs ${y}`);
  const r1 = rows[0]!;
  assert.equal(r1.seq, 1);
  close(r1.totalUs, 400); close(r1.aOut, 50); close(r1.bIn, 100); close(r1.bKernel, 20); close(r1.bOut, 160); close(r1.aIn, 70);
  const r2 = rows[1]!;
  close(r2.totalUs, 900); close(r2.bIn, 500); close(r2.aIn, 100);
  close(r2.aOut + r2.bIn + r2.bKernel + r2.bOut + r2.aIn, r2.totalUs);
});

test('a ping with a lost reply, a missing capture or events out of order is left out', () => {
  const tunA = [icmp(1000, 'request', 1), icmp(51000, 'request', 2), icmp(51900, 'reply', 2), icmp(90000, 'request', 3), icmp(90500, 'reply', 3)].join('\n');
  const wire = [udp(1050, true), udp(51100, true), udp(51800, false), udp(90050, true), udp(90400, false)].join('\n');
  // seq 3: B's capture shows the reply before the request.
  const tunB = [icmp(1150, 'request', 1), icmp(51600, 'request', 2), icmp(51620, 'reply', 2), icmp(90200, 'reply', 3), icmp(90300, 'request', 3)].join('\n');
  const rows = splitRoundTrips(tunA, wire, tunB, A);
  assert.deepEqual(rows.map((r) => r.seq), [2]);
  assert.deepEqual(splitRoundTrips('', wire, tunB, A), []);
  assert.deepEqual(splitRoundTrips('garbage\n\n1.2 not a packet', 'x', 'y', A), []);
});

test('quantile is the nearest rank, null on no data', () => {
  assert.equal(quantile([], 0.5), null);
  assert.equal(quantile([5], 0.9), 5);
  assert.equal(quantile([4, 1, 3, 2], 0.5), 2);
  assert.equal(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9), 9);
  assert.equal(quantile([1, 2, 3], 1), 3);
  assert.equal(quantile([1, 2, 3], 0), 1);
});
