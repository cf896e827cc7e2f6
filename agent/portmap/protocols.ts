// The three ways to ask a gateway for a UDP port mapping, each as probe / map / delete. A map call
// both creates and renews (asking again for the same external port). Results carry the gateway's
// epoch where the protocol has one (NAT-PMP, PCP), for restart detection in portmapper.ts.
import { randomBytes, randomInt } from 'node:crypto';
import {
  decodeNatPmpResponse, encodeNatPmpMapRequest, encodeNatPmpPublicAddressRequest, NATPMP_RESULT, NATPMP_VERSION,
} from '../../proto/portmap/natpmp.js';
import { decodePcpResponse, encodePcpAnnounceRequest, encodePcpMapRequest, PCP_NONCE_LEN, PCP_RESULT, PCP_VERSION } from '../../proto/portmap/pcp.js';
import { UPNP_ERROR, type WanService } from '../../proto/portmap/upnp.js';
import type { Gateway } from './gateway.js';
import type { GatewaySocket } from './gateway-socket.js';
import { fetchWanService, searchGateway, soapCall, UpnpFaultError, type UpnpCounters } from './upnp-client.js';

export { PORTMAP_PROTOCOLS, type PortmapProtocol } from './protocol-names.js';

export class PortmapRefusedError extends Error {
  override readonly name = 'PortmapRefusedError';
}

export class PortmapNoAnswerError extends Error {
  override readonly name = 'PortmapNoAnswerError';
}

/** What a map call got. */
export interface Granted {
  externalAddress: string;
  externalPort: number;
  lifetimeSeconds: number;
  /** Seconds since the gateway's start (NAT-PMP, PCP); null for UPnP. */
  epoch: number | null;
}

/** What a mapping needs to be renewed or deleted later. */
export interface MapRequest {
  gateway: Gateway;
  internalPort: number;
  /** The external port we hold (renewal) or would like (the internal one, at first). */
  preferredExternalPort: number;
  preferredExternalAddress: string | null;
  lifetimeSeconds: number;
  /** PCP: the nonce naming this mapping. */
  nonce: Uint8Array;
  /** UPnP: the service found by the probe. */
  upnp: WanService | null;
}

export const newNonce = (): Uint8Array => new Uint8Array(randomBytes(PCP_NONCE_LEN));

const DESCRIPTION = 'pinhole';

// --- probes ------------------------------------------------------------------------------------

/** NAT-PMP: a public address request answered with success. Also gives the epoch. */
export async function probeNatPmp(sock: GatewaySocket, timeoutMs: number): Promise<{ externalAddress: string; epoch: number } | null> {
  return sock.exchange(encodeNatPmpPublicAddressRequest(), (msg) => {
    if (msg[0] !== NATPMP_VERSION) return undefined;
    const r = decodeNatPmpResponse(msg);
    if (r.kind !== 'public-address' && !(r.kind === 'error' && r.opcode === 0)) return undefined;
    return r.kind === 'public-address' && r.result === NATPMP_RESULT.success ? { externalAddress: r.externalAddress, epoch: r.epoch } : null;
  }, timeoutMs);
}

/** PCP: an ANNOUNCE request answered by a version 2 server. */
export async function probePcp(sock: GatewaySocket, localAddress: string, timeoutMs: number): Promise<{ epoch: number } | null> {
  return sock.exchange(encodePcpAnnounceRequest(localAddress), (msg) => {
    // A NAT-PMP-only gateway answers version 0, "unsupported version" (RFC 6887 §9).
    if (msg[0] === NATPMP_VERSION && msg.length >= 2 && msg[1] === 128) return msg.length >= 4 && msg[3] === 1 ? null : undefined;
    if (msg[0] !== PCP_VERSION) return undefined;
    const r = decodePcpResponse(msg);
    if (r.kind !== 'announce') return undefined;
    return r.result === PCP_RESULT.success ? { epoch: r.epoch } : null;
  }, timeoutMs);
}

