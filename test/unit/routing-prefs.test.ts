// `pinhole up`'s routing flags and what they turn into: advertised routes checked before they
// leave the machine, an exit node that must be an approved peer, and the kernel route plan
// (subnet routes, default routes, LAN throw routes) and the socket mark that keeps the agent's own
// traffic out of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_ROUTING_PREFS, RoutingPrefs, exitPeerOf, parseAdvertisedRoutes, withAdvertised, withClientFlags, RoutingPrefsError,
} from '../../agent/daemon/routing-prefs.js';
import { planRoutes } from '../../agent/routing/route-plan.js';
import { advertisableRoute } from '../../proto/control/routes.js';
import { DEFAULT_SOCKET_MARK, formatSocketMark, parseSocketMark } from '../../agent/routing/socket-mark.js';
import type { Peer } from '../../proto/control/schemas.js';

const peer = (id: number, name: string, exitNode: boolean, routes: string[] = []): Peer => ({
  id, name, nodeKey: `${'A'.repeat(42)}${'AEIM'[id % 4]}=`, discoKey: `${'B'.repeat(42)}A=`, ipv4: `100.64.0.${id}`, ipv6: `fd7a:1e57:9a3c::6440:${id}`,
  endpoints: [], homeRelay: null, online: true, lastSeen: null, routes, exitNode, tags: [],
});

test('advertised routes: canonical prefixes only, never the exit route or the overlay', () => {
  assert.deepEqual(parseAdvertisedRoutes(['198.18.5.0/24', ' 198.18.6.0/24', '', '198.18.5.0/24']), ['198.18.5.0/24', '198.18.6.0/24']);
  const refused: [string, RegExp][] = [
    ['198.18.5.1/24', /host bits set: did you mean 198\.18\.5\.0\/24\?/],
    ['0.0.0.0/0', /exit route: use --advertise-exit-node/],
    ['::/0', /exit route/],
    ['100.64.0.0/16', /overlaps the overlay network 100\.64\.0\.0\/10/],
    ['10.0.0.0/33', /not a CIDR/],
    ['banana', /not a CIDR/],
  ];
  for (const [text, reason] of refused) {
    assert.throws(() => parseAdvertisedRoutes([text]), (err: Error) => err instanceof RoutingPrefsError && reason.test(err.message) && err.message.startsWith('--advertise-routes: '), text);
  }
  // The coordinator masks instead of refusing host bits, but refuses the rest the same way.
  assert.equal(advertisableRoute('198.18.5.1/24'), '198.18.5.0/24');
  assert.throws(() => advertisableRoute('fd7a:1e57:9a3c::/64', { reserved: ['fd7a:1e57:9a3c::/48'] }), /overlaps the overlay/);
});

test('flags left out keep their value; "" clears', () => {
  const a = withAdvertised(DEFAULT_ROUTING_PREFS, { advertiseRoutes: ['198.18.5.0/24'], advertiseExitNode: true });
  assert.deepEqual(a.advertiseRoutes, ['198.18.5.0/24']);
  assert.equal(a.advertiseExitNode, true);
  const b = withAdvertised(a, {});
  assert.deepEqual(b, a);
  assert.deepEqual(withAdvertised(a, { advertiseRoutes: [''] }).advertiseRoutes, []);
  const peers = [peer(2, 'exit', true)];
  const c = withClientFlags(DEFAULT_ROUTING_PREFS, { acceptRoutes: true, exitNode: 'EXIT' }, peers, 'me');
  assert.deepEqual(c.exitNode, { nodeKey: peers[0]!.nodeKey, name: 'exit' });
  assert.equal(c.acceptRoutes, true);
  assert.equal(withClientFlags(c, { exitNode: '' }, peers, 'me').exitNode, null);
  assert.deepEqual(withClientFlags(c, {}, peers, 'me').exitNode, c.exitNode);
});

