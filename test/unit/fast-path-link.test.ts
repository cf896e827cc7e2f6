// FastPathLink: what the device pushes to the native data path as sessions, endpoints, allowed
// IPs and hooks change. The native side is a recorder here; test/lab/native-datapath.test.ts runs
// the real addon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Device } from '../../agent/wireguard/device.js';
import type { NativeFastPath } from '../../agent/tun/native.js';
import { Keypair } from '../../proto/wireguard/keypair.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { parseCidr } from '../../proto/ip/address.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';
import { PacketFilter } from '../../agent/filter/packet-filter.js';
import { FlowTracker, InboundGate } from '../../agent/daemon/inbound-gate.js';

type Call = [string, ...unknown[]];

function recorder(): { native: NativeFastPath; calls: Call[] } {
  const calls: Call[] = [];
  const native: NativeFastPath = {
    setMode: (o, i, back) => { calls.push(['setMode', o, i, back]); },
    setFilter: (...t) => { calls.push(['setFilter', t[0] === null ? null : (t[6] as Uint32Array)[0]]); },
    setPeer: (slot, _state, endpoint, sendIndex) => { calls.push(['setPeer', slot, endpoint === null ? null : endpoint[0], sendIndex]); },
    removePeer: (slot) => { calls.push(['removePeer', slot]); },
    addKeypair: (local, _remote, slot) => { calls.push(['addKeypair', local, slot]); },
    removeKeypair: (local) => { calls.push(['removeKeypair', local]); },
    setRoutes: (v4, v6) => { calls.push(['setRoutes', v4.length / 9, v6.length / 21, v4[4], v4[5]]); },
    setLocal: (v4, v6) => { calls.push(['setLocal', [...v4].join('.'), v6.length / 21]); },
    counters: () => ({ txPackets: 0, rxPackets: 0, leftOut: 0, leftIn: 0, badTag: 0, replay: 0, badInnerPacket: 0, allowedIpsMismatch: 0, notForUs: 0, ioDropped: 0, flowOut: 0, flowIn: 0, handedBack: 0 }),
    close: () => { calls.push(['close']); },
  };
  return { native, calls };
}

const keypair = (index: number) => new Keypair({ sendKey: new Uint8Array(32).fill(1), receiveKey: new Uint8Array(32).fill(2) }, index, index + 1000, true, Date.now());
const tick = () => new Promise<void>((r) => queueMicrotask(r));

