// The stateful packet filter every agent enforces on packets from peers (after decryption and
// the allowed-IPs check): a packet passes if it belongs to a flow this node opened (tracked on
// the way out), to a flow a rule already admitted, or if a rule of the netmap's packetFilter
// admits it now. Rules come from the coordinator's policy; a netmap without one (null) means no
// filter at all, and the device then never calls in here.
//
// Flows are keyed (protocol, local ip, local port, remote ip, remote port): the outbound packet
// a→b and the reply b→a give the same key. ICMP echo uses its identifier as the port; an ICMP
// error passes when the packet it quotes belongs to a known flow; later fragments pass when the
// first fragment of their datagram did. A new rule set invalidates what old rules admitted
// (a generation number), not the flows this node opened.
import type { FilterRule } from '../../proto/control/schemas.js';
import { compileRules, rulesAccept, type CompiledRule } from './filter-rules.js';
import { FlowTable } from './flow-table.js';
import type { NativeFlowTables } from '../tun/native.js';
import { Fragment, IcmpKind, PacketTuple, PROTO_TCP, PROTO_UDP } from './packet-tuple.js';

export interface FlowTimeouts {
  tcpMs: number;
  udpMs: number;
  otherMs: number;
  fragmentMs: number;
}

export const DEFAULT_FLOW_TIMEOUTS: FlowTimeouts = { tcpMs: 5 * 60_000, udpMs: 2 * 60_000, otherMs: 30_000, fragmentMs: 30_000 };

export interface PacketFilterOptions {
  /** Tracked flows per address family (rounded up to a power of two). */
  capacity?: number;
  timeouts?: Partial<FlowTimeouts>;
}

export interface PacketFilterStatus {
  rules: number;
  badRules: number;
  flows: number;
  capacity: number;
  evictions: number;
  /**
   * Packets let in by a rule, by a known flow in JS, and by a known flow on the native data path
   * (the addon's count since the tunnel came up; 0 without it).
   */
  accepted: { rule: number; flow: number; nativeFlow: number };
  /** Packets dropped: no rule and no flow, or malformed for the filter. */
  dropped: { noRule: number; malformed: number; fragment: number };
}

/** Tag word: protocol in the low byte, the kind of entry above it. */
const KIND_FLOW = 0;
const KIND_FRAGMENTS = 1 << 8;

export class PacketFilter {
  private rules: CompiledRule[] = [];
  private badRules = 0;
  /** [0]: bumped by every new rule set: what old rules admitted is no longer valid. Shared with the native path. */
  private readonly state = Uint32Array.of(1);
  private readonly v4: FlowTable;
  private readonly v6: FlowTable;
  private readonly t = new PacketTuple();
  private readonly quoted = new PacketTuple();
  private readonly timeouts: FlowTimeouts;
  private readonly counts = { rule: 0, flow: 0, noRule: 0, malformed: 0, fragment: 0 };

  constructor(rules: readonly FilterRule[], opts: PacketFilterOptions = {}) {
    const capacity = opts.capacity ?? 16_384;
    this.v4 = new FlowTable(capacity, 4);
    this.v6 = new FlowTable(Math.max(1024, capacity >>> 2), 10);
    this.timeouts = { ...DEFAULT_FLOW_TIMEOUTS, ...opts.timeouts };
    this.setRules(rules);
  }

  /** Replaces the rules; flows this node opened stay, flows admitted by the old rules do not. */
  setRules(rules: readonly FilterRule[]): void {
    const c = compileRules(rules);
    this.rules = c.rules;
    this.badRules = c.bad;
    this.state[0] = this.state[0]! + 1;
  }

  private get generation(): number {
    return this.state[0]!;
  }

  /** The flow tables for the native data path (which looks up and refreshes the flows JS admitted). */
  nativeTables(): NativeFlowTables {
    if (this.tables === undefined) {
      const t = this.timeouts;
      this.tables = { v4: this.v4.shared(), v6: this.v6.shared(), state: this.state, timeouts: Float64Array.of(t.tcpMs, t.udpMs, t.otherMs) };
    }
    return this.tables;
  }

  private tables: NativeFlowTables | undefined;

  /** A packet this node sends to a peer (buf[off, off+len), a valid IP packet): its replies will pass. */
  trackOutbound(buf: Uint8Array, off: number, len: number, now: number): void {
    const t = this.t;
    if (!t.parse(buf, off, len) || t.fragment === Fragment.Later) return;
    if (t.icmp === IcmpKind.Error || t.icmp === IcmpKind.EchoReply) return; // answers, not new flows
    const table = this.fill(t, false, KIND_FLOW, t.sport, t.dport);
    table.insert(now, 0, now + this.timeoutOf(t.proto));
  }