/** UPnP: the gateway answers SSDP and its description names a WAN connection service. */
export async function probeUpnp(gateway: Gateway, timeoutMs: number, counters: UpnpCounters): Promise<WanService | null> {
  const location = await searchGateway(gateway.address, gateway.localAddress, timeoutMs, counters);
  if (!location) return null;
  try {
    return await fetchWanService(location, gateway.address, timeoutMs * 2);
  } catch {
    counters.malformed++;
    return null;
  }
}

// --- NAT-PMP -----------------------------------------------------------------------------------

export async function mapNatPmp(sock: GatewaySocket, req: MapRequest, timeoutMs: number): Promise<Granted> {
  const pub = await probeNatPmp(sock, timeoutMs);
  if (!pub) throw new PortmapNoAnswerError('NAT-PMP: no public address from the gateway');
  const r = await natPmpMap(sock, req.internalPort, req.preferredExternalPort, req.lifetimeSeconds, timeoutMs);
  return { externalAddress: pub.externalAddress, externalPort: r.externalPort, lifetimeSeconds: r.lifetimeSeconds, epoch: r.epoch };
}

export async function deleteNatPmp(sock: GatewaySocket, req: MapRequest, timeoutMs: number): Promise<void> {
  // RFC 6886 §3.4: lifetime 0 and external port 0 delete the mapping of this internal port.
  await natPmpMap(sock, req.internalPort, 0, 0, timeoutMs);
}

async function natPmpMap(sock: GatewaySocket, internalPort: number, externalPort: number, lifetime: number, timeoutMs: number) {
  const bytes = encodeNatPmpMapRequest({ protocol: 'udp', internalPort, suggestedExternalPort: externalPort, lifetimeSeconds: lifetime });
  const r = await sock.exchange(bytes, (msg) => {
    if (msg[0] !== NATPMP_VERSION) return undefined;
    const d = decodeNatPmpResponse(msg);
    if (d.kind === 'error' && d.opcode === 1) return d;
    if (d.kind !== 'map' || d.protocol !== 'udp' || d.internalPort !== internalPort) return undefined;
    return d;
  }, timeoutMs);
  if (!r) throw new PortmapNoAnswerError('NAT-PMP: no answer to the map request');
  if (r.result !== NATPMP_RESULT.success || r.kind !== 'map') throw new PortmapRefusedError(`NAT-PMP: the gateway refused (result ${r.result})`);
  if (lifetime > 0 && (r.externalPort === 0 || r.lifetimeSeconds === 0)) throw new PortmapRefusedError('NAT-PMP: the gateway granted no port');
  return r;
}

// --- PCP ---------------------------------------------------------------------------------------

export async function mapPcp(sock: GatewaySocket, req: MapRequest, timeoutMs: number): Promise<Granted> {
  const r = await pcpMap(sock, req, req.lifetimeSeconds, timeoutMs);
  return { externalAddress: r.externalAddress, externalPort: r.externalPort, lifetimeSeconds: r.lifetimeSeconds, epoch: r.epoch };
}

export async function deletePcp(sock: GatewaySocket, req: MapRequest, timeoutMs: number): Promise<void> {
  await pcpMap(sock, req, 0, timeoutMs);
}

