// The link monitor's two pure parts: the `ip -o monitor` line parser (real lines from iproute2;
// random lines never throw) and the change filter (what matters, debounced, time passed in).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_MONITOR_LINE, parseMonitorLine, type LinkEvent } from '../../agent/netmon/monitor-line.js';
import { DEBOUNCE_MS, LinkChangeFilter, MAX_DELAY_MS } from '../../agent/netmon/change-filter.js';

// Captured from `ip -o monitor address route link` (iproute2 6.x) while a veth came up, got an
// address and a default route, then went down and away.
const CAPTURED = [
  '2: d0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default \\    link/ether 8e:22:99:fc:68:2f brd ff:ff:ff:ff:ff:ff link-netnsid 0',
  '2: d0    inet 198.18.77.2/24 scope global d0\\       valid_lft forever preferred_lft forever',
  'local 198.18.77.2 dev d0 table local proto kernel scope host src 198.18.77.2 ',
  '198.18.77.0/24 dev d0 proto kernel scope link src 198.18.77.2 ',
  'default via 198.18.77.1 dev d0 ',
  '2: d0    inet6 fd00:1::2/64 scope global tentative \\       valid_lft forever preferred_lft forever',
  '2: d0@if2: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default \\    link/ether 8e:22:99:fc:68:2f brd ff:ff:ff:ff:ff:ff link-netnsid 0',
  'Deleted fe80::/64 dev d0 proto kernel metric 256 pref medium',
  'Deleted 2: d0    inet6 fe80::8c22:99ff:fefc:682f/64 scope link tentative \\       valid_lft forever preferred_lft forever',
  'Deleted 2: d0    inet 198.18.77.2/24 scope global d0\\       valid_lft forever preferred_lft forever',
  'Deleted default via 198.18.77.1 dev d0 ',
  'Deleted 2: d0@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default \\    link/ether 8e:22:99:fc:68:2f brd ff:ff:ff:ff:ff:ff',
];

test('parses link, address and route lines as iproute2 prints them', () => {
  const ev = CAPTURED.map(parseMonitorLine);
  assert.deepEqual(ev[0], { kind: 'link', deleted: false, ifName: 'd0', up: true });
  assert.deepEqual(ev[1], { kind: 'address', deleted: false, ifName: 'd0', family: 4, address: '198.18.77.2', prefix: 24 });
  assert.deepEqual(ev[2], { kind: 'route', deleted: false, dst: '198.18.77.2', dev: 'd0', via: null, table: 'local' });
  assert.deepEqual(ev[4], { kind: 'route', deleted: false, dst: 'default', dev: 'd0', via: '198.18.77.1', table: 'main' });
  assert.deepEqual(ev[5], { kind: 'address', deleted: false, ifName: 'd0', family: 6, address: 'fd00:1::2', prefix: 64 });
  assert.deepEqual(ev[6], { kind: 'link', deleted: false, ifName: 'd0', up: false });
  assert.deepEqual(ev[10], { kind: 'route', deleted: true, dst: 'default', dev: 'd0', via: '198.18.77.1', table: 'main' });
  assert.deepEqual(ev[11], { kind: 'link', deleted: true, ifName: 'd0', up: false });
  for (const bad of ['', 'garbage', 'Deleted ', '2: d0    inet 198.18.77.2/99 scope', 'x'.repeat(MAX_MONITOR_LINE + 1), '[LINK]', 'default', '2:', 'Deleted Deleted']) {
    assert.equal(parseMonitorLine(bad), null, JSON.stringify(bad.slice(0, 40)));
  }
});

test('fuzz: random lines, and mutations of real ones, never throw', () => {
  const mutated = fc.tuple(fc.constantFrom(...CAPTURED), fc.nat(), fc.nat(), fc.string()).map(([line, at, len, insert]) => {
    const i = at % (line.length + 1);
    return line.slice(0, i) + insert + line.slice(i + (len % 12));
  });
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ maxLength: 100, unit: 'grapheme' }), mutated), (line) => {
    const e = parseMonitorLine(line);
    if (e !== null) assert.ok(['link', 'address', 'route'].includes(e.kind));
  }), { numRuns: 5000 });
});

const link = (ifName: string, up: boolean, deleted = false): LinkEvent => ({ kind: 'link', deleted, ifName, up });
const addr = (ifName: string, address: string, deleted = false): LinkEvent => ({ kind: 'address', deleted, ifName, family: address.includes(':') ? 6 : 4, address, prefix: 24 });
const route = (dst: string, dev: string, deleted = false, table = 'main'): LinkEvent => ({ kind: 'route', deleted, dst, dev, via: null, table });

test('the overlay TUN, loopback, link-local addresses and non-default routes do not matter', () => {
  const f = new LinkChangeFilter(['pt0']);
  for (const e of [link('pt0', true), addr('pt0', '100.64.0.1'), route('default', 'pt0'), link('lo', true), addr('eth0', 'fe80::1'),
    route('198.18.1.0/24', 'eth0'), route('default', 'eth0', false, 'local')]) {
    assert.equal(f.observe(e, 0), false, JSON.stringify(e));
  }
  assert.equal(f.dueIn(0), null);
});

test('a link counts when its state changes, not when the kernel repeats it', () => {
  const f = new LinkChangeFilter([]);
  assert.equal(f.observe(link('eth0', true), 0), true);
  f.take(DEBOUNCE_MS);
  assert.equal(f.observe(link('eth0', true), 500), false);
  assert.equal(f.observe(link('eth0', false), 600), true);
  assert.deepEqual(f.take(600 + DEBOUNCE_MS), ['eth0 down']);
});

test('a burst is one change, due DEBOUNCE_MS after its last event', () => {
  const f = new LinkChangeFilter([]);
  f.observe(link('eth0', false), 1000);
  f.observe(addr('eth0', '198.18.1.2', true), 1050);
  f.observe(route('default', 'eth1'), 1100);
  assert.equal(f.dueIn(1100), DEBOUNCE_MS);
  assert.equal(f.take(1100 + DEBOUNCE_MS - 1), null);
  assert.deepEqual(f.take(1100 + DEBOUNCE_MS), ['eth0 down', 'lost address 198.18.1.2 on eth0', 'default route added dev eth1']);
  assert.equal(f.dueIn(2000), null, 'taken');
});

test('events that never stop still give a change within MAX_DELAY_MS', () => {
  const f = new LinkChangeFilter([]);
  let t = 0;
  for (; t < MAX_DELAY_MS * 2; t += DEBOUNCE_MS / 2) {
    f.observe(addr('eth0', `198.18.1.${(t / 10) % 250}`), t);
    const r = f.take(t);
    if (r !== null) break;
  }
  assert.ok(t >= MAX_DELAY_MS && t < MAX_DELAY_MS + DEBOUNCE_MS, `due at ${t}`);
});
