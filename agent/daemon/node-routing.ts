// Subnet routes, exit nodes and the access policy on one managed node, kept in step with its
// routing prefs and its netmap:
//   - serving: the netmap's self record lists the approved routes this node serves; packets for
//     them go to the userspace NAT (exit-service.ts), behind the exit routes to the internet only
//     (not this host's addresses or networks, nor the routes it accepts from peers);
//   - filtering: the netmap's packetFilter becomes the device's stateful packet filter;
//   - using: with --accept-routes, peers' approved subnet routes join their allowed IPs and the
//     kernel's routing; with --exit-node, the default route goes into the TUN and 0.0.0.0/0, ::/0
//     into that peer's allowed IPs, while the agent's own sockets (marked, socket-mark.ts) stay
//     outside the tunnel (route-plan.ts).
// Everything installed goes again when the tunnel goes down, when the daemon exits and when the
// prefs change.
import type { Logger } from 'pino';
import { maskCidr, parseCidr, type Cidr } from '../../proto/ip/address.js';
import type { FilterRule, Peer as NetmapPeer, SelfNode } from '../../proto/control/schemas.js';
import type { Device } from '../wireguard/device.js';
import { PacketFilter, type PacketFilterStatus } from '../filter/packet-filter.js';
import { connectedPrefixes } from '../routing/lan-prefixes.js';
import { strictReversePathInterfaces } from '../routing/rp-filter.js';
import { planRoutes, type KernelRoutePlan } from '../routing/route-plan.js';
import { RouteInstaller, type InstalledRoutes } from '../routing/route-installer.js';
import type { SocketMark } from '../routing/socket-mark.js';
import { ExitService, type ExitServiceStatus, type NatEngine } from './exit-service.js';
import type { DestinationPolicy } from '../nat/destination-policy.js';
import { FlowTracker, InboundGate } from './inbound-gate.js';
import type { NetmapView } from './netmap-view.js';
import {
  exitPeerOf, findPeer, withAdvertised, withClientFlags, type AdvertiseFlags, type ClientRoutingFlags, type RoutingPrefs,
} from './routing-prefs.js';

/** How often the kernel routes are checked again (the LAN prefixes of allow-lan-access; a failed command). */
const KERNEL_REFRESH_MS = 5_000;
const ANY4 = parseCidr('0.0.0.0/0');
const ANY6 = parseCidr('::/0');

export interface NodeRoutingOptions {
  prefs: RoutingPrefs;
  save(prefs: RoutingPrefs): Promise<void>;
  log: Logger;
  /** The mark on the agent's own sockets: one rule sends it to the main table (route-installer.ts). */
  socketMark: SocketMark;
  /** The userspace NAT of an exit node / subnet router; `emit` sends its answers into the tunnel, `policy` refuses destinations. */
  createNat(emit: (packet: Uint8Array) => void, policy: DestinationPolicy): NatEngine;
}

export interface RoutingStatusJson {
  advertisedRoutes: string[];
  advertiseExitNode: boolean;
  /** Approved routes this node serves (its NAT takes traffic for them). */
  servedRoutes: string[];
  acceptRoutes: boolean;
  /** Peers' subnet routes in use. */
  acceptedRoutes: string[];
  /** The chosen exit node, by the node key it had when chosen; `name` is its current name if present. */
  exitNode: { name: string; nodeKey: string | null; state: 'active' | 'unavailable' } | null;
  exitNodeAllowLanAccess: boolean;
  kernel: InstalledRoutes | null;
  filter: PacketFilterStatus | null;
  nat: ExitServiceStatus | null;
}

interface LiveRouting {
  device: Device;
  tunName: string;
  /** Re-applies every netmap peer to the device (their allowed IPs changed). */
  reapplyPeers: () => void;
  installer: RouteInstaller;
  exit: ExitService | null;
  timer: NodeJS.Timeout;
  /** rp_filter was checked once the default routes went in (one warning per tunnel). */
  rpChecked: boolean;
}

export class NodeRouting {
  private prefs: RoutingPrefs;
  private view: NetmapView | null = null;
  private live: LiveRouting | null = null;
  private filter: PacketFilter | null = null;
  private filterSource: FilterRule[] | null = null;
  private exitPeer: NetmapPeer | null = null;
  private allowedKey = '';
  /** Kernel route changes run one at a time; `kernelDirty` asks for one more pass. */
  private kernelRun: Promise<void> = Promise.resolve();
  private kernelBusy = false;
  private kernelDirty = false;

  constructor(private readonly opts: NodeRoutingOptions) {
    this.prefs = opts.prefs;
  }

  get current(): RoutingPrefs {
    return this.prefs;
  }

  /** What goes into the registration request. */
  advertised(): { advertiseRoutes: string[]; advertiseExitNode: boolean } {
    return { advertiseRoutes: this.prefs.advertiseRoutes, advertiseExitNode: this.prefs.advertiseExitNode };
  }

