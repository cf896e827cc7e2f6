// The birthday orchestrator (birthday.ts) between two in-process hosts whose relay is a direct
// function call: a stuck peer makes the easy side offer; the hard side opens its sockets, pings
// the easy side's public endpoint from each (a local UDP receiver here) and says go; the easy side
// sprays at its rate toward the hard side's IP; a hit ends the spray; close() closes every socket.
// Also: two easy NATs never start, and an unknown NAT kind asks for a netcheck instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import pino from 'pino';
import { Birthday, type BirthdayHost, type BirthdayMessage } from '../../agent/magicsock/birthday.js';
import { BIRTHDAY_SOCKETS, PUNCH_GRACE_MS, SPRAY_RATE_PPS } from '../../agent/magicsock/birthday-plan.js';
import { birthdayAddr, birthdaySocketId, packedToDisco } from '../../agent/magicsock/path-addr.js';
import { PeerPath } from '../../agent/magicsock/peer-path.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';
import type { BirthdayNat } from '../../proto/disco/messages.js';
import type { DiscoPeer } from '../../agent/magicsock/disco-peer.js';
import type { NatKind } from '../../proto/control/schemas.js';

const log = pino({ level: 'silent' });
/** A peer as the orchestrator sees it: a name, a key and the NAT kind it reported (or none). */
const fakePeer = (name: string, kind: NatKind | null = null): DiscoPeer =>
  ({ name, nodeKeyB64: name.toUpperCase(), nat: () => ({ kind, source: kind === null ? null : 'reported' }) }) as unknown as DiscoPeer;
const peerA = fakePeer('a'); // how B sees A
const peerB = fakePeer('b'); // how A sees B

function host(nat: BirthdayNat, pub: { address: string; port: number }, deliver: (m: BirthdayMessage) => void, sprayed: Uint8Array[], wanted: { n: number }): BirthdayHost {
  return {
    log, now: () => performance.now(), ourNat: () => nat, wantNatKind: () => { wanted.n++; },
    ourPublic: () => packedToDisco(encodePackedAddr(pub)),
    sendBirthday: (_p, m) => { setImmediate(() => deliver(m)); return true; },
    sealedPing: () => Uint8Array.from([0x50, 1, 2, 3]),
    sprayPing: (_p, to) => { sprayed.push(to); },
    receive: () => {},
  };
}

test('easy offers, hard opens its sockets and says go, easy sprays within its rate until the hit', async () => {
  const receiver = dgram.createSocket('udp4');
  await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', () => r()));
  let pingsAtEasy = 0;
  receiver.on('message', () => { pingsAtEasy++; });
  const port = receiver.address().port;
  const sprayed: Uint8Array[] = [];
  const wanted = { n: 0 };
  let easy!: Birthday;
  let hard!: Birthday;
  // A is easy (public endpoint = the local receiver), B is hard (public IP 127.0.0.2).
  easy = new Birthday(host('easy', { address: '127.0.0.1', port }, (m) => hard.onMessage(peerA, m, performance.now()), sprayed, wanted));
  hard = new Birthday(host('hard', { address: '127.0.0.2', port: 1 }, (m) => easy.onMessage(peerB, m, performance.now()), [], wanted));
  try {
    const t0 = performance.now();
    easy.tick(peerB, t0, true, null, true);
    easy.tick(peerB, t0 + PUNCH_GRACE_MS, true, null, true);
    assert.equal(easy.status().offersSent, 1);
    await waitUntil(() => sprayed.length > 0, 3000);
    const hs = hard.status();
    assert.equal(hs.hardAttempts, 1);
    assert.equal(hs.socketsOpened, BIRTHDAY_SOCKETS);
    assert.equal(hs.socketsOpen, BIRTHDAY_SOCKETS);
    await waitUntil(() => pingsAtEasy === BIRTHDAY_SOCKETS, 3000);
    const sprayStart = performance.now();
    await new Promise((r) => setTimeout(r, 300));
    const n = sprayed.length;
    assert.ok(n <= ((performance.now() - sprayStart + 60) / 1000) * SPRAY_RATE_PPS + 1, `sprayed ${n}`);
    assert.ok(sprayed.every((a) => a[0] === 4 && a[4] === 127 && a[7] === 2), 'toward the hard side\'s IP');
    assert.equal(new Set(sprayed.map((a) => (a[2]! << 8) | a[3]!)).size, n, 'distinct ports');
    easy.sprayHit(peerB, performance.now());
    const es = easy.status();
    assert.equal(es.successes, 1);
    assert.equal(es.lastSuccessPackets, n);
    // Per peer (status --json): one attempt as the easy side, direct after n probes; the hard side still waits for its path.
    assert.deepEqual({ ...easy.peerStatus(peerB)!, ms: 0 }, { attempts: 1, role: 'easy', outcome: 'direct', ms: 0, probes: n });
    assert.deepEqual(hard.peerStatus(peerA), { attempts: 1, role: 'hard', outcome: 'running' });
    assert.equal(easy.peerStatus(peerA), null, 'no attempt toward a peer: null');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(sprayed.length, n, 'no probe after the hit');
    assert.equal(wanted.n, 0);
  } finally {
    easy.close();
    hard.close();
    receiver.close();
  }
  assert.equal(hard.status().socketsOpen, 0);
});

