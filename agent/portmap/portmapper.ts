// The agent's port mapping: asks the default gateway, by PCP, NAT-PMP or UPnP IGD (whichever it
// offers, in that order), to forward a public UDP port to the agent's WireGuard port. The mapped
// address is one more endpoint candidate for peers (like the STUN-discovered one), and the one
// that works behind a NAT whose own mapping is symmetric.
//
// Lifecycle, one step at a time (`step` never runs twice at once):
//   probe all three protocols (short timeouts) -> map -> renew at half the granted lifetime
//   -> on a failed renewal retry with backoff until the lease runs out, then probe again;
//   a gateway restart (NAT-PMP/PCP epoch going back, or its announcement on 224.0.0.1:5350)
//   -> map again at once; a new network -> delete the old mapping (best effort) and start over;
//   close() -> delete the mapping and close every socket and timer.
import type { Logger } from 'pino';
import { decodeNatPmpResponse, epochWentBack } from '../../proto/portmap/natpmp.js';
import { decodePcpResponse } from '../../proto/portmap/pcp.js';
import { isDecodeError } from '../../proto/errors.js';
import { findGateway as findDefaultGateway, type Gateway } from './gateway.js';
import { GatewaySocket } from './gateway-socket.js';
import {
  deleteNatPmp, deletePcp, deleteUpnp, mapNatPmp, mapPcp, mapUpnp, newNonce, probeNatPmp, probePcp, probeUpnp,
  PORTMAP_PROTOCOLS, type Granted, type MapRequest, type PortmapProtocol,
} from './protocols.js';
import type { WanService } from '../../proto/portmap/upnp.js';

export { PORTMAP_PROTOCOLS, type PortmapProtocol } from './protocols.js';

/** Lease asked for (tailscale asks 2 h too); the gateway may grant less. */
export const DEFAULT_LEASE_SECONDS = 7200;
/** Per probe (SSDP answer, NAT-PMP/PCP answer with one retransmission). */
const PROBE_TIMEOUT_MS = 700;
/** Per map/renew/delete exchange. */
const REQUEST_TIMEOUT_MS = 2000;
/** close() waits at most this long for the delete. */
const CLOSE_DELETE_MS = 1500;
/** No gateway offers mapping: ask again this much later (or at once on a new network). */
const REPROBE_MS = 5 * 60_000;
/** Renewal failures back off from 2 s up to 60 s, never past the lease's end. */
const RETRY_MIN_MS = 2000;
const RETRY_MAX_MS = 60_000;
/** Announcements trigger at most one step per this long. */
const ANNOUNCE_GAP_MS = 2000;

export interface PortmapProbeJson {
  /** The default gateway asked; null without a default route. */
  gateway: string | null;
  upnp: boolean;
  natPmp: boolean;
  pcp: boolean;
  at: string;
}

export interface PortMappingJson {
  protocol: PortmapProtocol;
  /** The public "ip:port" peers can send to. */
  external: string;
  internalPort: number;
  gateway: string;
  lifetimeSeconds: number;
  /** When the lease ends unless renewed, and when the next renewal is due (ISO 8601). */
  expiresAt: string;
  renewAt: string;
  createdAt: string;
  renewals: number;
  /** UPnP: the gateway's WAN connection service used (e.g. urn:schemas-upnp-org:service:WANIPConnection:2). */
  upnpService?: string;
}

export interface PortmapStatusJson {
  /** Protocols the client may use, in order of preference. */
  protocols: PortmapProtocol[];
  mapping: PortMappingJson | null;
  probe: PortmapProbeJson | null;
  lastError: string | null;
  counters: {
    /** Mappings created (not renewals). */
    mapped: number;
    renewals: number;
    failures: number;
    /** The gateway lost our mapping (restart, epoch going back) and it was made again. */
    gatewayRestarts: number;
    /** Datagrams from the gateway that did not decode or answered nothing asked. */
    malformed: number;
    announcements: number;
  };
}

export interface PortmapperOptions {
  /** The agent's UDP port (the internal port mapped). */
  localPort: () => number;
  log: Logger;
  /** The mapping appeared, moved or went away: endpoints changed. */
  onChange: () => void;
  /** Protocols to try, best first (default pcp, nat-pmp, upnp); one entry forces that protocol. */
  protocols?: readonly PortmapProtocol[];
  leaseSeconds?: number;
  /** Where the gateway is (default: /proc/net/route). */
  findGateway?: () => Promise<Gateway | null>;
  /** The gateway's NAT-PMP/PCP port (default 5351; tests run a scripted gateway elsewhere). */
  gatewayPort?: number;
}

