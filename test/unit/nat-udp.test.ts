// Userspace NAT, UDP (and ICMP echo): datagrams built by the test go through handle() to real
// UDP servers on 127.0.0.1 / ::1; replies come back as UDP/IP packets with valid checksums.
// Endpoint-independent mapping, both filtering modes, idle expiry, per-peer caps, bad checksums;
// ICMP echo to the loopback through the ICMP socket.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserspaceNat, type UserspaceNatOptions } from '../../agent/nat/userspace-nat.js';
import { echoRequest, parse, udpPacket, type Parsed } from '../helpers/nat-packets.js';

const CLIENT = '100.64.0.2';
const CLIENT6 = 'fd7a:115c:a1e0::2';
const cleanups: Array<() => void> = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

function setup(opts: Partial<UserspaceNatOptions> = {}) {
  const out: Parsed[] = [];
  const nat = new UserspaceNat({ emit: (p) => out.push(parse(p)), allowLocalDestinations: true, ...opts });
  cleanups.push(() => nat.close());
  return { nat, out };
}

async function udpServer(type: 'udp4' | 'udp6' = 'udp4'): Promise<dgram.Socket> {
  const s = dgram.createSocket(type);
  s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1');
  await once(s, 'listening');
  cleanups.push(() => s.close());
  return s;
}

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting: ${what}`);
    await sleep(5);
  }
}

test('UDP request/response through one mapping per client port, checksums valid', async () => {
  const { nat, out } = setup();
  const srv = await udpServer();
  const seen: number[] = [];
  srv.on('message', (m, r) => {
    seen.push(r.port);
    srv.send(Buffer.concat([Buffer.from('re:'), m]), r.port, r.address);
  });
  const srv2 = await udpServer();
  srv2.on('message', (_m, r) => seen.push(r.port));
  nat.handle(udpPacket(CLIENT, 5353, '127.0.0.1', srv.address().port, Buffer.from('ping')));
  await waitFor(() => out.length === 1, 'reply');
  const p = out[0]!;
  assert.equal(p.checksumsOk, true);
  assert.equal(p.src, '127.0.0.1');
  assert.equal(p.dst, CLIENT);
  assert.deepEqual({ ...p.udp!, data: p.udp!.data.toString() }, { sport: srv.address().port, dport: 5353, data: 're:ping' });
  nat.handle(udpPacket(CLIENT, 5353, '127.0.0.1', srv2.address().port, Buffer.from('second')));
  await waitFor(() => seen.length === 2, 'second destination');
  assert.equal(seen[0], seen[1], 'endpoint-independent mapping: one host port for every destination');
  nat.handle(udpPacket(CLIENT, 5354, '127.0.0.1', srv.address().port, Buffer.from('other')));
  await waitFor(() => seen.length === 3, 'third');
  assert.notEqual(seen[2], seen[0], 'another client port, another mapping');
  const st = nat.status();
  assert.equal(st.udp.mappings, 2);
  assert.equal(st.udp.datagramsOut, 3);
});

test('UDP over IPv6', async () => {
  const { nat, out } = setup();
  const srv = await udpServer('udp6');
  srv.on('message', (m, r) => srv.send(m, r.port, r.address));
  nat.handle(udpPacket(CLIENT6, 4000, '::1', srv.address().port, Buffer.from('six')));
  await waitFor(() => out.length === 1, 'reply');
  assert.equal(out[0]!.version, 6);
  assert.equal(out[0]!.checksumsOk, true);
  assert.equal(out[0]!.src, '::1');
  assert.equal(out[0]!.udp!.data.toString(), 'six');
});

for (const filtering of ['endpoint-independent', 'address-and-port-dependent'] as const) {
  test(`${filtering} filtering of a reply from another server port`, async () => {
    const { nat, out } = setup({ udpFiltering: filtering });
    const srv = await udpServer();
    const other = await udpServer();
    srv.on('message', (_m, r) => {
      other.send(Buffer.from('from other port'), r.port, r.address);
      setTimeout(() => srv.send(Buffer.from('from contacted port'), r.port, r.address), 30);
    });
    nat.handle(udpPacket(CLIENT, 6000, '127.0.0.1', srv.address().port, Buffer.from('hi')));
    await waitFor(() => out.some((p) => p.udp?.data.toString() === 'from contacted port'), 'reply from the contacted port');
    const fromOther = out.filter((p) => p.udp?.sport === other.address().port);
    if (filtering === 'endpoint-independent') {
      assert.equal(fromOther.length, 1, 'full cone: any remote may answer');
      assert.equal(nat.status().drops['udp-filtered'], 0);
    } else {
      assert.equal(fromOther.length, 0, 'port-restricted: only the contacted ip:port');
      assert.equal(nat.status().drops['udp-filtered'], 1);
    }
  });
}

test('idle mappings expire and free their socket; per-peer cap holds', async () => {
  const { nat } = setup({ limits: { udpIdleMs: 200, udpPerPeer: 3 } });
  const srv = await udpServer();
  const got: string[] = [];
  srv.on('message', (m) => got.push(m.toString()));
  for (let port = 7000; port < 7005; port++) nat.handle(udpPacket(CLIENT, port, '127.0.0.1', srv.address().port, Buffer.from(`p${port}`)));
  await waitFor(() => got.length === 3, 'three datagrams');
  let st = nat.status();
  assert.equal(st.udp.mappings, 3);
  assert.equal(st.drops['udp-table-full'], 2);
  await waitFor(() => nat.status().udp.mappings === 0, 'mappings expired', 5000);
  st = nat.status();
  assert.equal(st.udp.mappingsExpired, 3);
  nat.handle(udpPacket(CLIENT, 7004, '127.0.0.1', srv.address().port, Buffer.from('after')));
  await waitFor(() => got.includes('after'), 'a new mapping after expiry');
});

test('bad UDP checksums, fragments and forbidden destinations are dropped and counted', async () => {
  const { nat, out } = setup({ allowLocalDestinations: false });
  const good = udpPacket(CLIENT, 8000, '127.0.0.1', 9, Buffer.from('x'));
  nat.handle(good);
  assert.equal(nat.status().drops['forbidden-destination'], 1, 'loopback refused by default');
  assert.equal(out.length, 1);
  assert.equal(out[0]!.icmp!.type, 3);
  assert.equal(out[0]!.icmp!.code, 13, 'administratively prohibited');
  assert.equal(out[0]!.checksumsOk, true);
  const local = setup();
  const bad = Buffer.from(udpPacket(CLIENT, 8000, '127.0.0.1', 9, Buffer.from('x')));
  bad[bad.length - 1]! ^= 0xff;
  local.nat.handle(bad);
  const frag = Buffer.from(udpPacket(CLIENT, 8000, '127.0.0.1', 9, Buffer.from('x')));
  frag[6] = 0x20; // MF
  frag[10] = frag[11] = 0;
  let s = 0;
  for (let i = 0; i < 20; i += 2) s += frag.readUInt16BE(i);
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  frag.writeUInt16BE(~s & 0xffff, 10);
  local.nat.handle(frag);
  const st = local.nat.status();
  assert.equal(st.drops['bad-udp-checksum'], 1);
  assert.equal(st.drops.fragment, 1);
  assert.equal(st.udp.mappings, 0, 'nothing opened');
});

test('ICMP echo to 127.0.0.1 and ::1 is answered with the client identifier and data', async () => {
  const { nat, out } = setup();
  nat.handle(echoRequest(CLIENT, '127.0.0.1', 0x1234, 7, Buffer.from('abcdefgh')));
  nat.handle(echoRequest(CLIENT6, '::1', 0x4321, 9, Buffer.from('ipv6 ping')));
  await waitFor(() => out.length === 2, 'two echo replies');
  const v4 = out.find((p) => p.version === 4)!;
  const v6 = out.find((p) => p.version === 6)!;
  assert.equal(v4.checksumsOk, true);
  assert.deepEqual([v4.src, v4.dst, v4.icmp!.type, v4.icmp!.id, v4.icmp!.seq, v4.icmp!.data.toString()], ['127.0.0.1', CLIENT, 0, 0x1234, 7, 'abcdefgh']);
  assert.equal(v6.checksumsOk, true);
  assert.deepEqual([v6.src, v6.dst, v6.icmp!.type, v6.icmp!.id, v6.icmp!.seq, v6.icmp!.data.toString()], ['::1', CLIENT6, 129, 0x4321, 9, 'ipv6 ping']);
  const st = nat.status();
  assert.equal(st.icmp.echoReplies, 2);
  assert.equal(st.icmp.pending, 0);
  assert.match(st.icmp.socketV4, /^(dgram|raw)$/);
});
