// The stateful packet filter on hand-built packets: rules by source, destination, port and
// protocol; replies to flows this node opened; ICMP echo and errors; fragments; a new rule set
// revoking what old rules admitted; a bounded flow table; malformed packets refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PacketFilter } from '../../agent/filter/packet-filter.js';
import { FlowTable } from '../../agent/filter/flow-table.js';
import type { FilterRule } from '../../proto/control/schemas.js';

const ME = '100.64.0.1';
const ALICE = '100.64.0.2';
const BOB = '100.64.0.3';

function v4(a: string): number[] {
  return a.split('.').map(Number);
}

function v6(a: string): number[] {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((w) => parseInt(w, 16));
  return words.flatMap((w) => [w >> 8, w & 255]);
}

interface PacketSpec {
  src: string;
  dst: string;
  proto: number;
  sport?: number;
  dport?: number;
  /** TCP flags byte (default SYN). */
  flags?: number;
  /** ICMP type/code and identifier. */
  icmpType?: number;
  icmpId?: number;
  /** Payload after an 8-byte ICMP header (an ICMP error's quoted packet). */
  payload?: Uint8Array;
  fragOffset?: number;
  moreFragments?: boolean;
  id?: number;
}

function packet(s: PacketSpec): Buffer {
  const six = s.src.includes(':');
  let l4: number[];
  if (s.proto === 6) {
    l4 = [s.sport! >> 8, s.sport! & 255, s.dport! >> 8, s.dport! & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, s.flags ?? 0x02, 0xff, 0xff, 0, 0, 0, 0];
  } else if (s.proto === 17) {
    l4 = [s.sport! >> 8, s.sport! & 255, s.dport! >> 8, s.dport! & 255, 0, 12, 0, 0, 1, 2, 3, 4];
  } else {
    const id = s.icmpId ?? 0;
    l4 = [s.icmpType ?? 8, 0, 0, 0, id >> 8, id & 255, 0, 1, ...(s.payload ?? [])];
  }
  if (s.fragOffset) l4 = [9, 9, 9, 9, 9, 9, 9, 9];
  if (six) {
    const len = l4.length;
    return Buffer.from([0x60, 0, 0, 0, len >> 8, len & 255, s.proto, 64, ...v6(s.src), ...v6(s.dst), ...l4]);
  }
  const total = 20 + l4.length;
  const frag = ((s.moreFragments ? 0x20 : 0) << 8) | ((s.fragOffset ?? 0) / 8);
  const id = s.id ?? 1;
  return Buffer.from([0x45, 0, total >> 8, total & 255, id >> 8, id & 255, frag >> 8, frag & 255, 64, s.proto, 0, 0, ...v4(s.src), ...v4(s.dst), ...l4]);
}

const NOW = 1_000_000;
const allow = (f: PacketFilter, p: Buffer, now = NOW): boolean => f.allowInbound(p, 0, p.length, now);
const track = (f: PacketFilter, p: Buffer, now = NOW): void => f.trackOutbound(p, 0, p.length, now);

const RULES: FilterRule[] = [
  { srcIps: [ALICE, 'fd7a:1e57:9a3c::6440:2'], dst: [{ cidr: `${ME}/32`, ports: '22,8000-8099' }, { cidr: 'fd7a:1e57:9a3c::6440:1/128', ports: '22' }], protocols: [] },
  { srcIps: ['100.64.0.0/24'], dst: [{ cidr: `${ME}/32`, ports: '53' }], protocols: [17] },
];

test('rules admit by source, destination port and protocol; everything else is dropped', () => {
  const f = new PacketFilter(RULES);
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 6, sport: 40000, dport: 22 })), true);
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 6, sport: 40000, dport: 8050 })), true);
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 17, sport: 40000, dport: 8099 })), true);
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 6, sport: 40000, dport: 23 })), false, 'port not listed');
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 6, sport: 40000, dport: 22 })), false, 'source not listed');
  assert.equal(allow(f, packet({ src: ALICE, dst: '100.64.0.9', proto: 6, sport: 40000, dport: 22 })), false, 'destination not listed');
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 17, sport: 5000, dport: 53 })), true, 'a prefix source, UDP only');
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 6, sport: 5000, dport: 53 })), false, 'TCP is not in the second rule');
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 1, icmpType: 8, icmpId: 7 })), true, 'ICMP by the empty protocol list');
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 1, icmpType: 8, icmpId: 7 })), false);
  assert.equal(allow(f, packet({ src: 'fd7a:1e57:9a3c::6440:2', dst: 'fd7a:1e57:9a3c::6440:1', proto: 6, sport: 1, dport: 22 })), true, 'IPv6');
  assert.equal(allow(f, packet({ src: 'fd7a:1e57:9a3c::6440:3', dst: 'fd7a:1e57:9a3c::6440:1', proto: 6, sport: 1, dport: 22 })), false);
  const s = f.status(NOW);
  assert.equal(s.rules, 2);
  assert.ok(s.dropped.noRule >= 6);
});

