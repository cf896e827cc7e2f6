// The inbound destination check: a decrypted packet from a peer reaches the TUN only for this
// node's own addresses; on a node that serves routes (subnet router, exit node) packets inside
// them go to the NAT; everything else is drops.notForUs. The native data path's verdicts
// (addon checkDestinations, the code ph_fast_udp runs) are compared with JS's on random batches.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LocalAddresses } from '../../agent/wireguard/local-addresses.js';
import { loadNative } from '../../agent/tun/native.js';
import { ipPacketLength } from '../../proto/ip/packet.js';
import { parseCidr, type Cidr } from '../../proto/ip/address.js';
import { ExitService, type NatEngine } from '../../agent/daemon/exit-service.js';
import { InboundGate } from '../../agent/daemon/inbound-gate.js';
import { PacketFilter } from '../../agent/filter/packet-filter.js';
import { ipv4Packet, makeWire, type Wire } from '../helpers/memory-link.js';
import { ipPacket } from '../helpers/nat-packets.js';

const A_IP = '100.64.0.1';
const B_IP = '100.64.0.2';

// --- JS and native agree -------------------------------------------------------------------

const v4Addr = fc.uint8Array({ minLength: 4, maxLength: 4 });
const v6Addr = fc.uint8Array({ minLength: 16, maxLength: 16 });

/** A packet: a plausible IPv4/IPv6 header (sometimes to a local address), or junk; sometimes cut short. */
function packetArb(local4: Uint8Array[], local6: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const pick = (list: Uint8Array[], random: fc.Arbitrary<Uint8Array>) =>
    list.length === 0 ? random : fc.oneof(fc.constantFrom(...list), random);
  const v4 = fc.record({ dst: pick(local4, v4Addr), ihl: fc.integer({ min: 0, max: 15 }), extra: fc.integer({ min: 0, max: 40 }), cut: fc.integer({ min: -30, max: 8 }) })
    .map(({ dst, ihl, extra, cut }) => {
      const p = new Uint8Array(20 + extra);
      p[0] = 0x40 | ihl;
      p[2] = (p.length >> 8) & 0xff;
      p[3] = p.length & 0xff;
      p.set(dst, 16);
      return p.subarray(0, Math.max(0, Math.min(p.length, p.length + cut)));
    });
  const v6 = fc.record({ dst: pick(local6, v6Addr), extra: fc.integer({ min: 0, max: 40 }), cut: fc.integer({ min: -50, max: 8 }) })
    .map(({ dst, extra, cut }) => {
      const p = new Uint8Array(40 + extra);
      p[0] = 0x60;
      p[5] = extra;
      p.set(dst, 24);
      return p.subarray(0, Math.max(0, Math.min(p.length, p.length + cut)));
    });
  return fc.oneof(v4, v6, fc.uint8Array({ maxLength: 60 }));
}

test('the native path and JS give every packet the same verdict: delivered, not for us, not IP', () => {
  const native = loadNative();
  const scenario = fc.tuple(fc.array(v4Addr, { maxLength: 4 }), fc.array(v6Addr, { maxLength: 3 }))
    .chain(([l4, l6]) => fc.tuple(fc.constant(l4), fc.constant(l6), fc.array(packetArb(l4, l6), { minLength: 1, maxLength: 64 })));
  let delivered = 0;
  let notForUs = 0;
  fc.assert(fc.property(scenario, ([l4, l6, packets]) => {
    const cidrs: Cidr[] = [
      ...l4.map((b) => ({ family: 4 as const, bytes: b, bits: 32 })),
      ...l6.map((b) => ({ family: 6 as const, bytes: b, bits: 128 })),
    ];
    const local = new LocalAddresses(cidrs);
    // One batch in a slab, as the data path sees it.
    const slot = 128;
    const slab = new Uint8Array(slot * packets.length);
    const offsets = new Uint32Array(packets.length);
    const lengths = new Uint32Array(packets.length);
    packets.forEach((p, i) => { slab.set(p, i * slot); offsets[i] = i * slot; lengths[i] = p.length; });
    const out = new Uint8Array(packets.length);
    const { v4, v6 } = local.packed();
    native.checkDestinations(v4, v6, slab, offsets, lengths, out);
    packets.forEach((_, i) => {
      const ipLen = ipPacketLength(slab, offsets[i]!, lengths[i]!);
      const js = ipLen <= 0 ? 2 : local.hasDestination(slab, offsets[i]!, ipLen) ? 1 : 0;
      assert.equal(out[i], js, `packet ${i}: native ${out[i]}, JS ${js}`);
      if (js === 1) delivered++;
      if (js === 0) notForUs++;
    });
  }), { numRuns: 300 });
  assert.ok(delivered > 20 && notForUs > 20, `both verdicts exercised (${delivered} delivered, ${notForUs} not for us)`);
});

