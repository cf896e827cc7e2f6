// What a node may advertise as a subnet route: a real prefix that is neither the exit route
// (0.0.0.0/0, ::/0: that is --advertise-exit-node) nor overlapping the overlay itself. Shared by
// the CLI (refuses before asking anyone) and the coordinator (refuses what a client still sends).
import { cidrContains, formatCidr, maskCidr, parseCidr, type Cidr } from '../ip/address.js';

export const EXIT_ROUTES = ['0.0.0.0/0', '::/0'] as const;
export const OVERLAY_IPV4_RANGE = '100.64.0.0/10';

export class RouteRefusedError extends Error {
  override readonly name = 'RouteRefusedError';
}

/** True when the two prefixes share at least one address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  if (a.family !== b.family) return false;
  return a.bits <= b.bits ? cidrContains(a, b.bytes) : cidrContains(b, a.bytes);
}

/**
 * A route's prefix with host bits cleared; RouteRefusedError if it is not a CIDR, or (`strict`)
 * has host bits set. The CLI's `up` and the admin API's route approval ask this one question.
 */
export function canonicalRoute(text: string, opts: { strict?: boolean } = {}): Cidr {
  let c: Cidr;
  try {
    c = parseCidr(text);
  } catch {
    throw new RouteRefusedError(`"${text}" is not a CIDR like 198.18.5.0/24`);
  }
  const masked = maskCidr(c);
  if (opts.strict && Buffer.compare(Buffer.from(masked.bytes), Buffer.from(c.bytes)) !== 0) {
    throw new RouteRefusedError(`${text} has host bits set: did you mean ${formatCidr(masked)}?`);
  }
  return masked;
}

/**
 * The canonical text of an advertisable route ("198.18.5.0/24"); RouteRefusedError otherwise.
 * `strict`: host bits set is an error (the CLI); else they are masked off (the coordinator).
 */
export function advertisableRoute(text: string, opts: { strict?: boolean; reserved?: readonly string[] } = {}): string {
  const masked = canonicalRoute(text, opts);
  const canonical = formatCidr(masked);
  if (masked.bits === 0) throw new RouteRefusedError(`${canonical} is the exit route: use --advertise-exit-node`);
  for (const r of [OVERLAY_IPV4_RANGE, ...(opts.reserved ?? [])]) {
    if (cidrsOverlap(masked, maskCidr(parseCidr(r)))) throw new RouteRefusedError(`${canonical} overlaps the overlay network ${r}`);
  }
  return canonical;
}
