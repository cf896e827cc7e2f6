// A node managed by a coordinator: registration, the control stream, and the tunnel configured
// from the netmap. The tunnel comes up from the last netmap on disk without waiting for the
// coordinator, and keeps carrying traffic while the coordinator is away.
import type { Logger } from 'pino';
import { Hostname, type Netmap, type NetmapDelta, type SelfNode } from '../../proto/control/schemas.js';
import type { WireGuardTimers } from '../../proto/wireguard/constants.js';
import { Device } from '../wireguard/device.js';
import { UdpBindError, type BatchUdpSocket } from '../tun/udp-socket.js';
import { DEFAULT_TUN_MTU } from '../tun/tun-device.js';
import { LocalApiError } from '../localapi/server.js';
import {
  CoordinatorKeyMismatchError, CoordinatorKeyUnknownError, CoordinatorProtocolError, CoordinatorRefusedError,
  CoordinatorUnreachableError, REGISTRATION_DEADLINE_MS, describeKey, registerNode,
} from '../control/register.js';
import { deregisterNode } from '../control/deregister.js';
import { platformInfo } from '../platform-info.js';
import { CoordinatorUrlError, normalizeCoordinatorUrl } from '../control/coordinator-url.js';
import { ControlStream } from '../control/stream-client.js';
import { LinkMonitor } from '../netmon/link-monitor.js';
import { MagicSocket, type PathEvent, type PingResult } from '../magicsock/magic-socket.js';
import { runNetcheck, type NetcheckReport } from '../netcheck/netcheck.js';
import { relayStunServers } from '../magicsock/endpoint-discovery.js';
import { natKindOf } from '../magicsock/birthday-plan.js';
import { decodeKey } from '../../proto/wireguard/keys.js';
import type { AgentStatus } from '../static/status.js';
import { NetmapApplier } from './netmap-apply.js';
import { NetmapView, type DeltaChanges } from './netmap-view.js';
import { OverlayInterface, overlayAddresses } from './overlay-interface.js';
import { openTunnel, type Tunnel } from './tunnel.js';
import { handshakeOnStart } from './handshake-on-start.js';
import { buildManagedStatus } from './managed-status.js';
import type { Prefs, Registration, StateDir } from './state-dir.js';
import { NodeRouting, type RoutingStatusJson } from './node-routing.js';
import { createUserspaceNat } from './nat-factory.js';
import type { SocketMark } from '../routing/socket-mark.js';
import { MagicDns, DEFAULT_RESOLV_CONF } from '../dns/magic-dns.js';
import type { PortmapperOptions } from '../portmap/portmapper.js';
import { DEFAULT_ROUTING_PREFS, RoutingPrefsError, type AdvertiseFlags, type ClientRoutingFlags } from './routing-prefs.js';
import { acceptsAnythingFrom } from '../filter/filter-rules.js';
import { PathReporter, pathReportOf } from '../control/path-reporter.js';
import { natTypeOf } from '../netcheck/nat-type.js';

/** How long `up` waits for the coordinator's netmap before answering "up, not connected yet". */
export const UP_NETMAP_WAIT_MS = 7_000;
/** Netmap writes are coalesced: a burst of deltas costs one write. */
const NETMAP_SAVE_DELAY_MS = 200;
/** How often the local interface addresses are checked for a change worth reporting. */
const ENDPOINT_CHECK_MS = 20_000;

export interface ManagedAgentOptions {
  state: StateDir;
  log: Logger;
  tunName: string;
  /** --port; otherwise the port used last time, otherwise any. */
  port?: number;
  mtu?: number;
  timers?: Partial<WireGuardTimers>;
  defaultHostname: string;
  /** The mark on the agent's own sockets (UDP, relays, coordinator): kept out of an exit node's route. */
  socketMark: SocketMark;
  /** Each peer's first packet and first direct path (metrics). */
  onPathEvent?: (event: PathEvent) => void;
  /** The magic socket's onBulkRelay: this node carries bulk traffic through a relay (once). */
  onBulkRelay?: () => void;
  /** The device's onBatch: one call per packet batch handed to JavaScript (optimizer-on-load.ts). */
  onBatch?: () => void;
  /** --resolv-conf: the file MagicDNS rewrites when systemd-resolved is not running (default /etc/resolv.conf). */
  resolvConfPath?: string;
  /** Port mapping by the gateway (UPnP, NAT-PMP, PCP); null: off (--no-portmap, PINHOLE_NO_PORTMAP=1). */
  portmap?: PortmapSettings | null;
  /** Never go direct (--force-relay, PINHOLE_FORCE_RELAY=1). */
  forceRelay?: boolean;
  /** Relay trains (agent/wireguard/relay-train.ts) both ways; default on. */
  relayTrains?: boolean;
}