interface Active {
  protocol: PortmapProtocol;
  req: MapRequest;
  granted: Granted;
  createdAt: number;
  renewedAt: number;
  renewals: number;
  /** Epoch and when we received it, for RFC 6886 §3.6. */
  epochAt: number;
}

export class Portmapper {
  private active: Active | null = null;
  private sock: GatewaySocket | null = null;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;
  private again = false;
  private closed = false;
  private failuresInRow = 0;
  private lastProbe: PortmapProbeJson | null = null;
  private upnpService: WanService | null = null;
  private lastError: string | null = null;
  private lastAnnounceStep = 0;
  private readonly protocols: PortmapProtocol[];
  private readonly lease: number;
  private readonly counters: PortmapStatusJson['counters'] = { mapped: 0, renewals: 0, failures: 0, gatewayRestarts: 0, malformed: 0, announcements: 0 };
  private readonly log: Logger;

  constructor(private readonly opts: PortmapperOptions) {
    this.protocols = [...(opts.protocols ?? PORTMAP_PROTOCOLS)];
    this.lease = opts.leaseSeconds ?? DEFAULT_LEASE_SECONDS;
    this.log = opts.log;
  }

  /** The mapped public "ip:port", or null. */
  get external(): string | null {
    const a = this.active;
    return a ? `${a.granted.externalAddress}:${a.granted.externalPort}` : null;
  }

  start(): void {
    this.schedule(0);
  }

  /** A new network: the old gateway and mapping may be gone; start over now. */
  networkChanged(): void {
    if (this.closed) return;
    this.schedule(0);
  }

  /** What the gateway offers now (for `pinhole netcheck`); probes afresh. */
  async probe(): Promise<PortmapProbeJson> {
    const gw = await this.opts.findGateway?.() ?? await findDefaultGateway();
    if (!gw) return { gateway: null, upnp: false, natPmp: false, pcp: false, at: new Date().toISOString() };
    const own = !this.sock || this.sock.gateway !== gw.address;
    const sock = own ? new GatewaySocket(gw.address, this.counters, this.opts.gatewayPort) : this.sock!;
    try {
      const [upnp, natPmp, pcp] = await Promise.all([
        probeUpnp(gw, PROBE_TIMEOUT_MS, this.counters), probeNatPmp(sock, PROBE_TIMEOUT_MS), probePcp(sock, gw.localAddress, PROBE_TIMEOUT_MS),
      ]);
      return { gateway: gw.address, upnp: upnp !== null, natPmp: natPmp !== null, pcp: pcp !== null, at: new Date().toISOString() };
    } finally {
      if (own) sock.close();
    }
  }

  status(): PortmapStatusJson {
    const a = this.active;
    return {
      protocols: [...this.protocols],
      mapping: a ? {
        protocol: a.protocol, external: this.external!, internalPort: a.req.internalPort, gateway: a.req.gateway.address,
        lifetimeSeconds: a.granted.lifetimeSeconds,
        expiresAt: new Date(a.renewedAt + a.granted.lifetimeSeconds * 1000).toISOString(),
        renewAt: new Date(this.renewDue(a)).toISOString(),
        createdAt: new Date(a.createdAt).toISOString(), renewals: a.renewals,
        ...(a.protocol === 'upnp' && a.req.upnp ? { upnpService: a.req.upnp.serviceType } : {}),
      } : null,
      probe: this.lastProbe,
      lastError: this.lastError,
      counters: { ...this.counters },
    };
  }

