// Relay trains (agent/wireguard/relay-train.ts) over the in-memory wire with relayed delivery:
// the packets of one TUN batch to a peer that accepts trains leave as few WireGuard messages,
// arrive intact and in order, and every packet of a train is checked as if it had come alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipv4Packet, makeWire, sealTransport, type Wire } from '../helpers/memory-link.js';
import { TRAIN_MAX_PLAINTEXT } from '../../agent/wireguard/relay-train.js';
import { TAG_LEN, TRANSPORT_HEADER_LEN } from '../../proto/wireguard/constants.js';

const A_IP = '100.64.0.1';
const B_IP = '100.64.0.2';

/** A relayed wire with a session up, A's peer (B) marked as accepting trains. */
function trainWire(): Wire {
  const w = makeWire({ relayed: true });
  w.sendIp(w.a, ipv4Packet(A_IP, B_IP, Buffer.from('up')));
  assert.equal(w.b.delivered.length, 1, 'the session is up');
  w.b.delivered.length = 0;
  w.a.sent.length = 0;
  [...w.a.device.peers.values()][0]!.relayTrains = true;
  return w;
}

const data = (n: number, size: number): Buffer[] =>
  Array.from({ length: n }, (_, i) => ipv4Packet(A_IP, B_IP, Buffer.alloc(size, i + 1), 6));

test('a batch to a peer that accepts trains leaves as one message and arrives whole, in order', () => {
  const w = trainWire();
  try {
    const packets = [...data(20, 1380), ...data(10, 40), ...data(5, 700)];
    w.sendIps(w.a, packets);
    assert.equal(w.a.sent.length, 1, 'one WireGuard message');
    assert.deepEqual(w.b.delivered, packets);
    assert.deepEqual(w.a.device.trains, { sent: 1, packetsSent: 35, received: 0, packetsReceived: 0 });
    assert.deepEqual(w.b.device.trains, { sent: 0, packetsSent: 0, received: 1, packetsReceived: 35 });
    const drops = Object.values(w.b.device.drops).reduce((x, y) => x + y, 0);
    assert.equal(drops, 0);
  } finally { w.close(); }
});

test('without the peer\'s word, one message per packet', () => {
  const w = trainWire();
  try {
    [...w.a.device.peers.values()][0]!.relayTrains = false;
    const packets = data(8, 1000);
    w.sendIps(w.a, packets);
    assert.equal(w.a.sent.length, 8);
    assert.deepEqual(w.b.delivered, packets);
    assert.equal(w.a.device.trains.sent, 0);
  } finally { w.close(); }
});

test('a batch larger than one train is cut into several, each within the relay\'s packet bound', () => {
  const w = trainWire();
  try {
    const packets = data(60, 1400);
    w.sendIps(w.a, packets);
    assert.equal(w.a.sent.length, Math.ceil(60 / Math.floor(TRAIN_MAX_PLAINTEXT / 1420)));
    for (const m of w.a.sent) assert.ok(m.length <= TRANSPORT_HEADER_LEN + TRAIN_MAX_PLAINTEXT + 15 + TAG_LEN, `message of ${m.length} bytes`);
    assert.deepEqual(w.b.delivered, packets);
  } finally { w.close(); }
});

test('a packet of a train from outside the peer\'s allowed IPs is dropped alone; the rest arrive', () => {
  const w = trainWire();
  try {
    const good = data(3, 500);
    const spoofed = ipv4Packet('100.64.9.9', B_IP, Buffer.alloc(500, 9), 6);
    w.sendIps(w.a, [good[0]!, spoofed, good[1]!, good[2]!]);
    assert.equal(w.a.sent.length, 1);
    assert.deepEqual(w.b.delivered, good);
    assert.equal(w.b.device.drops.allowedIpsMismatch, 1);
  } finally { w.close(); }
});

test('a TUN packet whose IP length is not its length goes alone, as a plain message', () => {
  const w = trainWire();
  try {
    const odd = ipv4Packet(A_IP, B_IP, Buffer.alloc(100, 7), 17);
    odd.writeUInt16BE(60, 2); // says 60 bytes, is 120
    const packets = [...data(2, 300), odd, ...data(2, 300)];
    w.sendIps(w.a, packets);
    assert.equal(w.a.sent.length, 3, 'a train, the odd packet, a train: in order');
    assert.deepEqual(w.a.device.trains, { sent: 2, packetsSent: 4, received: 0, packetsReceived: 0 });
    assert.deepEqual(w.b.delivered, [packets[0], packets[1], odd.subarray(0, 60), packets[3], packets[4]], 'the odd packet is cut to its IP length, as before trains');
  } finally { w.close(); }
});

test('hostile train contents: garbage after a packet is a counted drop, the packets before it arrive', () => {
  const w = trainWire();
  try {
    const kp = [...w.a.device.peers.values()][0]!.current!;
    const seal = (plain: Buffer): Buffer => sealTransport(kp, plain);
    const [p1, p2] = data(2, 200);
    w.inject(w.b, w.a.addr, seal(Buffer.concat([p1!, Buffer.from([0x45, 1, 2, 3, 4, 5]), p2!])));
    assert.deepEqual(w.b.delivered, [p1]);
    assert.equal(w.b.device.drops.badInnerPacket, 1);
    // A length field past the end of the message.
    const long = Buffer.from(p2!);
    long.writeUInt16BE(5000, 2);
    w.inject(w.b, w.a.addr, seal(Buffer.concat([p1!, long])));
    assert.equal(w.b.delivered.length, 2);
    assert.equal(w.b.device.drops.badInnerPacket, 2);
    // Only the padding's zeros end a train quietly.
    w.inject(w.b, w.a.addr, seal(Buffer.concat([p1!, p2!, Buffer.alloc(9)])));
    assert.deepEqual(w.b.delivered.slice(2), [p1, p2]);
    assert.equal(w.b.device.drops.badInnerPacket, 2);
  } finally { w.close(); }
});

test('trains are for relayed messages only: a direct message carries its first packet, as WireGuard does', () => {
  const w = makeWire();
  try {
    w.sendIp(w.a, ipv4Packet(A_IP, B_IP, Buffer.from('up')));
    const peerB = [...w.a.device.peers.values()][0]!;
    peerB.relayTrains = true; // its endpoint is UDP: no trains
    const packets = data(5, 300);
    w.sendIps(w.a, packets);
    assert.equal(w.a.device.trains.sent, 0);
    assert.deepEqual(w.b.delivered.slice(1), packets);
  } finally { w.close(); }
});
