// Userspace NAT, packet ownership: the device hands handle() views into its receive slab, which
// the next batch overwrites (agent/wireguard decrypts in place). What a flow keeps of a packet —
// the client's and the remote's addresses — must be its own copy, or a later answer goes to
// whatever address the slot holds by then (on an exit node: a TCP retransmission sent to no peer,
// and a download that stalls for good). Here every packet reaches the NAT through one reused slot
// that is scribbled over as soon as handle() returns; TCP, UDP and ICMP answers still reach the client.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { UserspaceNat } from '../../agent/nat/userspace-nat.js';
import { echoRequest, parse, udpPacket, type Parsed } from '../helpers/nat-packets.js';
import { MiniTcpClient, NatLink, type NatLike } from '../helpers/nat-tcp-client.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';

const CLIENT = '100.64.0.2';
const SCRIBBLE = 0xee; // 238.238.238.238 where an address was
const cleanups: Array<() => void> = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

/** Feeds the NAT like the device does: from one slab slot, reused by the next packet. */
class ReusedSlot implements NatLike {
  private readonly slot = Buffer.alloc(16 + 65536);
  handled = 0;

  constructor(private readonly nat: UserspaceNat) {}

  handle(packet: Uint8Array): void {
    this.slot.set(packet, 16); // behind the 16-byte transport header, as in the device's slab
    this.nat.handle(this.slot.subarray(16, 16 + packet.length));
    this.slot.fill(SCRIBBLE); // the next batch lands here
    this.handled++;
  }
}

function natWith(emit: (packet: Uint8Array) => void): { nat: UserspaceNat; slot: ReusedSlot } {
  const nat = new UserspaceNat({ emit, allowLocalDestinations: true });
  cleanups.push(() => nat.close());
  return { nat, slot: new ReusedSlot(nat) };
}

const addressed = (ps: readonly Parsed[]): string[] => [...new Set(ps.map((p) => `${p.src} > ${p.dst}`))];

test('a TCP download is answered to the client after the packet that opened the flow is overwritten', { timeout: 30_000 }, async () => {
  const link = new NatLink();
  const { slot } = natWith(link.emit);
  const body = randomBytes(512 * 1024);
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.write(body, () => s.end()); // sent from host socket callbacks, long after the SYN's handle()
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanups.push(() => srv.close());
  const c = new MiniTcpClient(slot, link, { src: CLIENT, sport: 41000, dst: '127.0.0.1', dport: (srv.address() as net.AddressInfo).port });
  cleanups.push(() => c.close());
  await c.connect();
  assert.equal(c.synAck!.dst, CLIENT, 'the SYN-ACK (sent once the host accepted) goes to the client');
  const received = await c.ended();
  assert.equal(createHash('sha256').update(received).digest('hex'), createHash('sha256').update(body).digest('hex'));
  assert.deepEqual(addressed(link.emitted), [`127.0.0.1 > ${CLIENT}`]);
  assert.equal(link.other.length, 0, 'no segment went to another address');
  assert.ok(slot.handled > 10);
});

test('UDP replies and ICMP echo replies go to the client after the request\'s buffer is overwritten', async () => {
  const out: Parsed[] = [];
  const { nat, slot } = natWith((p) => out.push(parse(p)));
  const srv = dgram.createSocket('udp4');
  srv.bind(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanups.push(() => srv.close());
  srv.on('message', (m, r) => srv.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address));
  slot.handle(udpPacket(CLIENT, 5353, '127.0.0.1', srv.address().port, Buffer.from('ping')));
  slot.handle(echoRequest(CLIENT, '127.0.0.1', 0x1234, 7, Buffer.from('abcdefgh')));
  await waitFor('a UDP reply and an echo reply', async () => out.length === 2, 10_000, 5);
  assert.deepEqual(addressed(out), [`127.0.0.1 > ${CLIENT}`]);
  assert.deepEqual(out.map((p) => p.checksumsOk), [true, true]);
  // The mapping keeps answering to the client (its address is the mapping's own, not the slot's).
  slot.handle(udpPacket(CLIENT, 5353, '127.0.0.1', srv.address().port, Buffer.from('again')));
  await waitFor('the second reply', async () => out.length === 3, 10_000, 5);
  assert.equal(out[2]!.dst, CLIENT);
  assert.equal(out[2]!.udp!.data.toString(), 're:again');
  assert.equal(nat.status().udp.mappings, 1);
});