test('the exit node must be a known, approved exit node, not this node, and not while being one', () => {
  const peers = [peer(2, 'exit', true), peer(3, 'plain', false)];
  const fails = (spec: string, reason: RegExp, prefs = DEFAULT_ROUTING_PREFS, list: Peer[] | null = peers): void => {
    assert.throws(() => withClientFlags(prefs, { exitNode: spec }, list, 'me'), (err: Error) => err instanceof RoutingPrefsError && reason.test(err.message), spec);
  };
  fails('nobody', /--exit-node nobody: no peer by that name or address/);
  fails('plain', /plain is not an approved exit node .*pinhole admin routes approve plain 0\.0\.0\.0\/0 ::\/0/);
  fails('me', /that is this node/);
  fails('exit', /no netmap from the coordinator yet/, DEFAULT_ROUTING_PREFS, null);
  fails('exit', /this node is an exit node itself/, { ...DEFAULT_ROUTING_PREFS, advertiseExitNode: true });
  assert.equal(withClientFlags(DEFAULT_ROUTING_PREFS, { exitNode: '100.64.0.2' }, peers, 'me').exitNode?.name, 'exit', 'by overlay address');
  assert.throws(() => withAdvertised({ ...DEFAULT_ROUTING_PREFS, exitNode: { nodeKey: peers[0]!.nodeKey, name: 'exit' } }, { advertiseExitNode: true }), /uses an exit node/);
});

test('the exit node is remembered by node key: a later node with its name is not it', () => {
  const alice = peer(2, 'alice-laptop', true);
  const prefs = withClientFlags(DEFAULT_ROUTING_PREFS, { exitNode: 'alice-laptop' }, [alice], 'me');
  assert.deepEqual(prefs.exitNode, { nodeKey: alice.nodeKey, name: 'alice-laptop' });
  // Alice renamed; a squatter (an approved exit node too) took her old name.
  const squatter = peer(3, 'alice-laptop', true);
  const renamed = { ...alice, name: 'alice-work' };
  assert.notEqual(squatter.nodeKey, alice.nodeKey);
  assert.equal(exitPeerOf(prefs.exitNode!, [squatter, renamed])?.id, 2);
  // Alice left: nobody is the exit node (not the squatter).
  assert.equal(exitPeerOf(prefs.exitNode!, [squatter]), undefined);
  // Saved and read back; a name saved by an older version reads as an unpinned choice.
  assert.deepEqual(RoutingPrefs.parse(JSON.parse(JSON.stringify(prefs))).exitNode, prefs.exitNode);
  assert.deepEqual(RoutingPrefs.parse({ exitNode: 'gateway' }).exitNode, { nodeKey: null, name: 'gateway' });
  assert.equal(exitPeerOf({ nodeKey: null, name: 'alice-laptop' }, [squatter]), undefined);
  assert.equal(RoutingPrefs.safeParse({ exitNode: { nodeKey: 'not-a-key', name: 'x' } }).success, false);
});

test('route plan: subnet routes; with an exit node the default routes and LAN throws; no per-address rules', () => {
  const subnetOnly = planRoutes({
    subnetRoutes: ['198.18.5.0/24', '0.0.0.0/0'], exitNode: false, allowLanAccess: false, lanPrefixes: ['198.18.1.0/24'],
  });
  assert.deepEqual(subnetOnly, { table: [{ cidr: '198.18.5.0/24', type: 'unicast' }] });

  const exit = planRoutes({
    subnetRoutes: [], exitNode: true, allowLanAccess: true, lanPrefixes: ['198.18.1.0/24', 'fe80::/64', '0.0.0.0/0'],
  });
  assert.deepEqual(exit.table, [
    { cidr: '0.0.0.0/0', type: 'unicast' },
    { cidr: '198.18.1.0/24', type: 'throw' },
    { cidr: '::/0', type: 'unicast' },
    { cidr: 'fe80::/64', type: 'throw' },
  ]);
  const noLan = planRoutes({ subnetRoutes: [], exitNode: true, allowLanAccess: false, lanPrefixes: ['198.18.1.0/24'] });
  assert.ok(!noLan.table.some((e) => e.type === 'throw'));
  assert.deepEqual(planRoutes({ subnetRoutes: [], exitNode: false, allowLanAccess: true, lanPrefixes: ['198.18.1.0/24'] }), { table: [] });
});

test('socket mark: VALUE or VALUE/MASK, never 0, no bits outside the mask', () => {
  assert.equal(formatSocketMark(DEFAULT_SOCKET_MARK), '0x70680000/0xffff0000');
  assert.deepEqual(parseSocketMark('0x70680000/0xffff0000'), DEFAULT_SOCKET_MARK);
  assert.deepEqual(parseSocketMark('51820'), { value: 51820, mask: 0xffffffff });
  assert.deepEqual(parseSocketMark('0X80000/0xFF0000'), { value: 0x80000, mask: 0xff0000 });
  for (const bad of ['', '0', '0x0/0xffff0000', '0x1/0', '0x70680001/0xffff0000', '0x100000000', 'mark', '1/2/3', '-1', '4294967296'])
    assert.throws(() => parseSocketMark(bad), { name: 'SocketMarkError' }, bad);
});