/** What the CLI decides about port mapping: the protocols to try and the lease to ask for. */
export type PortmapSettings = Pick<PortmapperOptions, 'protocols' | 'leaseSeconds'>;

/** `up`'s flags about what this node uses: routes, exit node, and whether MagicDNS may point the OS at itself. */
export type UpFlagsLocal = ClientRoutingFlags & { acceptDns?: boolean };

export interface RegisterRequestLocal extends AdvertiseFlags {
  coordinatorUrl?: string;
  authKey?: string;
  /** A fingerprint or key for the coordinator (when the auth key carries none). */
  coordinatorKey?: string;
  hostname?: string;
  allowOffline?: boolean;
}

export interface RegisterResultLocal {
  node: SelfNode;
  coordinatorUrl: string;
  /** True when the coordinator could not be reached and the registration on file was kept. */
  offline: boolean;
}

export interface UpResult {
  self: SelfNode;
  peers: number;
  connected: boolean;
  tun: string;
  lastError: string | null;
  /** Routes offered and used after this `up`. */
  routing: RoutingStatusJson;
}

export interface LogoutResult {
  wasRegistered: boolean;
  coordinatorNotified: boolean;
  reason: string | null;
}

interface LiveTunnel {
  tunnel: Tunnel;
  magic: MagicSocket;
  applier: NetmapApplier;
  overlay: OverlayInterface;
  stopGreeting: () => void;
  linkMonitor: LinkMonitor;
}

export class ManagedAgent {
  private live: LiveTunnel | null = null;
  private stream: ControlStream | null = null;
  private streamFor = '';
  private view: NetmapView | null = null;
  private lastError: string | null = null;
  /** The last `pinhole netcheck` report (metrics show its NAT behaviour). */
  private lastNetcheck: NetcheckReport | null = null;
  private birthdayNetcheckAt = 0;
  private netmapWaiters: Array<() => void> = [];
  private saveTimer: NodeJS.Timeout | undefined;
  private saveChain: Promise<void> = Promise.resolve();
  private opChain: Promise<unknown> = Promise.resolve();
  private endpointTimer: NodeJS.Timeout | undefined;
  private readonly mtu: number;
  private readonly log: Logger;
  /** Subnet routes, exit nodes and the packet filter (node-routing.ts). */
  private readonly routing: NodeRouting;
  /** Names in DNS on 100.100.100.100 and the OS resolver pointed at it (agent/dns/). */
  private readonly dns: MagicDns;
  /** The path table for the coordinator's live mesh (path-reporter.ts), while the stream takes it. */
  private readonly pathReporter: PathReporter;

  private constructor(
    private readonly opts: ManagedAgentOptions,
    private registration: Registration | null,
    private prefs: Prefs,
    netmap: Netmap | null,
  ) {
    this.mtu = opts.mtu ?? DEFAULT_TUN_MTU;
    this.log = opts.log;
    this.routing = new NodeRouting({
      prefs: prefs.routing ?? DEFAULT_ROUTING_PREFS, log: opts.log,
      save: (routing) => this.savePrefs({ ...this.prefs, routing }),
      socketMark: opts.socketMark,
      createNat: (emit, policy) => createUserspaceNat(emit, this.mtu, opts.log, policy),
    });
    this.dns = new MagicDns({ resolvConfPath: opts.resolvConfPath ?? DEFAULT_RESOLV_CONF, stateDir: opts.state.dir, log: opts.log });
    this.pathReporter = new PathReporter({
      table: () => {
        const magic = this.live?.magic;
        return magic ? { natType: magic.natType, peers: magic.pathTable().map(pathReportOf) } : { natType: null, peers: [] };
      },
      send: (msg) => this.stream?.sendPaths(msg) ?? false,
      quiet: () => this.live?.magic.quiet ?? true,
    });
    if (registration && netmap && netmap.self.id === registration.node.id && netmap.self.nodeKey === opts.state.keys.nodeKey) {
      this.view = new NetmapView(netmap);
    }
  }