  /** True if the inbound packet may pass (the caller drops it and counts drops.filtered otherwise). */
  allowInbound(buf: Uint8Array, off: number, len: number, now: number): boolean {
    const t = this.t;
    if (!t.parse(buf, off, len)) { this.counts.malformed++; return false; }
    const gen = this.generation;
    if (t.fragment === Fragment.Later) {
      const table = this.fill(t, true, KIND_FRAGMENTS, 0, t.fragmentId);
      if (table.lookup(now, gen, now + this.timeouts.fragmentMs)) return true;
      this.counts.fragment++;
      return false;
    }
    const until = now + this.timeoutOf(t.proto);
    const table = this.fill(t, true, KIND_FLOW, t.dport, t.sport);
    if (table.lookup(now, gen, until)) {
      this.counts.flow++;
      return this.admitFragments(t, now, gen);
    }
    if (t.icmp === IcmpKind.Error && this.quotesKnownFlow(buf, now)) {
      this.counts.flow++;
      return true;
    }
    if (t.icmp !== IcmpKind.EchoReply && t.icmp !== IcmpKind.Error) {
      const ports = t.proto === PROTO_TCP || t.proto === PROTO_UDP;
      if (rulesAccept(this.rules, t, ports)) {
        // Remember the admitted flow: its next packets cost one table lookup, not the rules.
        this.fill(t, true, KIND_FLOW, t.dport, t.sport).insert(now, gen, until);
        this.counts.rule++;
        return this.admitFragments(t, now, gen);
      }
    }
    this.counts.noRule++;
    return false;
  }

  status(now: number, nativeFlow = 0): PacketFilterStatus {
    return {
      rules: this.rules.length,
      badRules: this.badRules,
      flows: this.v4.size(now, this.generation) + this.v6.size(now, this.generation),
      capacity: this.v4.capacity + this.v6.capacity,
      evictions: this.v4.counters.evictions + this.v6.counters.evictions,
      accepted: { rule: this.counts.rule, flow: this.counts.flow, nativeFlow },
      dropped: { noRule: this.counts.noRule, malformed: this.counts.malformed, fragment: this.counts.fragment },
    };
  }

  /** The first fragment of an admitted datagram lets the later ones through. */
  private admitFragments(t: PacketTuple, now: number, gen: number): boolean {
    if (t.fragment === Fragment.First) this.fill(t, true, KIND_FRAGMENTS, 0, t.fragmentId).insert(now, gen, now + this.timeouts.fragmentMs);
    return true;
  }

  /** An ICMP error about a packet this node sent: the quoted packet's flow is known. */
  private quotesKnownFlow(buf: Uint8Array, now: number): boolean {
    const t = this.t;
    const q = this.quoted;
    if (t.quotedLen <= 0 || !q.parse(buf, t.quotedOff, t.quotedLen, true) || q.version !== t.version) return false;
    if (q.fragment === Fragment.Later) return false;
    // The quoted packet went out from here: its source is local.
    const table = this.fill(q, false, KIND_FLOW, q.sport, q.dport);
    return table.lookup(now, this.generation, 0);
  }

  /**
   * Fills the table's scratch key from a tuple. `inbound`: the packet came from the peer, so the
   * local side is its destination. Returns the table for the tuple's family.
   */
  private fill(t: PacketTuple, inbound: boolean, kind: number, localPort: number, remotePort: number): FlowTable {
    const tag = kind | t.proto;
    const ports = ((localPort & 0xffff) << 16) | (remotePort & 0xffff);
    if (t.version === 4) {
      const k = this.v4.key;
      k[0] = tag;
      k[1] = inbound ? t.dst4 : t.src4;
      k[2] = inbound ? t.src4 : t.dst4;
      k[3] = kind === KIND_FRAGMENTS ? remotePort : ports;
      return this.v4;
    }
    const k = this.v6.key;
    const local = inbound ? t.dst6 : t.src6;
    const remote = inbound ? t.src6 : t.dst6;
    k[0] = tag;
    for (let i = 0; i < 4; i++) {
      k[1 + i] = local[i]!;
      k[5 + i] = remote[i]!;
    }
    k[9] = kind === KIND_FRAGMENTS ? remotePort : ports;
    return this.v6;
  }

  private timeoutOf(proto: number): number {
    return proto === PROTO_TCP ? this.timeouts.tcpMs : proto === PROTO_UDP ? this.timeouts.udpMs : this.timeouts.otherMs;
  }
}
