// Netmap → WireGuard peers on a real Device (no TUN): peers added with their overlay /32 and
// /128 and no endpoint (the magic socket owns it), updated in place (a session survives an
// endpoint change), removed, replaced when their key changes; deltas folded into the agent's
// view of the netmap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../agent/wireguard/device.js';
import { NetmapApplier } from '../../agent/daemon/netmap-apply.js';
import { NetmapView } from '../../agent/daemon/netmap-view.js';
import { decodePackedAddr, formatEndpoint } from '../../agent/tun/packed-addr.js';
import { parseAddress } from '../../proto/ip/address.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import type { Netmap, Peer } from '../../proto/control/schemas.js';
import { ipv4Packet, makeWire } from '../helpers/memory-link.js';

const newKey = (): string => encodeKey(publicKeyFromPrivate(generatePrivateKey()));

function peer(id: number, over: Partial<Peer> = {}): Peer {
  return {
    id, name: `node-${id}`, nodeKey: newKey(), discoKey: newKey(), ipv4: `100.64.0.${id}`, ipv6: `fd7a:115c:a1e0::${id}`,
    endpoints: [`203.0.113.${id}:41641`], homeRelay: null, online: true, lastSeen: null, routes: [], exitNode: false, tags: [],
    ...over,
  };
}

function device(): Device {
  return new Device({ privateKey: generatePrivateKey(), mtu: 1420, localAddresses: [] });
}

const endpointOf = (d: Device, key: string): string | null => {
  const p = d.peers.get(key);
  return p?.endpoint ? formatEndpoint(decodePackedAddr(p.endpoint)) : null;
};
const routeV4 = (d: Device, ip: string) => d.allowedIps.lookupV4(parseAddress(ip).bytes, 0);
const routeV6 = (d: Device, ip: string) => d.allowedIps.lookupV6(parseAddress(ip).bytes, 0);

test('a full netmap becomes WireGuard peers: overlay /32 + /128 as allowed IPs, name, no endpoint (the magic socket sets it)', () => {
  const d = device();
  const a = new NetmapApplier(d);
  const p2 = peer(2, { endpoints: ['203.0.113.2:41641', '198.51.100.2:1234'] });
  const p3 = peer(3);
  assert.deepEqual(a.applyAll([p2, p3]), { added: 2, updated: 0, removed: 0, skipped: 0 });
  assert.equal(d.peers.size, 2);
  const w2 = d.peers.get(p2.nodeKey)!;
  assert.equal(w2.name, 'node-2');
  assert.equal(endpointOf(d, p2.nodeKey), null);
  assert.equal(routeV4(d, '100.64.0.2'), w2);
  assert.equal(routeV6(d, 'fd7a:115c:a1e0::2'), w2);
  assert.equal(routeV4(d, '100.64.0.3'), d.peers.get(p3.nodeKey));
  assert.equal(routeV4(d, '100.64.0.4'), undefined);
  // Applying the same map again changes nothing.
  assert.deepEqual(a.applyAll([p2, p3]), { added: 0, updated: 0, removed: 0, skipped: 0 });
  d.close();
});

test('a peer missing from the next full map is removed from the device and from routing', () => {
  const d = device();
  const a = new NetmapApplier(d);
  const [p2, p3] = [peer(2), peer(3)];
  a.applyAll([p2, p3]);
  assert.deepEqual(a.applyAll([p3]), { added: 0, updated: 0, removed: 1, skipped: 0 });
  assert.equal(d.peers.has(p2.nodeKey), false);
  assert.equal(routeV4(d, '100.64.0.2'), undefined);
  assert.equal(routeV6(d, 'fd7a:115c:a1e0::2'), undefined);
  assert.ok(d.peers.has(p3.nodeKey));
  d.close();
});

test('changed addresses move the routes; a record with unusable fields is skipped and counted', () => {
  const d = device();
  const a = new NetmapApplier(d);
  const p2 = peer(2);
  a.applyAll([p2]);
  const moved = { ...p2, ipv4: '100.64.9.9', ipv6: 'fd7a:115c:a1e0::99' };
  assert.deepEqual(a.applyChanges([moved], [], new Map([[2, p2]])), { added: 0, updated: 1, removed: 0, skipped: 0 });
  assert.equal(routeV4(d, '100.64.0.2'), undefined);
  assert.equal(routeV4(d, '100.64.9.9'), d.peers.get(p2.nodeKey));
  assert.equal(routeV6(d, 'fd7a:115c:a1e0::99'), d.peers.get(p2.nodeKey));
  const bad = peer(4, { ipv4: '100.64.0.300' });
  assert.equal(a.applyChanges([bad], [], new Map()).skipped, 1);
  assert.equal(d.peers.has(bad.nodeKey), false);
  // The device's own key in a map (a coordinator bug) is never a peer.
  assert.equal(a.applyAll([p2, peer(5, { nodeKey: d.publicKeyBase64 })]).skipped, 1);
  d.close();
});

test('a node whose key changed is a new WireGuard peer; the old key is removed', () => {
  const d = device();
  const a = new NetmapApplier(d);
  const p2 = peer(2);
  a.applyAll([p2]);
  const rekeyed = { ...p2, nodeKey: newKey() };
  assert.deepEqual(a.applyChanges([rekeyed], [], new Map([[2, p2]])), { added: 1, updated: 0, removed: 1, skipped: 0 });
  assert.deepEqual([...d.peers.keys()], [rekeyed.nodeKey]);
  assert.equal(routeV4(d, '100.64.0.2'), d.peers.get(rekeyed.nodeKey));
  d.close();
});

