// Turning STUN answers into RFC 4787 behaviours. Pure: the tests that produce the inputs live in
// netcheck.ts. The RFC 5780 decisions follow coturn's turnutils_natdiscovery step by step, so
// both tools read the same NAT the same way.
import type { NatBehaviourName } from './report.js';

export interface Endpoint {
  address: string;
  port: number;
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.address === b.address && a.port === b.port;
}

/**
 * RFC 5780 §4.3. I: mapped address seen at the primary address; II: at the other IP, primary
 * port; III: at the other IP and port. II = I: endpoint-independent; else III = II:
 * address-dependent; else address-and-port-dependent. null when a needed answer is missing.
 */
export function mappingFromTests(I: Endpoint, II: Endpoint | null, III: Endpoint | null): NatBehaviourName | null {
  if (!II) return null;
  if (sameEndpoint(I, II)) return 'endpoint-independent';
  if (!III) return null;
  return sameEndpoint(II, III) ? 'address-dependent' : 'address-and-port-dependent';
}

/**
 * RFC 5780 §4.4. II: the answer to CHANGE-REQUEST(ip, port) arrived; III: the answer to
 * CHANGE-REQUEST(port) arrived. null when a test was not run.
 */
export function filteringFromTests(II: boolean | null, III: boolean | null): NatBehaviourName | null {
  if (II === null) return null;
  if (II) return 'endpoint-independent';
  if (III === null) return null;
  return III ? 'address-dependent' : 'address-and-port-dependent';
}

/** One plain Binding answer: where we sent it, and what the server saw as our address. */
export interface MappingObservation {
  server: Endpoint;
  mapped: Endpoint;
}

/**
 * Mapping from answers of several plain (non-RFC 5780) servers of one address family. The same
 * public ip:port towards two different server IPs: endpoint-independent. Different ones: then a
 * pair of servers on one IP with different ports decides between address-dependent (same
 * mapping) and address-and-port-dependent; without such a pair the behaviour stays unknown.
 */
export function mappingFromObservations(obs: readonly MappingObservation[]): { mapping: NatBehaviourName | null; variesByDestIp: boolean | null } {
  const ips = new Set(obs.map((o) => o.server.address));
  let variesByDestIp: boolean | null = null;
  if (ips.size >= 2) {
    variesByDestIp = false;
    for (const a of obs) {
      for (const b of obs) {
        if (a.server.address !== b.server.address && !sameEndpoint(a.mapped, b.mapped)) variesByDestIp = true;
      }
    }
  }
  if (variesByDestIp === false) return { mapping: 'endpoint-independent', variesByDestIp };
  // Only pairs to one IP on different ports can tell port dependence apart.
  let samePortIndependent: boolean | null = null;
  for (const a of obs) {
    for (const b of obs) {
      if (a.server.address !== b.server.address || a.server.port === b.server.port) continue;
      if (!sameEndpoint(a.mapped, b.mapped)) return { mapping: 'address-and-port-dependent', variesByDestIp };
      samePortIndependent = true;
    }
  }
  if (variesByDestIp === true && samePortIndependent) return { mapping: 'address-dependent', variesByDestIp };
  return { mapping: null, variesByDestIp };
}

/** "ip:port", or "[ipv6]:port". */
export function endpointText(e: Endpoint): string {
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}