  static async load(opts: ManagedAgentOptions): Promise<ManagedAgent> {
    const { state } = opts;
    const registration = await state.loadRegistration();
    const agent = new ManagedAgent(opts, registration?.node.nodeKey === state.keys.nodeKey ? registration : null, await state.loadPrefs(), await state.loadNetmap());
    for (const w of state.warnings) opts.log.warn(`state dir ${state.dir}: ${w}`);
    return agent;
  }

  /** Daemon start: a node that was up comes back up from its last netmap, then reconnects. */
  async start(): Promise<void> {
    await this.dns.recover();
    if (!this.registration || !this.prefs.wantUp) {
      this.log.info(this.registration ? 'node is down (pinhole up brings it up)' : 'not registered yet (pinhole up --coordinator URL --auth-key KEY)');
      return;
    }
    await this.serialize(async () => {
      try {
        await this.bringUp();
        this.log.info(`tunnel ${this.opts.tunName} up from the last netmap (${this.view?.peers.size ?? 0} peers), connecting to ${this.registration!.coordinatorUrl}`);
      } catch (err) {
        this.fail(`could not bring the tunnel up: ${(err as Error).message}`);
      }
      this.connectControl();
    });
  }

  async register(req: RegisterRequestLocal): Promise<RegisterResultLocal> {
    return this.serialize(async () => {
      const url = this.coordinatorUrlFor(req.coordinatorUrl);
      const reg = this.registration;
      const sameCoordinator = reg?.coordinatorUrl === url;
      const hostname = req.hostname ?? (sameCoordinator ? reg!.hostname : undefined) ?? this.opts.defaultHostname;
      const h = Hostname.safeParse(hostname);
      if (!h.success) throw new LocalApiError(400, `--hostname: ${h.error.issues[0]?.message ?? 'invalid'}`);
      const { keys } = this.opts.state;
      let routing;
      try {
        routing = this.routing.previewAdvertised(req);
      } catch (err) {
        throw routingError(err);
      }
      let registered;
      try {
        registered = await registerNode({
          coordinatorUrl: url, nodePrivate: keys.nodePrivate, nodeKey: keys.nodeKey, discoKey: keys.discoKey,
          hostname, ...(req.authKey !== undefined ? { authKey: req.authKey } : {}),
          // The key on file stays pinned for this coordinator; a new one is pinned from the auth key.
          ...(sameCoordinator ? { pinnedKey: reg!.serverKey } : {}),
          ...(req.coordinatorKey !== undefined ? { coordinatorKey: req.coordinatorKey } : {}),
          advertiseRoutes: routing.advertiseRoutes, advertiseExitNode: routing.advertiseExitNode, platform: platformInfo(),
          signal: AbortSignal.timeout(REGISTRATION_DEADLINE_MS), socketMark: this.opts.socketMark.value,
        });
      } catch (err) {
        if (err instanceof CoordinatorUnreachableError && req.allowOffline && sameCoordinator && req.hostname === undefined) {
          this.log.warn(`${err.message}; keeping the registration on file`);
          return { node: this.currentSelf()!, coordinatorUrl: url, offline: true };
        }
        if (err instanceof CoordinatorKeyMismatchError) this.log.error(err.message);
        throw toLocalApiError(err);
      }
      const sameNode = sameCoordinator && reg!.node.id === registered.node.id;
      this.registration = {
        coordinatorUrl: url, serverKey: registered.serverKey, hostname, node: registered.node, registeredAt: new Date().toISOString(),
      };
      await this.opts.state.saveRegistration(this.registration);
      await this.routing.commitAdvertised(routing);
      if (!sameNode) {
        // Another node on the coordinator's books (or another coordinator): the old map is not ours.
        this.view = null;
        this.live?.applier.applyAll([]);
      }
      if (this.live) await this.live.overlay.apply(registered.node);
      this.log.info(`registered with ${url} as ${registered.node.name} (${registered.node.ipv4}, ${registered.node.ipv6})`);
      return { node: registered.node, coordinatorUrl: url, offline: false };
    });
  }