  /** The prefs `up`'s advertise flags would give (throws RoutingPrefsError); not saved yet. */
  previewAdvertised(flags: AdvertiseFlags): RoutingPrefs {
    return withAdvertised(this.prefs, flags);
  }

  /** Saves prefs that the coordinator accepted in a registration. */
  async commitAdvertised(next: RoutingPrefs): Promise<void> {
    await this.setPrefs(next);
  }

  /** `up`'s client flags: checked against the netmap (exit node), saved, applied. */
  async setClientFlags(flags: ClientRoutingFlags, self: SelfNode | null): Promise<RoutingPrefs> {
    const next = withClientFlags(this.prefs, flags, this.view ? this.view.peers.values() : null, self?.name ?? null);
    await this.setPrefs(next);
    return next;
  }

  /** The extra allowed IPs of a peer: its accepted subnet routes, and the default routes of the exit node. */
  allowedIpsFor(p: NetmapPeer): Cidr[] {
    const out: Cidr[] = [];
    if (this.prefs.acceptRoutes) {
      for (const r of p.routes) {
        const c = subnetRoute(r);
        if (c) out.push(c);
      }
    }
    if (this.exitPeer !== null && this.exitPeer.id === p.id && p.exitNode) out.push(ANY4, ANY6);
    return out;
  }

  /** The tunnel is up: serve, filter and route on this device. */
  attach(device: Device, tunName: string, reapplyPeers: () => void, view: NetmapView | null): void {
    this.detach();
    const installer = new RouteInstaller(tunName, this.opts.socketMark, (msg) => this.opts.log.warn(`routing: ${msg}`));
    const timer = setInterval(() => {
      this.live?.exit?.refreshHost();
      if (this.usesKernelRoutes()) this.scheduleKernel();
    }, KERNEL_REFRESH_MS);
    timer.unref();
    this.live = { device, tunName, reapplyPeers, installer, exit: null, timer, rpChecked: false };
    this.allowedKey = '';
    // Whatever a killed daemon left behind goes before anything new goes in.
    this.kernelRun = this.kernelRun.then(() => installer.sweep()).catch((err: Error) => this.opts.log.warn(`routing: sweep: ${err.message}`));
    this.netmapChanged(view);
  }

  /** The tunnel went down: hooks off, NAT closed, kernel routes removed (in the background; close() waits). */
  detach(): void {
    const live = this.live;
    if (!live) return;
    this.live = null;
    clearInterval(live.timer);
    live.device.setPacketHooks(null, null);
    live.exit?.close();
    this.filter = null;
    this.filterSource = null;
    this.kernelRun = this.kernelRun.then(() => live.installer.clear()).catch((err: Error) => this.opts.log.warn(`routing: removing routes: ${err.message}`));
  }

  /** Daemon exit: everything out, and wait for it. */
  async close(): Promise<void> {
    this.detach();
    await this.kernelRun;
  }

  /** The netmap (or the node's own record in it) changed. */
  netmapChanged(view: NetmapView | null): void {
    this.view = view;
    if (this.prefs.exitNode?.nodeKey === null && view) this.pinLegacyExitNode(view);
    const choice = this.prefs.exitNode;
    const found = choice !== null && view ? exitPeerOf(choice, view.peers.values()) : undefined;
    this.exitPeer = found?.exitNode ? found : null;
    const live = this.live;
    if (!live) return;
    this.applyFilter(view?.packetFilter ?? null);
    this.applyServing(live, view?.self ?? null);
    const gateNeeded = this.filter !== null || live.exit !== null;
    live.device.setPacketHooks(
      gateNeeded ? new InboundGate(live.device.drops, this.filter, live.exit) : null,
      this.filter ? new FlowTracker(this.filter) : null,
    );
    const key = this.allowedIpsKey();
    if (key !== this.allowedKey) {
      this.allowedKey = key;
      live.reapplyPeers();
    }
    this.scheduleKernel();
  }

  status(): RoutingStatusJson {
    const choice = this.prefs.exitNode;
    return {
      advertisedRoutes: this.prefs.advertiseRoutes,
      advertiseExitNode: this.prefs.advertiseExitNode,
      servedRoutes: this.view?.self.routes ?? [],
      acceptRoutes: this.prefs.acceptRoutes,
      acceptedRoutes: this.acceptedRoutes(),
      exitNode: choice === null ? null : { name: this.exitPeer?.name ?? choice.name, nodeKey: choice.nodeKey, state: this.exitPeer ? 'active' : 'unavailable' },
      exitNodeAllowLanAccess: this.prefs.exitNodeAllowLanAccess,
      kernel: this.live?.installer.status() ?? null,
      filter: this.filter?.status(performance.timeOrigin + performance.now(), this.live?.device.fastPathCounters()?.flowIn ?? 0) ?? null,
      nat: this.live?.exit?.status() ?? null,
    };
  }

  // --- internals ----------------------------------------------------------------------------

  private async setPrefs(next: RoutingPrefs): Promise<void> {
    await this.opts.save(next);
    this.prefs = next;
    this.netmapChanged(this.view);
  }

