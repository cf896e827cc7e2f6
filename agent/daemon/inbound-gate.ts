// What the device does with a decrypted packet before the TUN (its inboundHook): the packet
// filter first (dropped packets counted as drops.filtered), then, on a subnet router or exit
// node, the NAT for destinations in the routes it serves. The device holds this object only
// while there is a filter or a served route: otherwise its hook is null and costs one branch.
import type { InboundPacketHook, OutboundPacketHook } from '../wireguard/context.js';
import type { DropCounters } from '../wireguard/counters.js';
import type { PacketFilter } from '../filter/packet-filter.js';
import type { ExitService } from './exit-service.js';

export class InboundGate implements InboundPacketHook {
  constructor(
    private readonly drops: DropCounters,
    private readonly filter: PacketFilter | null,
    private readonly exit: ExitService | null,
  ) {}

  intercept(buf: Buffer, off: number, len: number, now: number): boolean {
    const f = this.filter;
    if (f !== null && !f.allowInbound(buf, off, len, now)) {
      this.drops.filtered++;
      return true;
    }
    const e = this.exit;
    return e !== null && e.take(buf, off, len);
  }
}

/** The device's outboundHook while a filter is on: flows this node opens, so their replies pass. */
export class FlowTracker implements OutboundPacketHook {
  constructor(private readonly filter: PacketFilter) {}

  observe(buf: Buffer, off: number, len: number, now: number): void {
    this.filter.trackOutbound(buf, off, len, now);
  }
}