test('local addresses are hosts: a prefix length on an address does not make its network ours', () => {
  const local = new LocalAddresses([parseCidr('100.64.1.1/24'), parseCidr('fd00:7::1/64')]);
  assert.deepEqual(local.list(), ['100.64.1.1/32', 'fd00:7::1/128']);
  const to = (dst: string) => ipv4Packet('100.64.1.2', dst, Buffer.alloc(0));
  assert.equal(local.hasDestination(to('100.64.1.1'), 0, 20), true);
  assert.equal(local.hasDestination(to('100.64.1.9'), 0, 20), false);
  assert.equal(local.hasDestination(ipPacket('fd00:7::2', 'fd00:7::1', 17, Buffer.alloc(8), 6), 0, 48), true);
  assert.equal(local.hasDestination(ipPacket('fd00:7::2', 'fd00:7::9', 17, Buffer.alloc(8), 6), 0, 48), false);
});

// --- the device --------------------------------------------------------------------------------

/** A's device sends `dst` to B (A's allowed IPs for B say so, as a hostile member's would). */
function routeToB(w: Wire, ...cidrs: string[]): void {
  const b = w.a.device.peers.values().next().value!;
  for (const c of cidrs) w.a.device.allowedIps.insert(parseCidr(c), b);
}

test('a peer\'s packet for another destination is dropped as notForUs; for this node it is delivered', () => {
  const w = makeWire();
  try {
    routeToB(w, '198.18.5.0/24', '100.64.0.0/10', '0.0.0.0/0');
    w.sendIp(w.a, ipv4Packet(A_IP, B_IP, Buffer.from('for b')));
    for (const dst of ['198.18.5.7', '100.64.0.77', '192.0.2.1']) w.sendIp(w.a, ipv4Packet(A_IP, dst, Buffer.from('steer')));
    assert.deepEqual(w.b.delivered.map((p) => p.subarray(20).toString()), ['for b']);
    assert.equal(w.b.device.status().drops.notForUs, 3);
    // Readdressed: the old address is not ours any more.
    w.b.device.setLocalAddresses([parseCidr('100.64.0.22/32')]);
    w.sendIp(w.a, ipv4Packet(A_IP, B_IP, Buffer.from('old')));
    w.sendIp(w.a, ipv4Packet(A_IP, '100.64.0.22', Buffer.from('new')));
    assert.deepEqual(w.b.delivered.map((p) => p.subarray(20).toString()), ['for b', 'new']);
    assert.equal(w.b.device.status().drops.notForUs, 4);
  } finally {
    w.close();
  }
});

function recordingNat(): NatEngine & { packets: string[] } {
  const packets: string[] = [];
  return {
    packets,
    handle: (p) => { packets.push(`${p[16]}.${p[17]}.${p[18]}.${p[19]}`); },
    status: () => ({}),
    close: () => undefined,
  };
}

test('managed mode, served routes: inside an approved route → the NAT; the overlay and anything else → notForUs', () => {
  const w = makeWire();
  try {
    routeToB(w, '198.18.0.0/15', '100.64.0.0/10', '0.0.0.0/0');
    const nat = recordingNat();
    const exit = new ExitService(() => nat, () => ({ own: [], connected: [] }));
    const self = { ipv4: B_IP, ipv6: 'fd7a:115c:a1e0::2', routes: ['198.18.5.0/24'] };
    assert.equal(exit.update(self), true);
    w.b.device.setPacketHooks(new InboundGate(w.b.device.drops, null, exit), null);
    const send = (dst: string) => w.sendIp(w.a, ipv4Packet(A_IP, dst, Buffer.from(dst)));
    for (const dst of [B_IP, '198.18.5.7', '198.18.6.7', '100.64.0.77', '192.0.2.1']) send(dst);
    assert.deepEqual(nat.packets, ['198.18.5.7']);
    assert.deepEqual(w.b.delivered.map((p) => p.subarray(20).toString()), [B_IP]);
    assert.equal(w.b.device.status().drops.notForUs, 3);

    // Approved as an exit node too: the internet goes to the NAT, the overlay still does not.
    exit.update({ ...self, routes: ['198.18.5.0/24', '0.0.0.0/0', '::/0'] });
    for (const dst of ['192.0.2.1', '100.64.0.77', '198.18.6.7']) send(dst);
    assert.deepEqual(nat.packets, ['198.18.5.7', '192.0.2.1', '198.18.6.7']);
    assert.equal(w.b.device.status().drops.notForUs, 4);

    // With a packet filter, a served destination the policy does not allow is `filtered`, not `notForUs`.
    const filter = new PacketFilter([{ srcIps: ['100.64.0.99/32'], dst: [{ cidr: '0.0.0.0/0', ports: '*' }], protocols: [] }]);
    w.b.device.setPacketHooks(new InboundGate(w.b.device.drops, filter, exit), w.b.device.outboundHook);
    send('192.0.2.2');
    send('100.64.0.78');
    assert.equal(nat.packets.length, 3);
    assert.equal(w.b.device.status().drops.filtered, 1);
    assert.equal(w.b.device.status().drops.notForUs, 5);
  } finally {
    w.close();
  }
});