async function pcpMap(sock: GatewaySocket, req: MapRequest, lifetime: number, timeoutMs: number) {
  const bytes = encodePcpMapRequest({
    clientAddress: req.gateway.localAddress, nonce: req.nonce, protocol: 'udp', internalPort: req.internalPort,
    suggestedExternalPort: lifetime === 0 ? 0 : req.preferredExternalPort,
    ...(req.preferredExternalAddress && lifetime > 0 ? { suggestedExternalAddress: req.preferredExternalAddress } : {}),
    lifetimeSeconds: lifetime,
  });
  const nonce = Buffer.from(req.nonce);
  const r = await sock.exchange(bytes, (msg) => {
    if (msg[0] !== PCP_VERSION) return undefined;
    const d = decodePcpResponse(msg);
    if (d.kind === 'other' && d.opcode === 1) return d; // a failure without the payload
    if (d.kind !== 'map' || !nonce.equals(d.nonce) || d.internalPort !== req.internalPort) return undefined;
    return d;
  }, timeoutMs);
  if (!r) throw new PortmapNoAnswerError('PCP: no answer to MAP');
  if (r.result !== PCP_RESULT.success || r.kind !== 'map') throw new PortmapRefusedError(`PCP: the gateway refused MAP (result ${r.result})`);
  if (lifetime > 0 && (r.externalPort === 0 || r.lifetimeSeconds === 0)) throw new PortmapRefusedError('PCP: the gateway granted no port');
  return r;
}

// --- UPnP --------------------------------------------------------------------------------------

const CONFLICT_RETRIES = 3;

export async function mapUpnp(req: MapRequest, timeoutMs: number): Promise<Granted> {
  const service = req.upnp;
  if (!service) throw new PortmapNoAnswerError('UPnP: no WAN connection service');
  const ip = await soapCall(service, 'GetExternalIPAddress', [], timeoutMs);
  const externalAddress = ip['NewExternalIPAddress'] ?? '';
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(externalAddress) || externalAddress === '0.0.0.0') throw new PortmapRefusedError(`UPnP: the gateway has no external IPv4 address (${JSON.stringify(externalAddress.slice(0, 40))})`);
  let lease = req.lifetimeSeconds;
  const args = (action: 'AddPortMapping' | 'AddAnyPortMapping', port: number) => [
    ['NewRemoteHost', ''], ['NewExternalPort', port], ['NewProtocol', 'UDP'], ['NewInternalPort', req.internalPort],
    ['NewInternalClient', req.gateway.localAddress], ['NewEnabled', 1], ['NewPortMappingDescription', `${DESCRIPTION} ${action === 'AddAnyPortMapping' ? 'any' : 'fixed'}`],
    ['NewLeaseDuration', lease],
  ] as const;
  // IGD v2 picks a free port itself when ours is taken.
  if (service.serviceType.endsWith('WANIPConnection:2')) {
    try {
      const r = await soapCall(service, 'AddAnyPortMapping', args('AddAnyPortMapping', req.preferredExternalPort), timeoutMs);
      const port = Number(r['NewReservedPort']);
      if (Number.isInteger(port) && port > 0 && port < 65536) return { externalAddress, externalPort: port, lifetimeSeconds: lease, epoch: null };
    } catch (err) {
      if (!(err instanceof UpnpFaultError)) throw err;
      // Fall back to v1's AddPortMapping below.
    }
  }
  let port = req.preferredExternalPort;
  for (let attempt = 0; ; attempt++) {
    try {
      await soapCall(service, 'AddPortMapping', args('AddPortMapping', port), timeoutMs);
      return { externalAddress, externalPort: port, lifetimeSeconds: lease === 0 ? req.lifetimeSeconds : lease, epoch: null };
    } catch (err) {
      if (!(err instanceof UpnpFaultError) || attempt >= CONFLICT_RETRIES) throw err;
      if (err.errorCode === UPNP_ERROR.onlyPermanentLeasesSupported && lease !== 0) lease = 0;
      else if (err.errorCode === UPNP_ERROR.conflictInMappingEntry) port = randomInt(1024, 65536);
      else throw err;
    }
  }
}

export async function deleteUpnp(req: MapRequest & { externalPort: number }, timeoutMs: number): Promise<void> {
  if (!req.upnp) return;
  await soapCall(req.upnp, 'DeletePortMapping', [['NewRemoteHost', ''], ['NewExternalPort', req.externalPort], ['NewProtocol', 'UDP']], timeoutMs);
}