test('an endpoint change from the coordinator leaves the peer, its session and its endpoint alone', () => {
  const w = makeWire();
  try {
    const bKey = w.b.device.publicKeyBase64;
    const applier = new NetmapApplier(w.a.device);
    const bRecord = peer(2, { nodeKey: bKey, endpoints: ['203.0.113.2:51820'] });
    applier.applyAll([bRecord]);
    w.sendIp(w.a, ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('before')));
    assert.equal(w.b.delivered.length, 1);
    const peerB = w.a.device.peers.get(bKey)!;
    const session = peerB.current?.localIndex;
    assert.ok(session !== undefined);
    const handshakes = w.a.device.handshakes.completed;

    applier.applyChanges([{ ...bRecord, endpoints: ['198.51.100.7:40000'] }], [], new Map([[2, bRecord]]));
    assert.equal(w.a.device.peers.get(bKey), peerB, 'same peer object');
    assert.equal(endpointOf(w.a.device, bKey), '203.0.113.2:51820', 'the endpoint is the magic socket\'s to change');
    w.sendIp(w.a, ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('after')));
    assert.equal(w.b.delivered.length, 2);
    assert.equal(peerB.current?.localIndex, session, 'same session');
    assert.equal(w.a.device.handshakes.completed, handshakes, 'no new handshake');
  } finally { w.close(); }
});

test('an endpoint the device learned from the peer (roaming) survives a map that did not change it', () => {
  const d = device();
  const a = new NetmapApplier(d);
  const p2 = peer(2);
  a.applyAll([p2]);
  const w = d.peers.get(p2.nodeKey)!;
  const roamed = new Uint8Array(20);
  roamed.set([4, 0, 0x9c, 0x40, 198, 51, 100, 77]);
  w.noteSource(roamed, 0);
  a.applyAll([{ ...p2, online: false }]);
  assert.equal(endpointOf(d, p2.nodeKey), '198.51.100.77:40000');
  d.close();
});

test('NetmapView folds deltas into the map: upserts, removals, self and filter changes', () => {
  const [p2, p3] = [peer(2), peer(3)];
  const nm: Netmap = {
    type: 'netmap', seq: 10, self: { id: 1, name: 'me', nodeKey: newKey(), ipv4: '100.64.0.1', ipv6: 'fd7a:115c:a1e0::1', keyExpiresAt: null, tags: [] },
    peers: [p2, p3], packetFilter: null, relays: [],
  };
  const v = new NetmapView(nm);
  const p4 = peer(4);
  const p2b = { ...p2, endpoints: ['203.0.113.99:1'] };
  const ch = v.applyDelta({ type: 'delta', seq: 11, upserts: [p4, p2b], removals: [3, 77] });
  assert.deepEqual(ch.upserted.map((p) => p.id), [4, 2]);
  assert.deepEqual(ch.removed.map((p) => p.id), [3]);
  assert.equal(ch.previous.get(2), p2);
  assert.equal(ch.selfChanged, false);
  assert.deepEqual([...v.peers.keys()].sort(), [2, 4]);
  assert.equal(v.seq, 11);
  const self2 = { ...nm.self, name: 'me-2' };
  assert.equal(v.applyDelta({ type: 'delta', seq: 12, upserts: [{ ...p4, id: 1 }], removals: [], self: self2, packetFilter: [] }).selfChanged, true);
  assert.equal(v.peers.has(1), false, 'never a peer of itself');
  const out = v.toNetmap();
  assert.equal(out.self.name, 'me-2');
  assert.deepEqual(out.packetFilter, []);
  assert.equal(out.seq, 12);
});

test('NetmapView applies peer patches (live fields only) between upserts and removals', () => {
  const [p2, p3] = [peer(2), peer(3)];
  const nm: Netmap = {
    type: 'netmap', seq: 0, self: { id: 1, name: 'me', nodeKey: newKey(), ipv4: '100.64.0.1', ipv6: 'fd7a:115c:a1e0::1', keyExpiresAt: null, tags: [] },
    peers: [p2, p3], packetFilter: null, relays: [],
  };
  const v = new NetmapView(nm);
  const ch = v.applyDelta({
    type: 'delta', seq: 1, upserts: [],
    patches: [{ id: 2, endpoints: ['198.51.100.7:41641'], online: false }, { id: 99, online: true }, { id: 3, homeRelay: 'r1' }],
    removals: [3],
  });
  const now2 = v.peers.get(2)!;
  assert.deepEqual(now2.endpoints, ['198.51.100.7:41641']);
  assert.equal(now2.online, false);
  assert.equal(now2.nodeKey, p2.nodeKey, 'fields a patch does not name are kept');
  assert.equal(ch.previous.get(2), p2);
  assert.deepEqual(ch.upserted.map((p) => p.id), [2], 'a patched-then-removed peer is only a removal');
  assert.deepEqual(ch.removed.map((p) => p.id), [3]);
  assert.equal(v.peers.has(99), false, 'a patch never creates a peer');

  // A device keeps the patched peer (its endpoint is the magic socket's) and drops the removed one.
  const d = device();
  const applier = new NetmapApplier(d);
  applier.applyAll(nm.peers);
  const kept = d.peers.get(p2.nodeKey);
  applier.applyChanges(ch.upserted, ch.removed, ch.previous);
  assert.equal(d.peers.get(p2.nodeKey), kept);
  assert.equal(d.peers.has(p3.nodeKey), false);
});