test('sessions, endpoints, routes, local addresses and hooks reach the native path in the next microtask', async () => {
  const device = new Device({ privateKey: generatePrivateKey(), mtu: 1420, localAddresses: [parseCidr('100.64.0.1/10')] });
  const { native, calls } = recorder();
  let limits: Float64Array | undefined;
  device.attachFastPath((l) => { limits = l; return native; });
  assert.deepEqual([...limits!], [180_000, Number.MAX_SAFE_INTEGER - 2 ** 13, 2 ** 60, 120_000, 10_000, 5_000]);
  // The local address is a host (/32) whatever prefix length it came with; 0 = the slot, unused.
  assert.deepEqual(calls, [['setMode', true, true, false], ['setRoutes', 0, 0, undefined, undefined], ['setLocal', '100.64.0.1.32.0.0.0.0', 0]]);
  calls.length = 0;

  const peer = device.addPeer({ publicKey: publicKeyFromPrivate(generatePrivateKey()), allowedIps: [parseCidr('100.64.0.2/32')] });
  await tick();
  // A new peer gets slot 0 (no session, no endpoint yet) and its allowed IP names that slot.
  assert.deepEqual(calls, [['setPeer', 0, null, 0], ['setRoutes', 1, 0, 32, 0]]);
  calls.length = 0;

  const k1 = keypair(7);
  peer.current = k1;
  peer.noteSource(encodePackedAddr({ address: '192.0.2.1', port: 51820 }), 0); // roams there (static mode)
  await tick();
  assert.deepEqual(calls, [['addKeypair', 7, 0], ['setPeer', 0, 4, 7]], 'one sync for both changes');
  calls.length = 0;

  // Rotation: the old session stays receivable as previous, then goes.
  const k2 = keypair(8);
  peer.previous = k1;
  peer.current = k2;
  await tick();
  assert.deepEqual(calls, [['addKeypair', 8, 0], ['setPeer', 0, 4, 8]]);
  calls.length = 0;
  peer.previous = undefined;
  await tick();
  assert.deepEqual(calls, [['removeKeypair', 7], ['setPeer', 0, 4, 8]]);
  calls.length = 0;

  // A responder's next keypair stays with JS until promoted.
  peer.next = keypair(9);
  await tick();
  assert.deepEqual(calls, [], 'nothing to push for a next keypair');

  // A hook the native path knows nothing about turns its direction off.
  device.setPacketHooks({ intercept: () => false, forward: () => false }, null);
  await tick();
  assert.deepEqual(calls, [['setMode', true, false, true]]);
  calls.length = 0;

  // The packet filter's hooks keep both directions native: its tables are shared first, then the
  // mode; undecided packets come back to JS (handBack). A new rule set changes nothing here (the
  // generation lives in the shared state); turning the filter off unshares the tables.
  const filter = new PacketFilter([]);
  device.setPacketHooks(new InboundGate(device.drops, filter, null), new FlowTracker(filter));
  await tick();
  assert.deepEqual(calls, [['setFilter', 2], ['setMode', true, true, true]]);
  calls.length = 0;
  filter.setRules([]);
  device.setPacketHooks(new InboundGate(device.drops, filter, null), new FlowTracker(filter));
  await tick();
  assert.deepEqual(calls, [], 'the same tables, nothing to push');
  // A tracker of another filter than the gate's: outbound stays in JS.
  device.setPacketHooks(device.inboundHook, new FlowTracker(new PacketFilter([])));
  await tick();
  assert.deepEqual(calls, [['setMode', false, true, true]]);
  calls.length = 0;
  // Served routes without a filter: local packets go to the TUN natively, the rest come back.
  device.setPacketHooks(new InboundGate(device.drops, null, null), null);
  await tick();
  assert.deepEqual(calls, [['setFilter', null], ['setMode', true, true, true]]);
  calls.length = 0;

  // Readdressing reaches the native path; the same set again pushes nothing.
  device.setLocalAddresses([parseCidr('100.64.0.9/32'), parseCidr('fd7a:115c:a1e0::9/128')]);
  device.setLocalAddresses([parseCidr('fd7a:115c:a1e0::9/64'), parseCidr('100.64.0.9/32')]);
  await tick();
  assert.deepEqual(calls, [['setLocal', '100.64.0.9.32.0.0.0.0', 1]]);
  calls.length = 0;

  device.removePeer(peer.publicKeyBase64);
  await tick();
  assert.deepEqual(calls, [['removePeer', 0], ['setRoutes', 0, 0, undefined, undefined]]);
  calls.length = 0;

  device.close();
  assert.deepEqual(calls, [['close']]);
  peer.current = keypair(10);
  await tick();
  assert.deepEqual(calls, [['close']], 'nothing is pushed after close');
});

test('a keypair shares its send counter and replay window with the native path through Keypair.state', () => {
  const k = keypair(1);
  k.sendCounter = 41;
  k.sendCounter++;
  const f64 = new Float64Array(k.state.buffer, 0, 2);
  assert.equal(f64[0], 42, 'the send counter lives at byte 0');
  assert.ok(k.replay.accept(5));
  assert.equal(f64[1], 5, 'the highest accepted counter at byte 8');
  assert.equal(new Uint32Array(k.state.buffer, 16, 256)[0], 1 << 5, 'the ring from byte 16');
  assert.equal(k.state.byteLength, 16 + 1024);
});