  async up(upFlags: UpFlagsLocal = {}): Promise<UpResult> {
    const { acceptDns, ...flags } = upFlags;
    const waitFrom = await this.serialize(async () => {
      if (!this.registration) throw new LocalApiError(400, 'this node is not registered: pinhole up --coordinator URL --auth-key KEY');
      if (!this.prefs.wantUp) await this.savePrefs({ ...this.prefs, wantUp: true });
      if (acceptDns !== undefined && acceptDns !== this.acceptDns) {
        await this.savePrefs({ ...this.prefs, acceptDns });
        await this.dns.setAcceptDns(acceptDns);
      }
      await this.bringUp();
      const restarted = this.connectControl();
      return restarted || !this.stream?.connected;
    });
    if (waitFrom) await this.waitForNetmap(UP_NETMAP_WAIT_MS);
    if (Object.keys(flags).length > 0) {
      await this.serialize(() => this.routing.setClientFlags(flags, this.currentSelf()).catch((err: unknown) => { throw routingError(err); }));
    }
    const self = this.currentSelf()!;
    return {
      self, peers: this.view?.peers.size ?? 0, connected: this.stream?.connected ?? false,
      tun: this.opts.tunName, lastError: this.stream?.status().lastError ?? this.lastError, routing: this.routing.status(),
    };
  }

  async down(): Promise<{ wasUp: boolean }> {
    return this.serialize(async () => {
      if (!this.registration) throw new LocalApiError(400, 'this node is not registered: pinhole up --coordinator URL --auth-key KEY');
      const wasUp = this.live !== null;
      await this.savePrefs({ ...this.prefs, wantUp: false });
      this.stopControl();
      await this.closeTunnel();
      await this.dns.stop();
      await this.routing.close();
      await this.flushNetmap();
      this.log.info('node down (still registered)');
      return { wasUp };
    });
  }

  async logout(): Promise<LogoutResult> {
    return this.serialize(async () => {
      const reg = this.registration;
      if (!reg) return { wasRegistered: false, coordinatorNotified: false, reason: null };
      const { keys } = this.opts.state;
      let reason: string | null = null;
      try {
        await deregisterNode({
          coordinatorUrl: reg.coordinatorUrl, serverKey: reg.serverKey, nodePrivate: keys.nodePrivate, nodeKey: keys.nodeKey, signal: AbortSignal.timeout(REGISTRATION_DEADLINE_MS),
          socketMark: this.opts.socketMark.value,
        });
      } catch (err) {
        reason = (err as Error).message;
      }
      this.stopControl();
      await this.closeTunnel();
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
      await this.saveChain;
      this.view = null;
      this.routing.netmapChanged(null); // routes accepted from the old netmap are gone with it
      this.registration = null;
      await this.opts.state.forgetNode();
      await this.savePrefs({ ...this.prefs, wantUp: false });
      this.log.info(`logged out${reason ? ` (the coordinator was not told: ${reason})` : ''}; new node key ${this.opts.state.keys.nodeKey}`);
      return { wasRegistered: true, coordinatorNotified: reason === null, reason };
    });
  }

  status(): AgentStatus {
    return {
      ...this.buildStatus(),
      dns: this.dns.status(),
    };
  }

  private buildStatus(): AgentStatus {
    const reg = this.registration;
    const self = this.currentSelf();
    const cs = this.stream?.status();
    const { keys } = this.opts.state;
    return buildManagedStatus({
      self: {
        state: !reg ? 'logged-out' : this.live ? 'up' : 'down',
        id: self?.id ?? null, name: self?.name ?? null, ipv4: self?.ipv4 ?? null, ipv6: self?.ipv6 ?? null,
        nodeKey: keys.nodeKey, discoKey: keys.discoKey, coordinator: reg?.coordinatorUrl ?? null,
        coordinatorKey: reg ? describeKey(reg.serverKey) : null, coordinatorKeyMismatch: cs?.keyMismatch ?? false,
        connected: cs?.connected ?? false, coordinatorConnectedUrl: cs?.url ?? null, keyExpiresAt: self?.keyExpiresAt ?? null,
        netmapSeq: this.view?.seq ?? null, lastError: cs?.lastError ?? this.lastError,
      },
      control: {
        connectedSince: cs?.connectedSince ?? null, attempts: cs?.attempts ?? 0, netmaps: cs?.netmaps ?? 0,
        deltas: cs?.deltas ?? 0, malformed: cs?.malformed ?? 0, endpoints: this.endpoints(),
      },
      tunName: this.opts.tunName,
      mtu: this.mtu,
      tunnel: this.live?.tunnel ?? null,
      addresses: this.live?.overlay.addresses ?? [],
      netmapPeers: this.view?.peers.values() ?? [],
      routing: this.routing.status(),
      ...(this.live ? {
        pathOf: (k: string) => this.live?.magic.peerStatus(k) ?? null,
        relays: this.live.magic.relayStatus(),
        magicsock: { ...this.live.magic.counters },
        portmap: this.live.magic.portmapper?.status() ?? null,
        birthday: { ...this.live.magic.birthday.status() },
      } : {}),
    });
  }