  /** A name saved by an older version: pinned to the node key of the approved exit node holding it now. */
  private pinLegacyExitNode(view: NetmapView): void {
    const legacy = this.prefs.exitNode!;
    const peer = findPeer(legacy.name, view.peers.values());
    if (!peer?.exitNode) return;
    this.prefs = { ...this.prefs, exitNode: { nodeKey: peer.nodeKey, name: peer.name } };
    this.opts.log.info(`exit node ${legacy.name}: pinned to node key ${peer.nodeKey}`);
    this.opts.save(this.prefs).catch((err: Error) => this.opts.log.warn(`routing: saving the exit node: ${err.message}`));
  }

  private applyFilter(rules: FilterRule[] | null): void {
    if (rules === this.filterSource) return;
    this.filterSource = rules;
    if (rules === null) this.filter = null;
    else if (this.filter) this.filter.setRules(rules);
    else this.filter = new PacketFilter(rules);
  }

  private applyServing(live: LiveRouting, self: SelfNode | null): void {
    const serves = self !== null && (self.routes?.length ?? 0) > 0;
    if (serves && !live.exit) {
      const device = live.device;
      try {
        live.exit = new ExitService((policy) => this.opts.createNat((packet) => { device.sendFromHost(packet); }, policy));
        this.opts.log.info(`serving ${self.routes!.join(', ')} through the userspace NAT`);
      } catch (err) {
        this.opts.log.error(`cannot serve ${self.routes!.join(', ')}: ${(err as Error).message}`);
        return;
      }
    }
    const peerRoutes = this.acceptedRoutes().map(subnetRoute).filter((c): c is Cidr => c !== null);
    if (live.exit && (!self || !live.exit.update(self, peerRoutes))) {
      live.exit.close();
      live.exit = null;
      this.opts.log.info('no longer serving any route');
    }
  }

  private acceptedRoutes(): string[] {
    if (!this.prefs.acceptRoutes || !this.view) return [];
    const out = new Set<string>();
    for (const p of this.view.peers.values()) for (const r of p.routes) if (subnetRoute(r)) out.add(r);
    return [...out].sort();
  }

  private allowedIpsKey(): string {
    if (!this.view) return '';
    const parts: string[] = [];
    for (const p of this.view.peers.values()) {
      const extra = this.allowedIpsFor(p);
      if (extra.length > 0) parts.push(`${p.nodeKey}=${extra.map((c) => `${Buffer.from(c.bytes).toString('hex')}/${c.bits}`).join(',')}`);
    }
    return parts.sort().join(' ');
  }

  private usesKernelRoutes(): boolean {
    return this.prefs.exitNode !== null || (this.prefs.acceptRoutes && this.acceptedRoutes().length > 0);
  }

  /** Brings the kernel in line with the prefs and the netmap, one pass at a time. */
  private scheduleKernel(): void {
    this.kernelDirty = true;
    const live = this.live;
    if (this.kernelBusy || !live) return;
    this.kernelBusy = true;
    // A pass serves one tunnel: if it goes down (or a new one comes up) meanwhile, detach()'s
    // clean-up and attach()'s sweep are queued behind this pass, and a new pass follows them.
    this.kernelRun = this.kernelRun.then(async () => {
      while (this.kernelDirty && this.live === live) {
        this.kernelDirty = false;
        const plan = await this.kernelPlan(live);
        if (this.live !== live) break;
        await live.installer.apply(plan);
        if (!live.rpChecked && plan.table.some((e) => e.cidr === '0.0.0.0/0')) {
          live.rpChecked = true;
          const strict = await strictReversePathInterfaces(live.tunName);
          if (strict.length > 0) {
            this.opts.log.warn(`rp_filter is strict (1) on ${strict.join(', ')}: replies to the agent's own sockets will be dropped while the exit node is in use; set net.ipv4.conf.all.rp_filter and those interfaces to 2 (loose)`);
          }
        }
      }
    }).catch((err: Error) => this.opts.log.warn(`routing: ${err.message}`)).finally(() => {
      this.kernelBusy = false;
      if (this.kernelDirty && this.live) this.scheduleKernel();
    });
  }

  private async kernelPlan(live: LiveRouting): Promise<KernelRoutePlan> {
    const exitWanted = this.prefs.exitNode !== null;
    const allowLan = exitWanted && this.prefs.exitNodeAllowLanAccess;
    return planRoutes({
      subnetRoutes: this.acceptedRoutes(),
      exitNode: exitWanted,
      allowLanAccess: allowLan,
      lanPrefixes: allowLan ? await connectedPrefixes(live.tunName) : [],
    });
  }
}

/** A peer route usable as a subnet route (not the exit routes), masked; null otherwise. */
function subnetRoute(r: string): Cidr | null {
  try {
    const c = maskCidr(parseCidr(r));
    return c.bits > 0 ? c : null;
  } catch {
    return null;
  }
}