test('replies to flows this node opened pass; other traffic from the same peer does not', () => {
  const f = new PacketFilter([]);
  const out = packet({ src: ME, dst: BOB, proto: 6, sport: 41000, dport: 443 });
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 6, sport: 443, dport: 41000, flags: 0x12 })), false, 'not before it was opened');
  track(f, out);
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 6, sport: 443, dport: 41000, flags: 0x12 })), true, 'the SYN-ACK');
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 6, sport: 443, dport: 41001, flags: 0x12 })), false, 'another local port');
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 6, sport: 444, dport: 41000 })), false, 'another remote port');
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 6, sport: 443, dport: 41000 })), false, 'another peer');
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 17, sport: 443, dport: 41000 })), false, 'another protocol');
  // UDP, and the flow's timeout.
  track(f, packet({ src: ME, dst: BOB, proto: 17, sport: 5353, dport: 53 }));
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 17, sport: 53, dport: 5353 })), true);
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 17, sport: 53, dport: 5353 }), NOW + 3 * 60_000), false, 'expired after 2 min idle');
});

test('ICMP: echo replies to our pings, errors about our flows; echo replies nobody asked for are dropped', () => {
  const f = new PacketFilter([]);
  track(f, packet({ src: ME, dst: BOB, proto: 1, icmpType: 8, icmpId: 99 }));
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 1, icmpType: 0, icmpId: 99 })), true);
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 1, icmpType: 0, icmpId: 98 })), false);
  const sent = packet({ src: ME, dst: '192.0.2.7', proto: 17, sport: 6000, dport: 7000 });
  const unreachable = packet({ src: BOB, dst: ME, proto: 1, icmpType: 3, payload: sent.subarray(0, 28) });
  assert.equal(allow(f, unreachable), false, 'an error about a flow we never opened');
  track(f, sent);
  assert.equal(allow(f, unreachable), true, 'an error about our flow (quoting 8 transport bytes)');
});

test('later fragments pass only after the first fragment of their datagram passed', () => {
  const f = new PacketFilter(RULES);
  const later = packet({ src: ALICE, dst: ME, proto: 17, fragOffset: 1480, id: 4242 });
  assert.equal(allow(f, later), false);
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 17, sport: 1, dport: 22, moreFragments: true, id: 4242 })), true);
  assert.equal(allow(f, later), true);
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 17, fragOffset: 1480, id: 4243 })), false, 'another datagram');
  assert.equal(f.status(NOW).dropped.fragment, 2);
});

test('a new rule set revokes what the old rules admitted, but not flows this node opened', () => {
  const f = new PacketFilter(RULES);
  const ssh = packet({ src: ALICE, dst: ME, proto: 6, sport: 50000, dport: 22, flags: 0x10 });
  assert.equal(allow(f, ssh), true);
  track(f, packet({ src: ME, dst: ALICE, proto: 6, sport: 41000, dport: 443 }));
  f.setRules([]);
  assert.equal(allow(f, ssh), false, 'the admitted flow is gone with its rule');
  assert.equal(allow(f, packet({ src: ALICE, dst: ME, proto: 6, sport: 443, dport: 41000, flags: 0x10 })), true, 'our own flow stays');
});

test('malformed packets are refused and counted; the flow table stays within its size', () => {
  const f = new PacketFilter(RULES, { capacity: 64 });
  const short = packet({ src: ALICE, dst: ME, proto: 6, sport: 1, dport: 22 }).subarray(0, 30);
  assert.equal(f.allowInbound(short, 0, short.length, NOW), false);
  assert.equal(f.allowInbound(Buffer.from([0x70, 0, 0, 0]), 0, 4, NOW), false);
  assert.equal(f.status(NOW).dropped.malformed, 2);
  for (let port = 1; port <= 5000; port++) track(f, packet({ src: ME, dst: BOB, proto: 17, sport: port, dport: 53 }));
  const s = f.status(NOW);
  assert.ok(s.flows <= s.capacity, `${s.flows} flows in ${s.capacity} slots`);
  assert.ok(s.evictions > 0);
  // The newest flows are there.
  assert.equal(allow(f, packet({ src: BOB, dst: ME, proto: 17, sport: 53, dport: 5000 })), true);
});

test('flow table: lookups find what was inserted, per generation, until it expires', () => {
  const t = new FlowTable(16, 4);
  t.key.set([6, 1, 2, 3]);
  assert.equal(t.lookup(0, 1, 10), false);
  t.insert(0, 1, 100);
  assert.equal(t.lookup(50, 1, 100), true);
  assert.equal(t.lookup(50, 2, 100), false, 'another generation');
  assert.equal(t.lookup(150, 1, 100), false, 'expired');
  t.insert(0, 0, 100);
  assert.equal(t.lookup(50, 7, 100), true, 'generation 0 is valid in every generation');
});