  /** Daemon shutdown: the tunnel goes (TUN removed), the state stays for the next start. */
  async close(): Promise<void> {
    this.stopControl();
    await this.closeTunnel();
    await this.dns.stop();
    await this.routing.close();
    await this.flushNetmap();
  }

  // --- tunnel -------------------------------------------------------------------------------

  private currentSelf(): SelfNode | null {
    return this.view?.self ?? this.registration?.node ?? null;
  }

  private async bringUp(): Promise<void> {
    const self = this.currentSelf();
    if (this.live || !self) return;
    const device = new Device({
      privateKey: this.opts.state.keys.nodePrivate, mtu: this.mtu, timers: this.opts.timers, localAddresses: overlayAddresses(self),
      ...(this.opts.onBatch ? { onBatch: this.opts.onBatch } : {}),
    });
    const onFatal = (err: Error): void => {
      this.fail(`${err.message}; tunnel closed`);
      void this.closeTunnel();
    };
    const { keys } = this.opts.state;
    // The device sends through the magic socket, which owns every peer's path (Peer.takePath).
    const magicOver = (udp: BatchUdpSocket): MagicSocket => new MagicSocket({
      device, udp, tunName: this.opts.tunName, nodePrivate: keys.nodePrivate, nodeKey: decodeKey(keys.nodeKey),
      discoSecret: keys.discoSecret, discoPublic: decodeKey(keys.discoKey), log: this.log,
      onReportChange: () => this.stream?.refreshEndpoints(),
      // The coordinator connection may hang on an address we no longer have: dial again now.
      onNetworkChange: () => this.stream?.reconnectNow(),
      forceRelay: this.opts.forceRelay === true,
      relayTrains: this.opts.relayTrains !== false,
      onPathChange: () => this.pathReporter.poke(),
      portmap: this.opts.portmap === undefined ? {} : this.opts.portmap,
      socketMark: this.opts.socketMark.value,
      natKind: () => natKindOf(this.lastNetcheck?.mapping),
      onNatKindWanted: () => this.netcheckForBirthday(),
      linkWatched: () => this.live?.linkMonitor.running === true,
      ...(this.opts.onPathEvent ? { onPathEvent: this.opts.onPathEvent } : {}),
      ...(this.opts.onBulkRelay ? { onBulkRelay: this.opts.onBulkRelay } : {}),
    });
    const wanted = this.opts.port ?? this.prefs.listenPort ?? 0;
    let tunnel: Tunnel<MagicSocket>;
    try {
      tunnel = await openTunnel({ device, transport: magicOver, tunName: this.opts.tunName, mtu: this.mtu, port: wanted, socketMark: this.opts.socketMark.value, onFatal });
    } catch (err) {
      // The port remembered from last time is taken: any port will do (peers learn it anew).
      if (!(err instanceof UdpBindError) || this.opts.port !== undefined || wanted === 0) throw err;
      this.log.warn(`UDP port ${wanted} is taken, using another one`);
      tunnel = await openTunnel({ device, transport: magicOver, tunName: this.opts.tunName, mtu: this.mtu, port: 0, socketMark: this.opts.socketMark.value, onFatal });
    }
    const overlay = new OverlayInterface(tunnel.tun.name, (addresses) => device.setLocalAddresses(addresses));
    const magic = tunnel.transport;
    try {
      await overlay.apply(self);
    } catch (err) {
      tunnel.close();
      void magic.close().catch(() => { /* never started: nothing of it outlives the tunnel */ });
      throw err;
    }
    const applier = new NetmapApplier(device, (p) => this.routing.allowedIpsFor(p));
    const peers = [...(this.view?.peers.values() ?? [])];
    applier.applyAll(peers);
    magic.setRelays(this.relayEntries());
    magic.syncPeers(peers);
    magic.start();
    const stopGreeting = handshakeOnStart(device, peers.filter((p) => p.online).map((p) => p.nodeKey));
    const linkMonitor = new LinkMonitor({ ignore: [tunnel.tun.name], log: this.log, onChange: (reasons) => void magic.networkChanged(reasons) });
    linkMonitor.start();
    this.live = { tunnel, magic, applier, overlay, stopGreeting, linkMonitor };
    this.routing.attach(device, tunnel.tun.name, () => applier.applyAll(this.view?.peers.values() ?? []), this.view);
    this.lastError = null;
    this.updateDnsNames();
    try {
      await this.dns.start(tunnel.tun.name, this.acceptDns);
    } catch (err) {
      this.fail(`MagicDNS could not start: ${(err as Error).message}`);
    }
    if (this.prefs.listenPort !== tunnel.udp.port) await this.savePrefs({ ...this.prefs, listenPort: tunnel.udp.port });
  }

