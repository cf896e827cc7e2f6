// A netcheck report's NAT behaviour in the classic names (RFC 3489's cone/symmetric table), for
// people and for "why not direct": "port-restricted cone", "symmetric", "no NAT", "UDP blocked".
import type { NatKind } from '../../proto/control/schemas.js';
import type { NetcheckReport } from './report.js';

export type { NatKind };

export interface NatType {
  kind: NatKind;
  /** One line, at most 100 characters (StreamPaths.natType). */
  text: string;
}

/** A NAT kind for people: "port-restricted cone", "no NAT", "UDP blocked", "symmetric". */
export function natKindName(k: NatKind): string {
  if (k === 'none') return 'no NAT';
  if (k === 'udp-blocked') return 'UDP blocked';
  return k.replace(/-/g, ' ').replace('port restricted', 'port-restricted');
}

/** The NAT type a netcheck report shows; null when it could not tell (no mapping result). */
export function natTypeOf(r: Pick<NetcheckReport, 'udp' | 'behindNat' | 'mapping' | 'filtering'>): NatType | null {
  if (!r.udp) return { kind: 'udp-blocked', text: 'UDP blocked' };
  if (r.behindNat === false) return { kind: 'none', text: 'no NAT' };
  if (r.mapping === null) return null;
  if (r.mapping !== 'endpoint-independent') return { kind: 'symmetric', text: `symmetric (${r.mapping} mapping)` };
  switch (r.filtering) {
    case 'endpoint-independent': return { kind: 'full-cone', text: 'full cone' };
    case 'address-dependent': return { kind: 'restricted-cone', text: 'restricted cone' };
    case 'address-and-port-dependent': return { kind: 'port-restricted-cone', text: 'port-restricted cone' };
    default: return { kind: 'cone', text: 'cone (endpoint-independent mapping, filtering unknown)' };
  }
}
