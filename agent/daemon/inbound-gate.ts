// What the device does with a decrypted packet besides handing it to the TUN (its inboundHook):
// for this node's own address, the packet filter (dropped packets counted as drops.filtered);
// for another destination inside a route this node serves (subnet router, exit node), the filter
// and then the NAT. Any other destination the device drops (drops.notForUs). The device holds
// this object only while there is a filter or a served route: otherwise its hook is null.
// The native data path shares the filter's flow tables (nativeFilter): packets of known flows
// never reach intercept(); new flows and packets for served routes come back to JS.
import type { InboundPacketHook, OutboundPacketHook } from '../wireguard/context.js';
import type { DropCounters } from '../wireguard/counters.js';
import type { PacketFilter } from '../filter/packet-filter.js';
import type { ExitService } from './exit-service.js';
import type { NativeFlowTables } from '../tun/native.js';

export class InboundGate implements InboundPacketHook {
  readonly nativeFilter: NativeFlowTables | null;

  constructor(
    private readonly drops: DropCounters,
    private readonly filter: PacketFilter | null,
    private readonly exit: ExitService | null,
  ) {
    this.nativeFilter = filter?.nativeTables() ?? null;
  }

  intercept(buf: Buffer, off: number, len: number, now: number): boolean {
    const f = this.filter;
    if (f !== null && !f.allowInbound(buf, off, len, now)) {
      this.drops.filtered++;
      return true;
    }
    return false;
  }

  forward(buf: Buffer, off: number, len: number, now: number): boolean {
    const e = this.exit;
    if (e === null || !e.serves(buf, off)) return false;
    if (!this.intercept(buf, off, len, now)) e.take(buf, off, len);
    return true;
  }
}

/** The device's outboundHook while a filter is on: flows this node opens, so their replies pass. */
export class FlowTracker implements OutboundPacketHook {
  readonly nativeFilter: NativeFlowTables;

  constructor(private readonly filter: PacketFilter) {
    this.nativeFilter = filter.nativeTables();
  }

  observe(buf: Buffer, off: number, len: number, now: number): void {
    this.filter.trackOutbound(buf, off, len, now);
  }
}