  /** Closes the tunnel now; the promise ends when the magic socket has let go (the port mapping deleted). */
  private closeTunnel(): Promise<void> {
    if (this.live) void this.dns.stop();
    this.routing.detach();
    this.live?.stopGreeting();
    this.live?.linkMonitor.stop();
    const closing = this.live?.magic.close().catch((err: Error) => this.log.warn(`closing the magic socket: ${err.message}`));
    this.live?.tunnel.close();
    this.live = null;
    return closing ?? Promise.resolve();
  }

  private get acceptDns(): boolean {
    return this.prefs.acceptDns ?? true;
  }

  /** The DNS names follow the netmap (the one on disk too: names resolve while the coordinator is away). */
  private updateDnsNames(): void {
    const self = this.currentSelf();
    if (self) this.dns.setNetmap(this.view?.dns, self, this.view?.peers.values() ?? []);
  }

  private fail(msg: string): void {
    this.lastError = msg;
    this.log.error(msg);
  }

  private endpoints(): string[] {
    return this.live?.magic.endpoints ?? [];
  }

  /** The netmap's relay map, with each relay's STUN servers. */
  private relayEntries(): { name: string; url: string; stun: string[]; key: string; region?: string }[] {
    return (this.view?.relays ?? []).map((r) => ({ name: r.name, url: r.url, stun: relayStunServers(r), key: r.key, ...(r.region ? { region: r.region } : {}) }));
  }

  /** `pinhole ping PEER`: one disco ping over the peer's current path. */
  async ping(peerRef: string, timeoutMs: number): Promise<{ peer: { name: string; ipv4: string; nodeKey: string }; reply: PingResult | null; policyAllowsFromPeer: boolean | null }> {
    const live = this.live;
    if (!live) throw new LocalApiError(409, 'the node is down: pinhole up first');
    const ref = peerRef.trim();
    const peer = [...(this.view?.peers.values() ?? [])].find((p) => p.name === ref || p.ipv4 === ref || p.ipv6 === ref || p.nodeKey === ref || p.name.split('.')[0] === ref);
    if (!peer) throw new LocalApiError(404, `no peer named ${JSON.stringify(ref)} in the netmap (see pinhole status)`);
    const reply = await live.magic.ping(peer.nodeKey, timeoutMs);
    // Disco pings pass whatever the policy says; null: no policy (everything is allowed).
    const rules = this.view?.packetFilter ?? null;
    const policyAllowsFromPeer = rules === null ? null : acceptsAnythingFrom(rules, peer.ipv4);
    return { peer: { name: peer.name, ipv4: peer.ipv4, nodeKey: peer.nodeKey }, reply, policyAllowsFromPeer };
  }

