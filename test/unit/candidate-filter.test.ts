// Candidate filter: peer-supplied endpoints that point at loopback, link-local, multicast,
// broadcast, unspecified, the overlay or our own addresses are refused; the lab's internet and LAN
// ranges (documentation and benchmark ranges) stay probe-able.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { candidateRefusal, readLocalAddresses, type LocalAddressSet } from '../../agent/magicsock/candidate-filter.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';

const none: LocalAddressSet = { own: new Set(), broadcast: new Set() };
const why = (address: string, port = 41641, local = none) => candidateRefusal(encodePackedAddr({ address, port }), local);

test('refused: loopback, link-local, multicast, broadcast, unspecified, reserved, overlay, port 0', () => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'],
    ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'], ['febf::1', 'link-local'],
    ['224.0.0.1', 'multicast'], ['239.255.255.250', 'multicast'], ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'], ['0.0.0.0', 'unspecified'], ['0.1.2.3', 'unspecified'], ['::', 'unspecified'],
    ['240.0.0.1', 'reserved'],
    ['100.64.0.1', 'overlay'], ['100.127.255.254', 'overlay'], ['::ffff:100.100.100.100', 'overlay'], ['fd7a:1e57:9a3c::6440:1', 'overlay'],
  ];
  for (const [addr, reason] of cases) assert.equal(why(addr), reason, addr);
  assert.equal(why('198.51.100.7', 0), 'port-zero');
});

test('allowed: the lab internet (documentation ranges), its LANs (198.18/15), public unicast, CGN edges', () => {
  for (const addr of ['203.0.113.10', '198.51.100.7', '192.0.2.1', '198.18.1.2', '198.19.255.1', '100.63.255.255', '100.128.0.1', '2001:db8::1', 'fd00::1', '8.8.8.8']) {
    assert.equal(why(addr), null, addr);
  }
});

test('our own interface addresses and subnet broadcasts are refused', () => {
  const local = readLocalAddresses();
  let checked = 0;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const r = why(a.address.split('%')[0]!, 41641, local);
      assert.notEqual(r, null, `${a.address} is ours`);
      checked++;
    }
  }
  assert.ok(checked > 0, 'at least loopback is listed');
  const lan: LocalAddressSet = { own: new Set(['c6120102']), broadcast: new Set(['c61201ff']) }; // 198.18.1.2/24
  assert.equal(why('198.18.1.2', 41641, lan), 'own-address');
  assert.equal(why('198.18.1.255', 41641, lan), 'broadcast');
  assert.equal(why('198.18.1.3', 41641, lan), null);
});
