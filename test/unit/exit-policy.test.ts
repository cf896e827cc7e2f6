// An exit node gives the internet, nothing more: behind the exit routes its NAT refuses the exit
// node's own addresses, its connected networks, special-purpose ranges (private, CGNAT/overlay,
// loopback, link-local and cloud metadata, ULA) and routes it learned from peers, unless a network
// is also an approved subnet route it serves. Refusals are answered (RST for TCP, ICMP
// administratively prohibited for UDP and echo requests) and counted.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ExitDestinationPolicy } from '../../agent/nat/exit-policy.js';
import { UserspaceNat } from '../../agent/nat/userspace-nat.js';
import { parseAddress, parseCidr } from '../../proto/ip/address.js';
import { ACK, RST, SYN, echoRequest, parse, tcpPacket, udpPacket, type Parsed } from '../helpers/nat-packets.js';

const CLIENT = '100.64.0.2';
const CLIENT6 = 'fd7a:115c:a1e0::2';
const cidrs = (...list: string[]) => list.map(parseCidr);

function policy(): ExitDestinationPolicy {
  return new ExitDestinationPolicy({
    ownAddresses: cidrs('203.0.113.10/24', '198.18.9.200/24', '2001:db8:1::10/64'),
    connectedNetworks: cidrs('203.0.113.0/24', '198.18.9.0/24', '2001:db8:1::/64'),
    peerRoutes: cidrs('198.18.20.0/24'),
  });
}

const refuses = (p: ExitDestinationPolicy, addr: string): boolean => {
  const b = parseAddress(addr).bytes;
  return p.refuses(b, 0, b.length === 4 ? 4 : 6);
};

test('the internet is allowed; own addresses, connected networks, special ranges and peer routes are refused, by reason', () => {
  const p = policy();
  for (const ok of ['192.0.2.1', '198.51.100.7', '198.18.3.4', '8.8.8.8', '2001:db8:2::1', '2606:4700::1111']) {
    assert.equal(refuses(p, ok), false, `${ok} is the internet`);
  }
  const refused: Array<[string, string]> = [
    ['203.0.113.10', 'ownAddress'], ['198.18.9.200', 'ownAddress'], ['2001:db8:1::10', 'ownAddress'],
    ['203.0.113.77', 'connectedNetwork'], ['198.18.9.5', 'connectedNetwork'], ['2001:db8:1::99', 'connectedNetwork'],
    ['198.18.20.4', 'peerRoute'],
    ['10.1.2.3', 'specialPurpose'], ['172.16.0.1', 'specialPurpose'], ['192.168.1.1', 'specialPurpose'],
    ['100.64.0.5', 'specialPurpose'], ['127.0.0.1', 'specialPurpose'], ['169.254.169.254', 'specialPurpose'],
    ['168.63.129.16', 'specialPurpose'], ['fd00:ec2::254', 'specialPurpose'], ['fe80::1', 'specialPurpose'],
    ['::1', 'specialPurpose'], ['::ffff:10.0.0.1', 'specialPurpose'], ['fd7a:115c:a1e0::5', 'specialPurpose'],
  ];
  const want = { ownAddress: 0, connectedNetwork: 0, specialPurpose: 0, peerRoute: 0 } as Record<string, number>;
  for (const [addr, why] of refused) {
    assert.equal(refuses(p, addr), true, `${addr} refused (${why})`);
    want[why]!++;
  }
  assert.deepEqual(p.status().refused, want);
});

test('a network the exit node also serves as an approved subnet route is reachable; interfaces are re-read', () => {
  const p = policy();
  p.update({ subnetRoutes: cidrs('198.18.9.0/24', '10.20.0.0/16', '0.0.0.0/0') });
  assert.equal(refuses(p, '198.18.9.5'), false, 'the LAN, as a subnet route');
  assert.equal(refuses(p, '198.18.9.200'), false, 'its own LAN address inside it too');
  assert.equal(refuses(p, '10.20.1.1'), false, 'a private range approved as a subnet route');
  assert.equal(refuses(p, '10.21.1.1'), true, 'the exit route (/0) is not a subnet route');
  assert.equal(refuses(p, '169.254.169.254'), true);
  p.update({ ownAddresses: cidrs('198.51.100.250/32'), connectedNetworks: [] });
  assert.equal(refuses(p, '198.51.100.250'), true, 'a new interface address');
  assert.equal(refuses(p, '203.0.113.77'), false, 'a network the host left');
});

const cleanups: Array<() => void> = [];
after(() => { for (const c of cleanups) c(); });

test('the NAT answers refused destinations: RST for TCP, ICMP administratively prohibited for UDP and pings; counted', () => {
  const out: Parsed[] = [];
  const p = policy();
  const nat = new UserspaceNat({ emit: (pkt) => out.push(parse(pkt)), destinationPolicy: p });
  cleanups.push(() => nat.close());

  nat.handle(tcpPacket({ src: CLIENT, dst: '198.18.9.5', sport: 40000, dport: 80, seq: 1000, ack: 0, flags: SYN }));
  assert.equal(out.length, 1);
  assert.equal(out[0]!.tcp!.flags, RST | ACK);
  assert.equal(out[0]!.tcp!.ack, 1001);
  assert.equal(out[0]!.src, '198.18.9.5');
  assert.equal(out[0]!.dst, CLIENT);

  nat.handle(udpPacket(CLIENT, 40001, '169.254.169.254', 80, Buffer.from('GET /latest/meta-data')));
  nat.handle(echoRequest(CLIENT, '203.0.113.10', 7, 1, Buffer.from('ping')));
  for (const m of out.slice(1)) {
    assert.deepEqual([m.icmp!.type, m.icmp!.code], [3, 13], 'administratively prohibited');
    assert.equal(m.checksumsOk, true);
  }
  nat.handle(udpPacket(CLIENT6, 40002, 'fd00:ec2::254', 80, Buffer.from('x')));
  const v6 = out.at(-1)!;
  assert.deepEqual([v6.version, v6.icmp!.type, v6.icmp!.code], [6, 1, 1]);
  assert.equal(v6.checksumsOk, true);

  // Never an answer to a RST or to an ICMP error.
  const before = out.length;
  nat.handle(tcpPacket({ src: CLIENT, dst: '198.18.9.5', sport: 40000, dport: 80, seq: 1, ack: 0, flags: RST }));
  const err = echoRequest(CLIENT, '10.0.0.1', 1, 1, Buffer.alloc(8));
  err[20] = 3; // an ICMP error, not an echo request (checksum fixed below)
  err[22] = 0; err[23] = 0;
  let sum = 0;
  for (let i = 20; i < err.length; i += 2) sum += err.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  err.writeUInt16BE(~sum & 0xffff, 22);
  nat.handle(err);
  assert.equal(out.length, before);

  const st = nat.status();
  assert.equal(st.drops['forbidden-destination'], 1, 'link-local (metadata) is refused by every NAT');
  assert.equal(st.drops['refused-destination'], 5, 'the rest by the exit policy');
  assert.equal(st.tcp.opened, 0, 'no host socket was opened');
  assert.equal(st.udp.mappings, 0);
  assert.deepEqual(p.status().refused, { ownAddress: 1, connectedNetwork: 2, specialPurpose: 2, peerRoute: 0 });
});