  /** `pinhole netcheck`: NAT behaviour and relay latencies, from the WireGuard socket itself. */
  async netcheck(): Promise<NetcheckReport> {
    const live = this.live;
    if (!live) throw new LocalApiError(409, 'the node is down: pinhole up first');
    const magic = live.magic;
    const [run, portmap] = await Promise.all([
      runNetcheck({
        socket: { stun: magic.stun, hairpin: (a, p, t) => magic.hairpin(a, p, t) },
        relays: this.relayEntries(),
        relayLatency: (r, signal) => magic.relays.latencyTo(r.name, signal),
      }),
      magic.portmapper ? magic.portmapper.probe().catch(() => null) : Promise.resolve(null),
    ]);
    const report: NetcheckReport = { ...run, portmap };
    this.lastNetcheck = report;
    if (this.live === live) live.magic.setNetcheck(natTypeOf(report), report.udp);
    this.stream?.refreshEndpoints(); // the NAT kind goes with the endpoints, changed or not
    return report;
  }

  /** Birthday probing needs our NAT's mapping kind: one background netcheck at a time, at most one a minute. */
  private netcheckForBirthday(): void {
    const now = Date.now();
    if (this.birthdayNetcheckAt !== 0 && now - this.birthdayNetcheckAt < 60_000) return;
    this.birthdayNetcheckAt = now;
    this.netcheck().catch((err: unknown) => this.log.debug(`netcheck for birthday probing: ${(err as Error).message}`));
  }

  /** The last netcheck report, or null if none ran since the daemon started. */
  get netcheckReport(): NetcheckReport | null {
    return this.lastNetcheck;
  }

  // --- control stream -----------------------------------------------------------------------

  /** (Re)starts the stream unless it is connected for this very node; true if it did. */
  private connectControl(): boolean {
    const reg = this.registration;
    if (!reg) return false;
    const key = `${reg.coordinatorUrl} ${reg.node.id}`;
    if (this.stream && this.streamFor === key && this.stream.connected) return false;
    this.stopControl();
    const { keys } = this.opts.state;
    this.stream = new ControlStream({
      coordinatorUrl: reg.coordinatorUrl, nodePrivate: keys.nodePrivate, nodeKey: keys.nodeKey,
      serverKey: () => this.registration?.serverKey ?? reg.serverKey,
      onNextKey: (next) => this.pinNextKey(next),
      endpoints: () => this.endpoints(),
      homeRelay: () => this.live?.magic.homeRelay ?? null,
      natKind: () => (this.lastNetcheck ? natTypeOf(this.lastNetcheck)?.kind ?? null : null),
      onNetmap: (n) => this.onNetmap(n),
      onDelta: (d) => this.onDelta(d),
      onConnectedChange: (c) => {
        if (c && this.stream?.takesPathReports) this.pathReporter.enable();
        if (!c) {
          this.pathReporter.disable();
          this.log.warn('lost the coordinator; tunnels keep running on the last netmap');
        }
      },
      lastSeq: () => this.view?.seq,
      log: this.log,
      socketMark: this.opts.socketMark.value,
    });
    this.streamFor = key;
    this.stream.start();
    this.endpointTimer = setInterval(() => this.stream?.refreshEndpoints(), ENDPOINT_CHECK_MS);
    this.endpointTimer.unref();
    return true;
  }

  /** A key rotation: the next key came inside a channel the pinned key authenticated. */
  private pinNextKey(next: string): void {
    const reg = this.registration;
    if (!reg || reg.serverKey === next) return;
    this.registration = { ...reg, serverKey: next };
    this.opts.state.saveRegistration(this.registration).then(
      () => this.log.info(`coordinator key rotation: now pinning ${describeKey(next)} (was ${describeKey(reg.serverKey)})`),
      (err: Error) => this.log.error(`saving the rotated coordinator key failed: ${err.message}`),
    );
  }

  private stopControl(): void {
    this.pathReporter.disable();
    this.stream?.stop();
    this.stream = null;
    clearInterval(this.endpointTimer);
    this.endpointTimer = undefined;
  }

  private onNetmap(n: Netmap): void {
    const before = this.currentSelf();
    this.view = new NetmapView(n);
    if (this.live) {
      const c = this.live.applier.applyAll(this.view.peers.values());
      this.live.magic.setRelays(this.relayEntries());
      this.live.magic.syncPeers(this.view.peers.values());
      this.log.info(`netmap seq ${n.seq}: ${this.view.peers.size} peers (+${c.added} ~${c.updated} -${c.removed}${c.skipped ? `, ${c.skipped} unusable` : ''})`);
    }
    this.selfChanged(before);
    this.updateDnsNames();
    this.routing.netmapChanged(this.view);
    this.scheduleNetmapSave();
    const waiters = this.netmapWaiters;
    this.netmapWaiters = [];
    for (const w of waiters) w();
  }