  /** Deletes the mapping (bounded wait) and closes every socket and timer. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    // A step in flight notices `closed` when it returns (and deletes what it just made).
    if (this.running) await withDeadline(this.running, CLOSE_DELETE_MS).catch(() => undefined);
    const a = this.active;
    this.active = null;
    if (a) {
      await withDeadline(this.deleteMapping(a), CLOSE_DELETE_MS).then(
        () => this.log.info(`port mapping ${a.granted.externalAddress}:${a.granted.externalPort} (${a.protocol}) deleted`),
        (err: Error) => this.log.warn(`deleting the port mapping: ${err.message}`),
      );
    }
    this.sock?.close();
    this.sock = null;
  }

  // --- the state machine ----------------------------------------------------------------------

  private schedule(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.kick(), Math.max(0, ms));
    this.timer.unref();
  }

  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.step()
      .catch((err: Error) => {
        this.lastError = err.message;
        this.log.warn(`port mapping: ${err.message}`);
        this.schedule(REPROBE_MS);
      })
      .finally(() => {
        this.running = null;
        if (this.again && !this.closed) {
          this.again = false;
          this.schedule(0);
        }
      });
  }

  private async step(): Promise<void> {
    const gw = await this.opts.findGateway?.() ?? await findDefaultGateway();
    if (this.closed) return;
    const port = this.opts.localPort();
    // Another gateway, address or port: the old mapping is of no use (and may be unreachable).
    if (this.active && (!gw || gw.address !== this.active.req.gateway.address || gw.localAddress !== this.active.req.gateway.localAddress || port !== this.active.req.internalPort)) {
      const old = this.active;
      this.dropMapping('the network changed');
      await withDeadline(this.deleteMapping(old), REQUEST_TIMEOUT_MS).catch(() => undefined);
    }
    if (!gw) {
      this.lastError = 'no default gateway';
      this.schedule(REPROBE_MS);
      return;
    }
    if (!this.sock || this.sock.gateway !== gw.address) {
      this.sock?.close();
      this.sock = new GatewaySocket(gw.address, this.counters, this.opts.gatewayPort);
      // Best effort: without the group we still notice a restart at the next renewal.
      void this.sock.listenAnnouncements(gw.localAddress, (msg) => this.onAnnouncement(msg));
    }
    if (this.active) return this.renew(this.active);

    const [upnp, natPmp, pcp] = await Promise.all([
      this.protocols.includes('upnp') ? probeUpnp(gw, PROBE_TIMEOUT_MS, this.counters) : Promise.resolve(null),
      this.protocols.includes('nat-pmp') ? probeNatPmp(this.sock, PROBE_TIMEOUT_MS) : Promise.resolve(null),
      this.protocols.includes('pcp') ? probePcp(this.sock, gw.localAddress, PROBE_TIMEOUT_MS) : Promise.resolve(null),
    ]);
    if (this.closed) return;
    this.upnpService = upnp;
    this.lastProbe = { gateway: gw.address, upnp: upnp !== null, natPmp: natPmp !== null, pcp: pcp !== null, at: new Date().toISOString() };
    const offered = this.protocols.filter((p) => (p === 'upnp' ? upnp : p === 'pcp' ? pcp : natPmp) !== null);
    if (offered.length === 0) {
      this.lastError = `the gateway ${gw.address} offers none of ${this.protocols.join(', ')}`;
      this.log.info(`port mapping: ${this.lastError}`);
      this.schedule(REPROBE_MS);
      return;
    }
    const errors: string[] = [];
    for (const protocol of offered) {
      const req: MapRequest = {
        gateway: gw, internalPort: port, preferredExternalPort: port, preferredExternalAddress: null,
        lifetimeSeconds: this.lease, nonce: newNonce(), upnp: this.upnpService,
      };
      try {
        const granted = await this.map(protocol, req);
        if (this.closed) {
          await withDeadline(this.deleteMapping({ protocol, req, granted } as Active), CLOSE_DELETE_MS).catch(() => undefined);
          return;
        }
        const now = Date.now();
        this.active = { protocol, req, granted, createdAt: now, renewedAt: now, renewals: 0, epochAt: now };
        this.counters.mapped++;
        this.failuresInRow = 0;
        this.lastError = null;
        this.log.info(`port mapping: ${granted.externalAddress}:${granted.externalPort} -> :${port} by ${protocol} on ${gw.address}, lease ${granted.lifetimeSeconds} s`);
        this.scheduleRenewal(this.active);
        this.opts.onChange();
        return;
      } catch (err) {
        this.counters.failures++;
        errors.push(`${protocol}: ${(err as Error).message}`);
      }
    }
    this.lastError = errors.join('; ');
    this.log.warn(`port mapping failed: ${this.lastError}`);
    this.schedule(REPROBE_MS);
  }

  private async renew(a: Active): Promise<void> {
    const req: MapRequest = { ...a.req, preferredExternalPort: a.granted.externalPort, preferredExternalAddress: a.granted.externalAddress };
    let granted: Granted;
    try {
      granted = await this.map(a.protocol, req).catch(async (err: unknown) => {
        // A restarted IGD may serve its description and control URL on another HTTP port.
        if (a.protocol !== 'upnp' || this.closed) throw err;
        const service = await probeUpnp(a.req.gateway, PROBE_TIMEOUT_MS, this.counters);
        if (!service) throw err;
        req.upnp = service;
        return this.map(a.protocol, req);
      });
    } catch (err) {
      if (this.closed || this.active !== a) return;
      this.counters.failures++;
      this.failuresInRow++;
      this.lastError = `renewing by ${a.protocol}: ${(err as Error).message}`;
      const left = a.renewedAt + a.granted.lifetimeSeconds * 1000 - Date.now();
      if (left <= 0) {
        this.dropMapping(`the lease ran out (${this.lastError})`);
        this.schedule(0);
        return;
      }
      const wait = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.failuresInRow - 1, 10), left);
      this.log.warn(`port mapping: ${this.lastError}; again in ${Math.round(wait / 1000)} s`);
      this.schedule(wait);
      return;
    }
    if (this.closed || this.active !== a) return;
    const now = Date.now();
    // RFC 6886 §3.6 / RFC 6887 §8.5: an epoch that went back means the gateway lost its state.
    const restarted = a.granted.epoch !== null && granted.epoch !== null && epochWentBack(a.granted.epoch, (now - a.epochAt) / 1000, granted.epoch);
    if (restarted) {
      this.counters.gatewayRestarts++;
      this.log.info(`port mapping: the gateway restarted (epoch ${a.granted.epoch} -> ${granted.epoch}); mapping made again`);
    }
    const moved = granted.externalAddress !== a.granted.externalAddress || granted.externalPort !== a.granted.externalPort;
    a.req = req;
    a.granted = granted;
    a.renewedAt = now;
    a.epochAt = now;
    a.renewals++;
    this.counters.renewals++;
    this.failuresInRow = 0;
    this.lastError = null;
    this.log.debug(`port mapping renewed: ${this.external} lease ${granted.lifetimeSeconds} s`);
    this.scheduleRenewal(a);
    if (moved) {
      this.log.info(`port mapping moved to ${this.external}`);
      this.opts.onChange();
    }
  }

  /** A gateway announcement (NAT-PMP or PCP, on restart or a new address): check the mapping now. */
  private onAnnouncement(msg: Buffer): void {
    if (!isAnnouncement(msg)) {
      this.counters.malformed++;
      return;
    }
    const now = Date.now();
    if (now - this.lastAnnounceStep < ANNOUNCE_GAP_MS) return;
    this.lastAnnounceStep = now;
    // NAT-PMP and PCP see the restart in the epoch of the renewal; UPnP has no epoch to count by.
    if (this.active?.protocol === 'upnp') this.counters.gatewayRestarts++;
    if (this.active) this.log.info('port mapping: the gateway announced a restart or a new address; renewing now');
    this.schedule(0);
  }

