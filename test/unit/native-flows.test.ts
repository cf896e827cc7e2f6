// The packet filter's established flows on the native data path (agent/tun/src/fast_flows.c)
// against the JS filter that owns them (agent/filter/packet-filter.ts), on random traffic: for
// every packet the native verdict is computed over the filter's own shared tables, then JS runs.
// A native pass must be exactly a JS flow hit on a plain packet, with the same effect on the
// tables; a packet left to JS must leave the tables untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadNative, type NativeFlowTables } from '../../agent/tun/native.js';
import { PacketFilter } from '../../agent/filter/packet-filter.js';
import type { FilterRule } from '../../proto/control/schemas.js';
import { ipPacket } from '../helpers/nat-packets.js';

const native = loadNative();
const LOCAL4 = '100.64.0.1';
const LOCAL6 = 'fd7a:115c:a1e0::1';
const REMOTES4 = ['100.64.0.2', '100.64.0.3'];
const REMOTES6 = ['fd7a:115c:a1e0::2', 'fd7a:115c:a1e0::3'];
const RULES: FilterRule[] = [
  { srcIps: ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'], dst: [{ cidr: '100.64.0.1/32', ports: '22' }, { cidr: 'fd7a:115c:a1e0::1/128', ports: '22' }] },
  { srcIps: ['*'], dst: [{ cidr: '*', ports: '53' }] },
] as unknown as FilterRule[];

interface Op {
  inbound: boolean;
  v6: boolean;
  remote: number;
  kind: 'tcp' | 'udp' | 'echo-request' | 'echo-reply' | 'icmp-error' | 'gre' | 'fragment' | 'v6-ext';
  localPort: number;
  remotePort: number;
  advanceMs: number;
  newRules: boolean;
  /** Also send the answer right after (the mirrored packet the other way). */
  reply: boolean;
}

const opArb: fc.Arbitrary<Op> = fc.record({
  inbound: fc.boolean(),
  v6: fc.boolean(),
  remote: fc.integer({ min: 0, max: 1 }),
  kind: fc.constantFrom('tcp', 'udp', 'udp', 'tcp', 'echo-request', 'echo-reply', 'icmp-error', 'gre', 'fragment', 'v6-ext'),
  localPort: fc.constantFrom(22, 53, 40000, 40001),
  remotePort: fc.constantFrom(22, 53, 50000),
  advanceMs: fc.constantFrom(0, 0, 0, 10, 40_000, 130_000, 400_000),
  newRules: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
  reply: fc.boolean(),
});

const answer = (op: Op): Op => ({
  ...op, inbound: !op.inbound, advanceMs: 0, newRules: false, reply: false,
  kind: op.kind === 'echo-request' ? 'echo-reply' : op.kind === 'echo-reply' ? 'echo-request' : op.kind,
});

function build(op: Op): Buffer {
  const local = op.v6 ? LOCAL6 : LOCAL4;
  const remote = (op.v6 ? REMOTES6 : REMOTES4)[op.remote]!;
  const [src, dst] = op.inbound ? [remote, local] : [local, remote];
  const [sport, dport] = op.inbound ? [op.remotePort, op.localPort] : [op.localPort, op.remotePort];
  const icmp = op.v6 ? 58 : 1;
  const l4 = (len: number) => Buffer.alloc(len);
  switch (op.kind) {
    case 'tcp': case 'udp': {
      const b = l4(op.kind === 'udp' ? 8 : 20);
      b.writeUInt16BE(sport, 0);
      b.writeUInt16BE(dport, 2);
      return ipPacket(src, dst, op.kind === 'udp' ? 17 : 6, b, -1);
    }
    case 'fragment': {
      // The first fragment of a TCP segment: IPv4 with MF set; IPv6 behind a fragment header.
      const tcp = l4(20);
      tcp.writeUInt16BE(sport, 0);
      tcp.writeUInt16BE(dport, 2);
      if (!op.v6) return ipPacket(src, dst, 6, tcp, -1, { frag: 0x2000 });
      const frag = l4(8);
      frag[0] = 6;
      frag[3] = 1; // offset 0, more fragments
      frag.writeUInt32BE(0x1234, 4);
      return ipPacket(src, dst, 44, Buffer.concat([frag, tcp]), -1);
    }
    case 'echo-request': case 'echo-reply': {
      const b = l4(8);
      b[0] = op.kind === 'echo-request' ? (op.v6 ? 128 : 8) : (op.v6 ? 129 : 0);
      b.writeUInt16BE(op.localPort, 4);
      return ipPacket(src, dst, icmp, b, -1);
    }
    case 'icmp-error': {
      const b = l4(8 + 28);
      b[0] = op.v6 ? 1 : 3;
      return ipPacket(src, dst, icmp, b, -1);
    }
    case 'gre':
      return ipPacket(src, dst, 47, l4(8), -1);
    case 'v6-ext': {
      // IPv6 with a destination-options header before UDP (IPv4: a packet with options, IHL 6).
      if (!op.v6) {
        const p = ipPacket(src, dst, 17, l4(12), -1);
        p[0] = 0x46;
        p.writeUInt16BE(sport, 24);
        p.writeUInt16BE(dport, 26);
        return p;
      }
      const b = l4(8 + 8);
      b[0] = 17;
      b.writeUInt16BE(sport, 8);
      b.writeUInt16BE(dport, 10);
      return ipPacket(src, dst, 60, b, -1);
    }
  }
}

function verdict(t: NativeFlowTables, pkt: Buffer, inbound: boolean, now: number): boolean {
  const out = new Uint8Array(1);
  native.flowVerdicts(t.v4.keys, t.v4.expiry, t.v4.generation, t.v6.keys, t.v6.expiry, t.v6.generation, t.state, t.timeouts,
    pkt, Uint32Array.of(0), Uint32Array.of(pkt.length), inbound, now, out);
  return out[0] === 1;
}

function snapshot(t: NativeFlowTables): Uint8Array[] {
  return [t.v4.keys, t.v4.expiry, t.v4.generation, t.v6.keys, t.v6.expiry, t.v6.generation]
    .map((a) => new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
}

function restore(t: NativeFlowTables, snap: Uint8Array[]): void {
  [t.v4.keys, t.v4.expiry, t.v4.generation, t.v6.keys, t.v6.expiry, t.v6.generation]
    .forEach((a, i) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength).set(snap[i]!));
}

/** Packets the native path decides itself when their flow is known (IPv4 options are fine; IPv6 extension headers are not). */
const plain = (op: Op) => op.kind === 'tcp' || op.kind === 'udp' || op.kind === 'echo-request' || op.kind === 'echo-reply' || (op.kind === 'v6-ext' && !op.v6);

test('native flow verdicts agree with the JS packet filter on random traffic, and change the tables the same way', () => {
  let nativePasses = 0;
  let jsFlowHits = 0;
  fc.assert(fc.property(fc.array(opArb, { minLength: 1, maxLength: 120 }), (ops) => {
    // A small table, so collisions and evictions happen too.
    const filter = new PacketFilter(RULES, { capacity: 16 });
    const tables = filter.nativeTables();
    let now = 1_000_000;
    for (const first of ops) {
      for (const op of first.reply ? [first, answer(first)] : [first]) {
        now += op.advanceMs;
        if (op.newRules) filter.setRules(RULES);
        const pkt = build(op);
        const before = snapshot(tables);
        const passed = verdict(tables, pkt, op.inbound, now);
        const afterNative = snapshot(tables);
        restore(tables, before);
        const flowBefore = filter.status(now).accepted.flow;
        let jsResult = true;
        if (op.inbound) jsResult = filter.allowInbound(pkt, 0, pkt.length, now);
        else filter.trackOutbound(pkt, 0, pkt.length, now);
        const jsFlowHit = op.inbound && filter.status(now).accepted.flow > flowBefore;
        const afterJs = snapshot(tables);
        if (passed) {
          nativePasses++;
          assert.ok(plain(op) || (!op.inbound && (op.kind === 'echo-reply' || op.kind === 'icmp-error')), `native passed a ${op.kind} packet`);
          if (op.inbound) assert.ok(jsResult && jsFlowHit, `native passed an inbound ${op.kind} packet JS ${jsResult ? 'admitted by a rule' : 'dropped'}`);
          assert.deepEqual(afterNative, afterJs, 'native refreshed the tables as JS does');
        } else {
          assert.deepEqual(afterNative, before, 'a packet left to JS leaves the tables alone');
          if (op.inbound && plain(op)) assert.ok(!jsFlowHit, `a plain inbound ${op.kind} packet of a known flow was left to JS`);
        }
        if (jsFlowHit) jsFlowHits++;
      }
    }
  }), { numRuns: 300 });
  assert.ok(nativePasses > 100 && jsFlowHits > 50, `the traffic exercised the flows (${nativePasses} native passes, ${jsFlowHits} JS flow hits)`);
});

test('flowVerdicts refuses tables of the wrong shape with one error', () => {
  const t = new PacketFilter([]).nativeTables();
  const out = new Uint8Array(0);
  const call = (keys: Int32Array) => native.flowVerdicts(keys, t.v4.expiry, t.v4.generation, t.v6.keys, t.v6.expiry, t.v6.generation, t.state, t.timeouts,
    new Uint8Array(0), new Uint32Array(0), new Uint32Array(0), true, 0, out);
  assert.throws(() => call(new Int32Array(3)), /power-of-two slot count/);
  call(t.v4.keys);
});
