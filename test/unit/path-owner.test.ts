// One writer per peer path: addrKind() is the one answer to "UDP, relay or birthday socket?";
// a static peer follows authenticated sources (WireGuard roaming); a peer the magic socket took
// over (Peer.takePath) changes endpoint only through the writer it handed out, and packets from
// other sources are reported to its owner instead of followed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { addrKind, birthdayAddr, relayAddr } from '../../agent/magicsock/path-addr.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';
import { Device } from '../../agent/wireguard/device.js';
import type { Peer, PathOwner } from '../../agent/wireguard/peer.js';
import { parseCidr } from '../../proto/ip/address.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

const at = (ip: string, port = 41641): Uint8Array => encodePackedAddr({ address: ip, port });

test('addrKind tells UDP, relay and birthday addresses apart, at any offset, and nothing else passes as one', () => {
  fc.assert(fc.property(fc.ipV4(), fc.ipV6(), fc.integer({ min: 1, max: 65535 }), fc.nat(), fc.nat({ max: 3 }), (v4, v6, port, id, slot) => {
    const batch = new Uint8Array(4 * 20);
    const kinds = [
      [encodePackedAddr({ address: v4, port }), 'udp'],
      [encodePackedAddr({ address: v6, port }), 'udp'],
      [relayAddr(id), 'relay'],
      [birthdayAddr(id, Uint8Array.from([203, 0, 113, 7]), port), 'birthday'],
    ] as const;
    const [addr, kind] = kinds[slot]!;
    batch.set(addr, slot * 20);
    assert.equal(addrKind(addr), kind);
    assert.equal(addrKind(batch, slot * 20), kind);
  }));
  fc.assert(fc.property(fc.integer({ min: 0, max: 255 }).filter((b) => ![4, 6, 0xfd, 0xfe].includes(b)), (family) => {
    const a = new Uint8Array(20);
    a[0] = family;
    assert.equal(addrKind(a), 'invalid');
  }));
});

function peerOn(device: Device): Peer {
  return device.addPeer({ publicKey: publicKeyFromPrivate(generatePrivateKey()), allowedIps: [parseCidr('100.64.0.2/32')], endpoint: at('198.51.100.1') });
}

test('a static peer roams to the source of an authenticated packet or handshake', () => {
  const d = new Device({ privateKey: generatePrivateKey(), mtu: 1420, localAddresses: [] });
  const p = peerOn(d);
  assert.equal(p.managed, false);
  p.noteSource(at('198.51.100.2'), 0);
  assert.deepEqual(p.endpoint, at('198.51.100.2'));
  p.noteHandshakeSource(at('198.51.100.3'), 0);
  assert.deepEqual(p.endpoint, at('198.51.100.3'));
  d.close();
});

test('a managed peer changes endpoint only through its owner\'s writer; other sources are reported, not followed', () => {
  const d = new Device({ privateKey: generatePrivateKey(), mtu: 1420, localAddresses: [] });
  const p = peerOn(d);
  const heard: string[] = [];
  const owner: PathOwner = { onPeerSource: (peer, addrs, off) => heard.push(`${peer === p}:${addrs[off + 7]}`) };
  const write = p.takePath(owner);
  assert.equal(p.managed, true);
  p.noteSource(at('198.51.100.2'), 0);
  assert.deepEqual(p.endpoint, at('198.51.100.1'), 'a data packet from elsewhere does not move it');
  p.noteSource(at('198.51.100.1'), 0);
  assert.deepEqual(heard, ['true:2'], 'the endpoint itself is no news');
  p.noteHandshakeSource(at('198.51.100.4'), 0);
  assert.deepEqual(p.endpoint, at('198.51.100.1'), 'nor does a handshake');
  assert.deepEqual(heard, ['true:2'], 'a handshake is news only while there is no endpoint');
  write(relayAddr(7));
  assert.equal(addrKind(p.endpoint!), 'relay');
  d.close();
});

test('a managed peer with no endpoint yet: its owner hears of the first handshake and decides', () => {
  const d = new Device({ privateKey: generatePrivateKey(), mtu: 1420, localAddresses: [] });
  const p = d.addPeer({ publicKey: publicKeyFromPrivate(generatePrivateKey()), allowedIps: [parseCidr('100.64.0.3/32')] });
  let write: (e: Uint8Array) => void = () => {};
  write = p.takePath({ onPeerSource: (_peer, addrs, off) => write(Uint8Array.prototype.slice.call(addrs, off, off + 20)) });
  p.noteHandshakeSource(at('198.51.100.5'), 0);
  assert.deepEqual(p.endpoint, at('198.51.100.5'), 'set by the owner, answering where the peer wrote from');
  d.close();
});
