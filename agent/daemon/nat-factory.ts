// Builds the userspace NAT (agent/nat/userspace-nat.ts) an exit node or subnet router serves
// its routes with; its answers go to `emit` (into the tunnel), at most `mtu` bytes each.
import type { Logger } from 'pino';
import { UserspaceNat } from '../nat/userspace-nat.js';
import type { DestinationPolicy } from '../nat/destination-policy.js';
import type { NatEngine } from './exit-service.js';

export function createUserspaceNat(emit: (packet: Uint8Array) => void, mtu: number, log: Logger, policy: DestinationPolicy): NatEngine {
  return new UserspaceNat({
    emit,
    destinationPolicy: policy,
    limits: { mtu },
    log: { debug: (m) => log.debug(`nat: ${m}`), warn: (m) => log.warn(`nat: ${m}`) },
  });
}
