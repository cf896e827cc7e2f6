// Builds the userspace NAT (agent/nat/userspace-nat.ts) an exit node or subnet router serves
// its routes with; its answers go to `emit` (into the tunnel).
import type { Logger } from 'pino';
import type { NatEngine } from './exit-service.js';

interface NatModule {
  UserspaceNat: new (opts: { emit(packet: Uint8Array): void; log?: { debug(msg: string): void; warn(msg: string): void } }) => NatEngine;
}

const NAT_MODULE = '../nat/userspace-nat.js';
let natModule: NatModule | null = null;

/** Loads the NAT engine once at daemon start. */
export async function loadUserspaceNat(): Promise<void> {
  natModule = (await import(NAT_MODULE)) as NatModule;
}

export function createUserspaceNat(emit: (packet: Uint8Array) => void, log: Logger): NatEngine {
  if (!natModule) throw new Error('the userspace NAT is not loaded');
  return new natModule.UserspaceNat({
    emit,
    log: { debug: (m) => log.debug(`nat: ${m}`), warn: (m) => log.warn(`nat: ${m}`) },
  });
}
