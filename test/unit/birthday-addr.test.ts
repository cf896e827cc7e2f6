// Birthday addresses (path-addr.ts, family 0xfd) and MagicBind's routing: plain UDP goes to the
// UDP socket (batched), relay addresses to the relay, birthday addresses to their socket through
// sideSend, in one batch; a birthday packet sideSend refuses is refused, not sent elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MagicBind } from '../../agent/magicsock/magic-bind.js';
import { BIRTHDAY_FAMILY, birthdayAddr, birthdaySocketId, birthdayTarget, packedText, packedToDisco, relayAddr } from '../../agent/magicsock/path-addr.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';
import type { BatchUdpSocket } from '../../agent/tun/udp-socket.js';

const ip = Uint8Array.from([203, 0, 113, 7]);

test('a birthday address names its socket and its target, and prints as ip:port#bN', () => {
  const a = birthdayAddr(4242, ip, 40001);
  assert.equal(a[0], BIRTHDAY_FAMILY);
  assert.equal(birthdaySocketId(a), 4242);
  assert.deepEqual(birthdayTarget(a), encodePackedAddr({ address: '203.0.113.7', port: 40001 }));
  assert.equal(packedText(a), '203.0.113.7:40001#b4242');
  assert.deepEqual(packedToDisco(a), packedToDisco(birthdayTarget(a)));
  assert.notDeepEqual(birthdayAddr(1, ip, 40001), birthdayAddr(2, ip, 40001));
});

test('MagicBind routes UDP, relay and birthday addresses in one batch', () => {
  const udpSent: string[] = [];
  const udp = {
    send: (_b: Uint8Array, addr: Uint8Array) => { udpSent.push(packedText(addr)); return true; },
    sendBatch: (_s: Uint8Array, _o: Uint32Array, _l: Uint32Array, addrs: Uint8Array, n: number) => {
      for (let i = 0; i < n; i++) udpSent.push(packedText(addrs, i * 20));
      return n;
    },
  } as unknown as BatchUdpSocket;
  const relayed: number[] = [];
  const side: string[] = [];
  let sockets = false;
  const bind = new MagicBind(udp, (id) => { relayed.push(id); return true; }, (addr, packet) => {
    if (!sockets) return false;
    side.push(`${packedText(addr)}/${packet.length}`);
    return true;
  });
  const plain = encodePackedAddr({ address: '198.51.100.3', port: 5000 });
  const bday = birthdayAddr(9, ip, 40001);
  assert.equal(bind.send(new Uint8Array(4), bday), false, 'no birthday sockets: refused');
  sockets = true;
  const slab = new Uint8Array(30);
  const addrs = new Uint8Array(60);
  addrs.set(plain, 0);
  addrs.set(bday, 20);
  addrs.set(relayAddr(77), 40);
  const sent = bind.sendBatch(slab, Uint32Array.from([0, 10, 20]), Uint32Array.from([10, 5, 10]), addrs, 3);
  assert.equal(sent, 3);
  assert.deepEqual(udpSent, ['198.51.100.3:5000']);
  assert.deepEqual(side, ['203.0.113.7:40001#b9/5']);
  assert.deepEqual(relayed, [77]);
  assert.ok(bind.send(new Uint8Array(3), bday));
  assert.equal(side.at(-1), '203.0.113.7:40001#b9/3');
});