  private renewDue(a: Active): number {
    return a.renewedAt + Math.max(1000, (a.granted.lifetimeSeconds * 1000) / 2);
  }

  private scheduleRenewal(a: Active): void {
    this.schedule(this.renewDue(a) - Date.now());
  }

  private dropMapping(why: string): void {
    if (!this.active) return;
    this.log.info(`port mapping ${this.external} dropped: ${why}`);
    this.active = null;
    this.opts.onChange();
  }

  private map(protocol: PortmapProtocol, req: MapRequest): Promise<Granted> {
    if (protocol === 'upnp') return mapUpnp(req, REQUEST_TIMEOUT_MS);
    const sock = this.sock!;
    return protocol === 'pcp' ? mapPcp(sock, req, REQUEST_TIMEOUT_MS) : mapNatPmp(sock, req, REQUEST_TIMEOUT_MS);
  }

  private async deleteMapping(a: Pick<Active, 'protocol' | 'req' | 'granted'>): Promise<void> {
    if (a.protocol === 'upnp') return deleteUpnp({ ...a.req, externalPort: a.granted.externalPort }, REQUEST_TIMEOUT_MS);
    const sock = this.sock && this.sock.gateway === a.req.gateway.address ? this.sock : new GatewaySocket(a.req.gateway.address, this.counters, this.opts.gatewayPort);
    try {
      if (a.protocol === 'pcp') await deletePcp(sock, a.req, REQUEST_TIMEOUT_MS);
      else await deleteNatPmp(sock, a.req, REQUEST_TIMEOUT_MS);
    } finally {
      if (sock !== this.sock) sock.close();
    }
  }
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms); });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

/** A NAT-PMP public-address answer or a PCP ANNOUNCE: what gateways multicast when they restart. */
function isAnnouncement(msg: Buffer): boolean {
  try {
    if (msg[0] === 0) return decodeNatPmpResponse(msg).kind === 'public-address';
    return decodePcpResponse(msg).kind === 'announce';
  } catch (err) {
    if (isDecodeError(err)) return false;
    throw err;
  }
}
