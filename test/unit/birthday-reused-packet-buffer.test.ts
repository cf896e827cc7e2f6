// Birthday sockets, packet ownership: what MagicBind hands Birthday.send for a birthday address is
// a view into a slab the device reuses at once (the TUN batch, the scratch slab of keepalives and
// staged packets, the slab of the NAT's answers), and dgram reads the bytes only later (its address
// lookup defers the send to the next tick). Here every packet leaves from one reused slot that is
// scribbled over as soon as sendBatch()/send() return; the peer still receives each packet as sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import pino from 'pino';
import { Birthday, type BirthdayHost } from '../../agent/magicsock/birthday.js';
import { BIRTHDAY_SOCKETS } from '../../agent/magicsock/birthday-plan.js';
import { MagicBind } from '../../agent/magicsock/magic-bind.js';
import { birthdayAddr, packedToDisco } from '../../agent/magicsock/path-addr.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';
import type { DiscoPeer } from '../../agent/magicsock/disco-peer.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';

const SCRIBBLE = 0xee;
const PING = Uint8Array.from([0x50, 1, 2, 3]); // the hard side's mapping-making pings

test('packets to a birthday address arrive as sent after the slot they left from is overwritten', { timeout: 15_000 }, async () => {
  const receiver = dgram.createSocket('udp4');
  await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', () => r()));
  const port = receiver.address().port;
  let pings = 0;
  const got: string[] = [];
  receiver.on('message', (m) => {
    if (Buffer.from(PING).equals(m)) pings++;
    else got.push(m.toString('latin1'));
  });
  const peer = { name: 'easy', nodeKeyB64: 'EASY', nat: () => ({ kind: null, source: null }) } as unknown as DiscoPeer;
  const host: BirthdayHost = {
    log: pino({ level: 'silent' }), now: () => performance.now(), ourNat: () => 'hard', wantNatKind: () => {},
    ourPublic: () => packedToDisco(encodePackedAddr({ address: '127.0.0.2', port: 1 })),
    sendBirthday: () => true, sealedPing: () => PING, sprayPing: () => {}, receive: () => {},
  };
  const birthday = new Birthday(host);
  const bind = new MagicBind({ send: () => false, sendBatch: () => 0 }, () => false, birthday.send);
  try {
    // The easy peer's offer makes us the hard side: BIRTHDAY_SOCKETS sockets, each pinging the receiver once bound.
    const easyPublic = packedToDisco(encodePackedAddr({ address: '127.0.0.1', port }));
    birthday.onMessage(peer, { type: 'birthday', nat: 'easy', phase: 'offer', sockets: 0, round: 1, public: easyPublic }, performance.now());
    await waitFor('a ping on every birthday socket', async () => pings === BIRTHDAY_SOCKETS, 5000, 10);

    // Socket #1's path to the receiver, as the magic socket would make it the peer's endpoint.
    const addrs = birthdayAddr(1, Uint8Array.from([127, 0, 0, 1]), port);
    const slab = Buffer.alloc(2 * 64); // one slot used over and over, at offset 64 like a slab's second slot
    const offsets = Uint32Array.from([64]);
    const lengths = new Uint32Array(1);
    const sent: string[] = [];
    const fromSlot = (text: string): void => {
      slab.write(text, 64, 'latin1');
      lengths[0] = text.length;
      sent.push(text);
    };
    fromSlot('first packet from the reused slot');
    assert.equal(bind.sendBatch(slab, offsets, lengths, addrs, 1), 1);
    fromSlot('second packet, same slot, same turn'); // e.g. the next peer's keepalive in the scratch slab
    assert.equal(bind.sendBatch(slab, offsets, lengths, addrs, 1), 1);
    fromSlot('third packet, through send()');
    assert.equal(bind.send(slab.subarray(64, 64 + lengths[0]!), addrs), true);
    slab.fill(SCRIBBLE); // the next batch lands here

    await waitFor('every packet', async () => got.length === sent.length, 3000, 10);
    assert.deepEqual(got, sent);
  } finally {
    birthday.close();
    receiver.close();
  }
});
