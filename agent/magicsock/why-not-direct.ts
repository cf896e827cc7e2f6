// "Why not direct": one line per peer saying why its path is the relay (or nothing), computed from
// what actually happened — the candidates the coordinator gave and the filter refused, the disco
// pings sent and answered, when a direct path was lost, the relay's state, this node's NAT type
// from netcheck and the peer's when its pings showed it. Pure (the magic socket gathers the facts).
import { natKindName, type NatKind } from '../netcheck/nat-type.js';
import type { PathKind } from './peer-path.js';

/** A direct path lost less than this long ago is reported as lost (re-probing), not as unanswered pings. */
export const LOST_RECENTLY_MS = 30_000;
/** StreamPaths.whyNotDirect's bound. */
export const MAX_REASON_CHARS = 200;

export interface PathFacts {
  path: PathKind;
  /** --force-relay / PINHOLE_FORCE_RELAY=1. */
  forceRelay: boolean;
  /** No STUN server answers this node over UDP (netcheck, or endpoint discovery got no answer). */
  udpBlocked: boolean;
  /** This node's NAT (netcheck), the peer's (seen from its pings); null: unknown. */
  selfNat: NatKind | null;
  peerNat: NatKind | null;
  /** Direct candidates to probe now. */
  candidates: number;
  /** Why the peer's endpoints from the netmap were refused (candidate-filter.ts), one entry each. */
  refused: string[];
  /** Endpoints the coordinator listed for the peer (before filtering). */
  netmapEndpoints: number;
  /** Disco pings sent to candidates, pongs back from them. */
  pingsSent: number;
  pongsReceived: number;
  /** How long the candidate pings have gone unanswered (null: none unanswered). */
  unansweredMs: number | null;
  /** How long ago the direct path was lost (null: not lost, or direct again since). */
  lostAgoMs: number | null;
  /** The relay the path goes through (or would), and whether it is down. */
  relay: string | null;
  relayDown: boolean;
  /** Traffic or disco within the last ACTIVE_MS (idle peers are not probed). */
  active: boolean;
  /** The coordinator's word: false when the peer has no stream open (offline). */
  peerOnline: boolean;
}

/** The reason, or null when the path is direct. */
export function whyNotDirect(f: PathFacts): string | null {
  if (f.path === 'direct') return null;
  const direct = directReason(f);
  if (f.path === 'relay') return clip(direct);
  const relay = f.relay === null ? 'no relay' : f.relayDown ? `relay ${f.relay} down` : `relay ${f.relay} not in use`;
  return clip(`${relay} and no direct path${direct ? `: ${direct}` : ''}`);
}

function directReason(f: PathFacts): string {
  if (f.forceRelay) return 'forced to relay (--force-relay / PINHOLE_FORCE_RELAY)';
  if (f.udpBlocked) return 'UDP blocked here (netcheck: no STUN server answers over UDP)';
  if (!f.peerOnline && f.pongsReceived === 0) return 'the peer is offline (the coordinator has no stream from it)';
  if (f.candidates === 0) {
    if (f.refused.length > 0) return `the peer's endpoints are all filtered (${[...new Set(f.refused)].join(', ')})`;
    if (f.netmapEndpoints === 0) return 'no candidates from the coordinator yet';
    return 'no usable candidates';
  }
  const n = `${f.candidates} candidate${f.candidates === 1 ? '' : 's'}`;
  if (f.lostAgoMs !== null && f.lostAgoMs < LOST_RECENTLY_MS) return `direct path lost ${seconds(f.lostAgoMs)} ago, re-probing ${n}`;
  if (f.unansweredMs === null) return f.active ? `probing ${n}` : `idle: ${n} probed when traffic flows`;
  return `pings to ${n} unanswered for ${seconds(f.unansweredMs)} (${natHint(f.selfNat, f.peerNat)})`;
}

/** What the NAT types say about unanswered pings. */
function natHint(self: NatKind | null, peer: NatKind | null): string {
  const sym = (k: NatKind | null): boolean => k === 'symmetric';
  if (sym(self) && sym(peer)) return 'both sides behind symmetric NAT';
  // NAT kinds by natKindName, as `pinhole status` and netcheck name them.
  const its = (side: string, k: NatKind): string => (k === 'none' || k === 'udp-blocked' ? `${side} with ${natKindName(k)}` : `${side}'s ${natKindName(k)}`);
  if (sym(self) && peer !== null) return `this side's symmetric NAT vs ${its('the peer', peer)}`;
  if (sym(self)) return 'this side behind symmetric NAT; the peer\'s symmetric or port-restricted?';
  if (sym(peer) && self !== null) return `the peer's symmetric NAT vs ${its('this side', self)}`;
  if (sym(peer)) return 'the peer behind symmetric NAT';
  if (self === 'udp-blocked' || peer === 'udp-blocked') return `UDP blocked on ${self === 'udp-blocked' ? 'this side' : 'the peer\'s side'}`;
  if (self !== null) return `this side ${natKindName(self)}: the peer's NAT symmetric, or UDP filtered there?`;
  return 'both sides behind symmetric NAT, or UDP filtered? pinhole netcheck shows this side';
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

function clip(s: string): string {
  return s.length <= MAX_REASON_CHARS ? s : `${s.slice(0, MAX_REASON_CHARS - 1)}…`;
}
