// The agent's STUN client over real UDP sockets against the relay's STUN responder on loopback:
// the mapped address is the socket's own, RFC 5780 CHANGE-REQUEST answers come from the other
// IP/port, RESPONSE-PORT is refused, requests are retransmitted when lost, errors/timeouts/aborts are typed, and other
// traffic on the shared socket is left alone.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import {
  StunClient, StunClientClosedError, StunErrorResponseError, StunTimeoutError,
} from '../../agent/netcheck/stun-client.js';
import { createRelayCounters } from '../../relay/counters.js';
import { silentLogger } from '../../relay/log.js';
import { startStunResponder, type StunResponder } from '../../relay/stun-responder.js';

let rfc5780: StunResponder;
let plain: StunResponder;
const counters = createRelayCounters().stun;
let sock: Socket;
let client: StunClient;
const others: Buffer[] = [];

before(async () => {
  // 127.0.0.2 is on lo as part of 127.0.0.0/8: two addresses without any setup.
  rfc5780 = await startStunResponder({ addresses: [{ address: '127.0.0.1', port: 0 }, { address: '127.0.0.2', port: 0 }], counters, logger: silentLogger() });
  plain = await startStunResponder({ addresses: [{ address: '127.0.0.1', port: 0 }], counters: createRelayCounters().stun, logger: silentLogger() });
  sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  client = new StunClient({ send: (p, port, address) => { sock.send(p, port, address); } });
  sock.on('message', (msg, rinfo) => {
    if (!client.handlePacket(msg, rinfo)) others.push(msg);
  });
});

after(async () => {
  client.close();
  sock.close();
  await rfc5780.close();
  await plain.close();
});

test('a binding request returns this socket\'s address as XOR-MAPPED-ADDRESS', async () => {
  const r = await client.request(plain.addresses[0]!);
  assert.deepEqual(r.mapped, { family: 4, address: '127.0.0.1', port: sock.address().port });
  assert.deepEqual(r.from, plain.addresses[0]);
  assert.equal(r.otherAddress, undefined, 'a one-address server is not an RFC 5780 server');
  assert.ok(r.rttMs >= 0 && r.rttMs < 1000);
});

test('an RFC 5780 server reports OTHER-ADDRESS and answers CHANGE-REQUEST from the other IP and port', async () => {
  const [primary] = rfc5780.addresses;
  const other = rfc5780.otherAddress!;
  assert.notEqual(other.address, primary!.address);
  assert.notEqual(other.port, primary!.port);
  const r = await client.request(primary!);
  assert.deepEqual(r.otherAddress, { family: 4, ...other });
  assert.deepEqual(r.responseOrigin, { family: 4, ...primary! });

  const both = await client.request(primary!, { changeIp: true, changePort: true });
  assert.deepEqual(both.from, other);
  assert.deepEqual(both.responseOrigin, { family: 4, ...other });
  const portOnly = await client.request(primary!, { changePort: true });
  assert.deepEqual(portOnly.from, { address: primary!.address, port: other.port });
  const ipOnly = await client.request(primary!, { changeIp: true });
  assert.deepEqual(ipOnly.from, { address: other.address, port: primary!.port });
  // Test II of RFC 5780 §4.3: the alternate IP on the primary port answers too, with our same mapping.
  const alt = await client.request({ address: other.address, port: primary!.port });
  assert.deepEqual(alt.mapped, r.mapped);
  assert.deepEqual(alt.otherAddress, { family: 4, address: primary!.address, port: other.port });
  assert.ok(counters.changeRequests >= 3);
});

test('RESPONSE-PORT is refused with 420 to the source; nothing goes to the other port', async () => {
  const second = createSocket('udp4');
  await new Promise<void>((r) => second.bind(0, '127.0.0.1', () => r()));
  try {
    let strays = 0;
    second.on('message', () => { strays++; });
    const before = counters.responsePortRefused;
    await assert.rejects(client.request(rfc5780.addresses[0]!, { responsePort: second.address().port, timeoutMs: 800 }),
      (err) => err instanceof StunErrorResponseError && err.code === 420);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(strays, 0, 'the other port got nothing');
    assert.equal(counters.responsePortRefused, before + 1);
  } finally {
    second.close();
  }
});

test('CHANGE-REQUEST to a one-address server is a 420 error', async () => {
  await assert.rejects(client.request(plain.addresses[0]!, { changeIp: true }), (err) => err instanceof StunErrorResponseError && err.code === 420);
});

test('a lost request is retransmitted with the same transaction id', async () => {
  let sent = 0;
  const lossy = new StunClient({ send: (p, port, address) => { if (sent++ > 0) sock.send(p, port, address); }, retransmitMs: [0, 100, 300] });
  sock.on('message', (m, rinfo) => lossy.handlePacket(m, rinfo));
  const r = await lossy.request(plain.addresses[0]!);
  assert.equal(r.transmissions, 2);
  assert.equal(r.mapped.port, sock.address().port);
});

test('no answer is a StunTimeoutError; abort and close reject pending transactions', async () => {
  const hole = createSocket('udp4'); // bound, never answers
  await new Promise<void>((r) => hole.bind(0, '127.0.0.1', () => r()));
  try {
    const t0 = performance.now();
    await assert.rejects(client.request({ address: '127.0.0.1', port: hole.address().port }, { timeoutMs: 300 }), StunTimeoutError);
    assert.ok(performance.now() - t0 >= 290);
    const ac = new AbortController();
    const p = client.request({ address: '127.0.0.1', port: hole.address().port }, { signal: ac.signal });
    ac.abort(new Error('stop'));
    await assert.rejects(p, /stop/);
    const c2 = new StunClient({ send: () => undefined });
    const p2 = c2.request({ address: '127.0.0.1', port: hole.address().port });
    c2.close();
    await assert.rejects(p2, StunClientClosedError);
    assert.equal(client.inFlight, 0);
  } finally {
    hole.close();
  }
});

test('datagrams that are not STUN are left for the socket\'s other users', async () => {
  const wg = new Uint8Array(148);
  wg[0] = 1;
  const peer = createSocket('udp4');
  try {
    const before = others.length;
    await new Promise<void>((r) => peer.send(wg, sock.address().port, '127.0.0.1', () => r()));
    for (let i = 0; i < 50 && others.length === before; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(others.length, before + 1);
    assert.equal(others.at(-1)![0], 1);
  } finally {
    peer.close();
  }
});