test('two easy NATs never start; an unknown kind asks for a netcheck', () => {
  const wanted = { n: 0 };
  const sent: BirthdayMessage[] = [];
  const b = new Birthday(host('easy', { address: '127.0.0.1', port: 9 }, () => {}, [], wanted));
  b.onMessage(peerA, { type: 'birthday', nat: 'easy', phase: 'offer', sockets: 0, round: 1, public: packedToDisco(encodePackedAddr({ address: '127.0.0.3', port: 9 })) }, 0);
  b.tick(peerA, 1000, true, null, true);
  b.tick(peerA, 1000 + PUNCH_GRACE_MS, true, null, true);
  assert.equal(b.status().offersSent, 0, 'the peer said easy: no pair');
  // ...while a peer that has not told its kind gets our offer
  b.tick(peerB, 1000, true, null, true);
  b.tick(peerB, 1000 + PUNCH_GRACE_MS, true, null, true);
  assert.equal(b.status().offersSent, 1);
  assert.equal(b.status().attempts, 0);
  const u = new Birthday({ ...host('unknown', { address: '127.0.0.1', port: 9 }, (m) => sent.push(m), [], wanted) });
  u.tick(peerA, 1000, true, null, true);
  u.tick(peerA, 1000 + PUNCH_GRACE_MS, true, null, true);
  assert.ok(wanted.n >= 1);
  assert.equal(u.status().offersSent, 0);
  b.close();
  u.close();
});

test('a peer\'s reported NAT kind decides before its offer: an easy one is not asked, a symmetric one is', () => {
  const wanted = { n: 0 };
  const b = new Birthday(host('easy', { address: '127.0.0.1', port: 9 }, () => {}, [], wanted));
  const cone = fakePeer('cone', 'port-restricted-cone');
  const sym = fakePeer('sym', 'symmetric');
  for (const p of [cone, sym]) {
    b.tick(p, 1000, true, null, true);
    b.tick(p, 1000 + PUNCH_GRACE_MS, true, null, true);
  }
  assert.equal(b.status().offersSent, 1, 'only the symmetric peer gets an offer');
  b.close();
});

test('the hard side pings nothing and never says go toward a peer whose disco key is unusable', async () => {
  const receiver = dgram.createSocket('udp4');
  await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', () => r()));
  let pingsAtEasy = 0;
  receiver.on('message', () => { pingsAtEasy++; });
  const sprayed: Uint8Array[] = [];
  const wanted = { n: 0 };
  let easy!: Birthday;
  let hard!: Birthday;
  easy = new Birthday(host('easy', { address: '127.0.0.1', port: receiver.address().port }, (m) => hard.onMessage(peerA, m, performance.now()), sprayed, wanted));
  // The magic socket's sealedPing is null for a peer without a usable disco key (a low-order key).
  hard = new Birthday({ ...host('hard', { address: '127.0.0.2', port: 1 }, (m) => easy.onMessage(peerB, m, performance.now()), [], wanted), sealedPing: () => null });
  try {
    const t0 = performance.now();
    easy.tick(peerB, t0, true, null, true);
    easy.tick(peerB, t0 + PUNCH_GRACE_MS, true, null, true);
    await waitUntil(() => hard.status().socketsOpened === BIRTHDAY_SOCKETS, 3000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hard.status().packetsSent, 0);
    assert.equal(pingsAtEasy, 0);
    assert.equal(sprayed.length, 0, 'no go, so no spray');
  } finally {
    easy.close();
    hard.close();
    receiver.close();
  }
});

