// Bad input on the WireGuard wire: every decoder rejects short, oversized and garbled messages
// with a DecodeError (never anything else), and a device fed 100k hostile datagrams and TUN
// packets never throws and accounts for every one of them in its drop counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../proto/errors.js';
import { decodeCookieReply, decodeInitiation, decodeResponse } from '../../proto/wireguard/messages.js';
import { makeWire, ipv4Packet, SLOT, SLOTS } from '../helpers/memory-link.js';

const RUNS = 100_000;

/** Datagrams that look like WireGuard: a plausible type header, then anything. */
const wireguardish = fc.tuple(fc.integer({ min: 0, max: 5 }), fc.uint8Array({ minLength: 0, maxLength: 200 }))
  .map(([type, rest]) => {
    const b = new Uint8Array(rest.length + 4);
    b[0] = type;
    b.set(rest, 4);
    return b;
  });
const anyBytes = fc.oneof(fc.uint8Array({ minLength: 0, maxLength: 300 }), wireguardish);

for (const [name, decode] of [
  ['initiation', decodeInitiation], ['response', decodeResponse], ['cookie reply', decodeCookieReply],
] as const) {
  test(`${name} decoder throws only DecodeError on ${RUNS} random inputs`, () => {
    fc.assert(fc.property(anyBytes, (b) => {
      try {
        decode(b);
      } catch (err) {
        return err instanceof DecodeError;
      }
      return true;
    }), { numRuns: RUNS });
  });
}

test('short, oversized and garbled messages have distinct error codes', () => {
  const codeOf = (f: () => unknown): string => {
    try { f(); } catch (err) { return (err as DecodeError).code; }
    return 'ok';
  };
  const init = new Uint8Array(148);
  init[0] = 1;
  assert.equal(codeOf(() => decodeInitiation(init)), 'ok');
  assert.equal(codeOf(() => decodeInitiation(init.subarray(0, 147))), 'short');
  assert.equal(codeOf(() => decodeInitiation(new Uint8Array(149).fill(0, 1).fill(1, 0, 1))), 'oversized');
  const garbled = Uint8Array.from(init);
  garbled[2] = 9;
  assert.equal(codeOf(() => decodeInitiation(garbled)), 'bad-type');
});

test(`a device fed ${RUNS} hostile datagrams never throws and counts each one`, () => {
  const w = makeWire();
  try {
    // A live session, so that transport messages reach the decrypt and replay stages too.
    w.sendIp(w.a, ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('up')));
    const session = [...w.b.device.peers.values()][0]!.current!;
    const node = w.b;
    const lengths = new Uint32Array(SLOTS);
    const addrs = new Uint8Array(SLOTS * 20);
    addrs.set(w.a.addr, 0);
    const sumDrops = (): number => Object.values(node.device.drops).reduce((x, y) => x + y, 0);
    const hs = (): number => node.device.handshakes.cookieRepliesReceived + node.device.handshakes.initiationsReceived
      + node.device.handshakes.responsesReceived;
    fc.assert(fc.property(anyBytes, fc.boolean(), (bytes, aimAtSession) => {
      const b = Buffer.from(bytes.subarray(0, SLOT));
      if (aimAtSession && b.length >= 16 && b[0] === 4) b.writeUInt32LE(session.localIndex, 4);
      const before = sumDrops() + hs() + node.delivered.length;
      b.copy(node.udpSlab.slab, 0);
      lengths[0] = b.length;
      node.device.receiveUdpBatch(node.udpSlab, lengths, addrs, 1);
      return sumDrops() + hs() + node.delivered.length === before + 1;
    }), { numRuns: RUNS });
    // and the tunnel still works afterwards
    const pkt = ipv4Packet('100.64.0.1', '100.64.0.2', Buffer.from('still up'));
    w.sendIp(w.a, pkt);
    assert.deepEqual(node.delivered.at(-1), pkt);
  } finally { w.close(); }
});

test(`the TUN side drops ${RUNS} garbage packets without throwing`, () => {
  const w = makeWire();
  try {
    const lengths = new Uint32Array(SLOTS);
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 1420 }), (bytes) => {
      w.a.tunSlab.slab.set(bytes, w.a.tunSlab.headroom);
      lengths[0] = bytes.length;
      w.a.device.receiveTunBatch(lengths, 1);
      return true;
    }), { numRuns: RUNS });
    assert.ok(w.a.device.drops.noRoute > RUNS / 2);
  } finally { w.close(); }
});

test('the kernel\'s multicast on the TUN (MLD, router solicitations) is counted as multicast, not noRoute', () => {
  const w = makeWire();
  try {
    const lengths = new Uint32Array(SLOTS);
    // An MLDv2 listener report as Linux sends it on a fresh interface: IPv6, hop-by-hop, to ff02::16.
    const mld = Buffer.alloc(76);
    mld[0] = 0x60;
    mld.writeUInt16BE(36, 4);
    mld[6] = 0; // hop-by-hop options
    mld[7] = 1;
    Buffer.from('fe800000000000000000000000000001', 'hex').copy(mld, 8);
    Buffer.from('ff020000000000000000000000000016', 'hex').copy(mld, 24);
    const mdns = ipv4Packet('100.64.0.1', '224.0.0.251', Buffer.from('mdns'));
    const stray = ipv4Packet('100.64.0.1', '198.51.100.7', Buffer.from('nowhere'));
    for (const p of [mld, mdns, stray]) {
      w.a.tunSlab.slab.set(p, w.a.tunSlab.headroom);
      lengths[0] = p.length;
      w.a.device.receiveTunBatch(lengths, 1);
    }
    assert.equal(w.a.device.drops.multicast, 2);
    assert.equal(w.a.device.drops.noRoute, 1);
  } finally { w.close(); }
});