  private onDelta(d: NetmapDelta): void {
    const view = this.view;
    if (!view) return;
    const before = this.currentSelf();
    const ch: DeltaChanges = view.applyDelta(d);
    if (this.live) {
      const c = this.live.applier.applyChanges(ch.upserted, ch.removed, ch.previous);
      this.live.magic.setRelays(this.relayEntries());
      this.live.magic.syncPeers(view.peers.values());
      this.log.debug(`delta seq ${d.seq}: +${c.added} ~${c.updated} -${c.removed}`);
    }
    if (ch.selfChanged) this.selfChanged(before);
    if (ch.selfChanged || ch.upserted.length > 0 || ch.removed.length > 0) this.updateDnsNames();
    this.routing.netmapChanged(view);
    this.scheduleNetmapSave();
  }

  /** The coordinator changed this node's record: keep the registration and the TUN in step. */
  private selfChanged(before: SelfNode | null): void {
    const reg = this.registration;
    const now = this.currentSelf();
    if (!reg || !now || JSON.stringify(reg.node) === JSON.stringify(now)) return;
    this.registration = { ...reg, node: now };
    void this.opts.state.saveRegistration(this.registration).catch((err: Error) => this.fail(`saving the registration: ${err.message}`));
    if (this.live && before && (before.ipv4 !== now.ipv4 || before.ipv6 !== now.ipv6)) {
      this.log.info(`overlay address changed to ${now.ipv4}, ${now.ipv6}`);
      void this.live.overlay.apply(now).catch((err: Error) => this.fail(`readdressing ${this.opts.tunName}: ${err.message}`));
    }
  }

  private waitForNetmap(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.netmapWaiters = this.netmapWaiters.filter((w) => w !== done); resolve(false); }, ms);
      const done = (): void => { clearTimeout(timer); resolve(true); };
      this.netmapWaiters.push(done);
    });
  }

  // --- persistence --------------------------------------------------------------------------

  private scheduleNetmapSave(): void {
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.queueNetmapSave();
    }, NETMAP_SAVE_DELAY_MS);
  }

  private queueNetmapSave(): void {
    const netmap = this.view?.toNetmap();
    if (!netmap) return;
    this.saveChain = this.saveChain
      .then(() => this.opts.state.saveNetmap(netmap))
      .catch((err: Error) => this.fail(`saving the netmap: ${err.message}`));
  }

  private async flushNetmap(): Promise<void> {
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveTimer = undefined;
      this.queueNetmapSave();
    }
    await this.saveChain;
  }

  private async savePrefs(p: Prefs): Promise<void> {
    this.prefs = p;
    await this.opts.state.savePrefs(p);
  }

  private coordinatorUrlFor(given: string | undefined): string {
    if (given !== undefined) {
      try {
        return normalizeCoordinatorUrl(given);
      } catch (err) {
        if (err instanceof CoordinatorUrlError) throw new LocalApiError(400, `--coordinator: ${err.message}`);
        throw err;
      }
    }
    if (this.registration) return this.registration.coordinatorUrl;
    throw new LocalApiError(400, 'this node is not registered yet: pinhole up --coordinator URL --auth-key KEY');
  }

  /** One state change at a time: up, down, register and logout never interleave. */
  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.opChain.then(fn, fn);
    this.opChain = run.catch(() => undefined);
    return run;
  }
}

/** Routing prefs errors are the user's (a bad CIDR, an unknown exit node): 400 with the reason. */
function routingError(err: unknown): Error {
  return err instanceof RoutingPrefsError ? new LocalApiError(400, err.message) : (err as Error);
}

function toLocalApiError(err: unknown): Error {
  if (err instanceof CoordinatorRefusedError) {
    const status = err.status >= 400 && err.status < 500 ? err.status : 502;
    return new LocalApiError(status, `the coordinator refused: ${err.reason}`);
  }
  if (err instanceof CoordinatorUnreachableError || err instanceof CoordinatorProtocolError) return new LocalApiError(502, err.message);
  if (err instanceof CoordinatorKeyMismatchError) return new LocalApiError(502, err.message);
  if (err instanceof CoordinatorKeyUnknownError) return new LocalApiError(400, err.message);
  return err as Error;
}