test('two probes hit: the hard side keeps both sockets the peer\'s pings came in on, closes the rest, still hears the one its path does not use, and closes it once unused', async () => {
  const receiver = dgram.createSocket('udp4');
  await new Promise<void>((r) => receiver.bind(0, '127.0.0.1', () => r()));
  const mappings: number[] = []; // the source ports of the hard side's pings: its "NAT mappings"
  receiver.on('message', (_m, rinfo) => { mappings.push(rinfo.port); });
  const heard: Uint8Array[] = []; // birthday addresses datagrams arrived with at the hard side
  const wanted = { n: 0 };
  // A's view of B has a real path table: the magic socket adds a birthday address there for each authenticated ping.
  const peer = { ...fakePeer('a'), path: new PeerPath() } as unknown as DiscoPeer;
  const hard = new Birthday({
    ...host('hard', { address: '127.0.0.2', port: 1 }, () => {}, [], wanted),
    receive: (_d, from) => { heard.push(Uint8Array.from(from)); },
  });
  try {
    const t0 = performance.now();
    hard.onMessage(peer, { type: 'birthday', nat: 'easy', phase: 'offer', sockets: 0, round: 7, public: packedToDisco(encodePackedAddr({ address: '127.0.0.1', port: receiver.address().port })) }, t0);
    await waitUntil(() => mappings.length === BIRTHDAY_SOCKETS, 3000);
    // The easy side's spray hits two of them.
    const [hit1, hit2] = [mappings[17]!, mappings[200]!];
    receiver.send(Uint8Array.from([1]), hit1, '127.0.0.1');
    receiver.send(Uint8Array.from([2]), hit2, '127.0.0.1');
    await waitUntil(() => heard.length === 2, 3000);
    for (const from of heard) peer.path.addPacked(from, 'ping', performance.now());
    // The hard side's path runs through the second one (its pong came back first); the peer may use either.
    const now = performance.now();
    const best = peer.path.addPacked(heard[1]!, 'ping', now);
    peer.path.onPong(best, 1, now);
    hard.tick(peer, now, true, best.packed, false);
    assert.equal(hard.status().socketsOpen, 2, 'the two sockets the peer reached stay open; 254 close');
    assert.equal(hard.status().successes, 1);
    assert.deepEqual(hard.peerStatus(peer), { attempts: 1, role: 'hard', outcome: 'direct', ms: hard.peerStatus(peer)!.ms, probes: BIRTHDAY_SOCKETS });
    // The peer keeps sending to the first hit: it still arrives.
    heard.length = 0;
    receiver.send(Uint8Array.from([3]), hit1, '127.0.0.1');
    await waitUntil(() => heard.length === 1, 3000);
    assert.equal(birthdaySocketId(heard[0]!), birthdaySocketId(peer.path.candidates.values().next().value!.packed));
    // Sends through either socket work; a closed socket's address is refused.
    assert.equal(hard.send(heard[0]!, Uint8Array.from([4])), true);
    const kept = new Set([...peer.path.candidates.values()].map((c) => birthdaySocketId(c.packed)));
    const closedId = [...Array(BIRTHDAY_SOCKETS).keys()].map((i) => i + 1).find((id) => !kept.has(id))!;
    assert.equal(hard.send(birthdayAddr(closedId, Uint8Array.from([127, 0, 0, 1]), hit1), Uint8Array.from([5])), false);
    // The other one closes once nothing of the peer came through it for a minute; the path's own stays.
    const later = now + 60_001;
    peer.path.onPong(best, 1, later);
    hard.tick(peer, later, true, best.packed, false);
    assert.equal(hard.status().socketsOpen, 1);
    assert.equal(hard.send(best.packed, Uint8Array.from([6])), true);
  } finally {
    hard.close();
    receiver.close();
  }
  assert.equal(hard.status().socketsOpen, 0);
});

async function waitUntil(f: () => boolean, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!f()) {
    if (performance.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
