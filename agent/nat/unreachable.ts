// Host socket errors that mean "there is no way there", turned into the ICMP destination-
// unreachable message the client's stack understands (it quotes the client's own packet, rebuilt
// from the flow's tuple, so the client can match it to its socket).
import { UnreachableCode } from '../../proto/ip/icmp.js';
import type { OverlayWriter } from './overlay-writer.js';

export type UnreachableKind = 'network' | 'host' | 'adminProhibited';

/** errno names of connect()/send() failures answered with ICMP rather than RST or silence. */
const BY_ERRNO: Readonly<Record<string, UnreachableKind>> = {
  ENETUNREACH: 'network',
  EHOSTUNREACH: 'host',
  EHOSTDOWN: 'host',
  ETIMEDOUT: 'host',
  EACCES: 'adminProhibited',
  EPERM: 'adminProhibited',
};

export function unreachableKindOf(errnoName: string | undefined): UnreachableKind | undefined {
  return errnoName ? BY_ERRNO[errnoName] : undefined;
}

export function unreachableCode(version: 4 | 6, kind: UnreachableKind): number {
  if (version === 4) return UnreachableCode.v4[kind];
  return kind === 'network' ? UnreachableCode.v6.network : kind === 'host' ? UnreachableCode.v6.host : UnreachableCode.v6.adminProhibited;
}

/** The flow a failed packet belonged to: client → remote, with the client's sequence for TCP. */
export interface FailedFlow {
  version: 4 | 6;
  protocol: number;
  client: Uint8Array;
  clientPort: number;
  remote: Uint8Array;
  remotePort: number;
  /** TCP: the sequence number of the quoted segment (Linux checks it); 0 otherwise. */
  seq: number;
}

/** Sends the client an ICMP unreachable "from" the remote address, quoting the flow's packet. */
export function sendUnreachable(writer: OverlayWriter, flow: FailedFlow, kind: UnreachableKind): void {
  const qLen = writer.quoteOf(flow.version, flow.protocol, flow.client, flow.clientPort, flow.remote, flow.remotePort, flow.seq);
  writer.unreachable(flow.version, unreachableCode(flow.version, kind), flow.remote, flow.client, writer.quoteBuffer, 0, qLen);
}
