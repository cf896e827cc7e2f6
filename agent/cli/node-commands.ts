// The commands that drive a managed node through its agent's local API: up, down, logout, ip.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { localApiCall } from '../localapi/client.js';
import { LOCAL_PATHS, type LocalRegisterBody } from '../daemon/local-routes.js';
import type { LogoutResult, RegisterResultLocal, UpResult } from '../daemon/managed-agent.js';
import type { AgentStatus } from '../static/status.js';
import { Hostname } from '../../proto/control/schemas.js';
import { normalizeCoordinatorUrl } from '../control/coordinator-url.js';
import { parseAdvertisedRoutes, RoutingPrefsError, type AdvertiseFlags, type ClientRoutingFlags } from '../daemon/routing-prefs.js';
import type { RoutingStatusJson } from '../daemon/node-routing.js';

const socketOf = (cmd: Command): string => (cmd.optsWithGlobals() as { socket: string }).socket;
const out = (line: string): void => { process.stdout.write(`${line}\n`); };

export class NotManagedError extends Error {
  override readonly name = 'NotManagedError';
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface UpFlags {
  coordinator?: string;
  authKey?: string;
  authKeyFile?: string;
  coordinatorKey?: string;
  hostname?: string;
  advertiseRoutes?: string;
  advertiseExitNode?: boolean;
  acceptRoutes?: boolean;
  exitNode?: string;
  exitNodeAllowLanAccess?: boolean;
  acceptDns?: boolean;
}

/** `--accept-dns` / `--accept-dns=false` (also true/false, yes/no, 1/0). */
function parseBoolFlag(flag: string): (text: string | undefined) => boolean {
  return (text) => {
    if (text === undefined || /^(true|yes|1)$/i.test(text)) return true;
    if (/^(false|no|0)$/i.test(text)) return false;
    throw new UsageError(`${flag}: expected true or false, got ${JSON.stringify(text)}`);
  };
}

/** The routing flags as the local API takes them; a bad CIDR is refused here, before anything is sent. */
function routingFlags(o: UpFlags): { advertise: AdvertiseFlags; client: ClientRoutingFlags } {
  const advertise: AdvertiseFlags = {};
  if (o.advertiseRoutes !== undefined) {
    try {
      advertise.advertiseRoutes = parseAdvertisedRoutes(o.advertiseRoutes.split(','));
    } catch (err) {
      if (err instanceof RoutingPrefsError) throw new UsageError(err.message);
      throw err;
    }
  }
  if (o.advertiseExitNode !== undefined) advertise.advertiseExitNode = o.advertiseExitNode;
  const client: ClientRoutingFlags = {};
  if (o.acceptRoutes !== undefined) client.acceptRoutes = o.acceptRoutes;
  if (o.exitNode !== undefined) client.exitNode = o.exitNode;
  if (o.exitNodeAllowLanAccess !== undefined) client.exitNodeAllowLanAccess = o.exitNodeAllowLanAccess;
  return { advertise, client };
}

/** What `up` says about routes offered and used. */
function routingSummary(self: { name: string; routes?: string[] }, r: RoutingStatusJson | undefined): string[] {
  if (!r) return [];
  const lines: string[] = [];
  const served = new Set(self.routes ?? []);
  const offered = [...r.advertisedRoutes, ...(r.advertiseExitNode ? ['0.0.0.0/0', '::/0'] : [])];
  const pending = offered.filter((x) => !served.has(x));
  if (offered.length > 0) lines.push(`advertising ${offered.join(', ')}${r.advertiseExitNode ? ' (exit node)' : ''}`);
  if (pending.length > 0) lines.push(`pending approval: ${pending.join(', ')} (pinhole admin routes approve ${self.name} ${pending.join(' ')})`);
  if (r.acceptRoutes) lines.push(`accepting subnet routes${r.acceptedRoutes.length > 0 ? `: ${r.acceptedRoutes.join(', ')}` : ' (none offered yet)'}`);
  if (r.exitNode) lines.push(`exit node: ${r.exitNode.name} (${r.exitNode.state})${r.exitNodeAllowLanAccess ? ', LAN stays direct' : ''}`);
  return lines;
}

async function managedStatus(socket: string): Promise<AgentStatus & { self: NonNullable<AgentStatus['self']> }> {
  const st = await localApiCall<AgentStatus>(socket, 'GET', LOCAL_PATHS.status);
  if (st.mode !== 'managed' || !st.self) throw new NotManagedError('this agent runs a static tunnel (--config), not a coordinator-managed node');
  return st as AgentStatus & { self: NonNullable<AgentStatus['self']> };
}

function coordinatorFlag(text: string): string {
  try {
    return normalizeCoordinatorUrl(text);
  } catch (err) {
    throw new UsageError(`--coordinator: ${(err as Error).message}`);
  }
}

export function registerNodeCommands(program: Command): void {
  program.command('up')
    .description('register this node with a coordinator (once) and bring its tunnel up')
    .option('--coordinator <url>', 'coordinator URL, e.g. http://203.0.113.10:8080, or replicas URL1,URL2,... (default: the one registered with)')
    .option('--auth-key <key>', 'auth key from `pinhole admin authkey create` (not needed once registered; prefer --auth-key-file)')
    .option('--auth-key-file <file>', 'file holding the auth key (keeps it off the command line)')
    .option('--coordinator-key <fingerprint>', 'the coordinator key to pin, when the auth key does not name it')
    .option('--hostname <name>', "name to register under (default: this machine's hostname)")
    .option('--advertise-routes <cidrs>', 'offer these subnets to peers, e.g. 198.18.5.0/24,198.18.6.0/24 ("" stops); pending until approved')
    .option('--advertise-exit-node', "offer this node as an exit node (peers' default route); pending until approved")
    .option('--no-advertise-exit-node', 'stop offering this node as an exit node')
    .option('--accept-routes', "use the subnet routes peers advertise (and an admin approved)")
    .option('--no-accept-routes', "stop using peers' subnet routes")
    .option('--accept-dns [bool]', 'point this host\'s resolver at MagicDNS (100.100.100.100); --accept-dns=false leaves the OS alone', parseBoolFlag('--accept-dns'))
    .option('--exit-node <peer>', 'send all traffic through this peer (name or overlay IP; "" stops)')
    .option('--exit-node-allow-lan-access', 'with --exit-node, keep the local LAN reachable directly')
    .option('--no-exit-node-allow-lan-access', 'with --exit-node, send LAN traffic through the exit node too')
    .action(async (opts: UpFlags, cmd: Command) => {
      const socket = socketOf(cmd);
      if (opts.authKeyFile !== undefined) {
        if (opts.authKey !== undefined) throw new UsageError('--auth-key and --auth-key-file: give one');
        try {
          opts.authKey = readFileSync(opts.authKeyFile, 'utf8').trim();
        } catch (err) {
          throw new UsageError(`--auth-key-file: cannot read ${opts.authKeyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      const before = await managedStatus(socket);
      const url = opts.coordinator !== undefined ? coordinatorFlag(opts.coordinator) : before.self.coordinator;
      if (!url) throw new NotManagedError('this node is not registered yet: pinhole up --coordinator URL --auth-key KEY');
      if (opts.hostname !== undefined) {
        const h = Hostname.safeParse(opts.hostname);
        if (!h.success) throw new UsageError(`--hostname: ${h.error.issues[0]?.message ?? 'invalid'}`);
      }
      const routing = routingFlags(opts);
      const registeredHere = before.self.state !== 'logged-out' && before.self.coordinator === url;
      out(registeredHere ? `registered as ${before.self.name ?? '?'} with ${url}: connecting…` : `registering with ${url}…`);
      const body: LocalRegisterBody = {
        ...(opts.coordinator !== undefined ? { coordinatorUrl: opts.coordinator } : {}),
        ...(opts.authKey !== undefined ? { authKey: opts.authKey } : {}),
        ...(opts.coordinatorKey !== undefined ? { coordinatorKey: opts.coordinatorKey } : {}),
        ...(opts.hostname !== undefined ? { hostname: opts.hostname } : {}),
        ...(opts.authKey === undefined && opts.coordinator === undefined && before.self.state !== 'logged-out' ? { allowOffline: true } : {}),
        ...routing.advertise,
      };
      const reg = await localApiCall<RegisterResultLocal>(socket, 'POST', LOCAL_PATHS.register, body);
      if (reg.offline) out('the coordinator is unreachable: using the registration on file');
      out(`address assigned ${reg.node.ipv4} (${reg.node.ipv6}), name ${reg.node.name}`);
      const up = await localApiCall<UpResult>(socket, 'POST', LOCAL_PATHS.up, {
        ...routing.client, ...(opts.acceptDns !== undefined ? { acceptDns: opts.acceptDns } : {}),
      });
      out(`${up.peers} peer${up.peers === 1 ? '' : 's'}`);
      if (up.connected) {
        out(`up: ${up.tun} is ${up.self.ipv4}`);
      } else {
        out(`up: ${up.tun} is ${up.self.ipv4}, from the last netmap; the coordinator has not answered yet${up.lastError ? ` (${up.lastError})` : ''}, retrying in the background`);
      }
      for (const line of routingSummary(up.self, up.routing)) out(line);
    });

  program.command('down')
    .description('take the tunnel down; the node stays registered (pinhole up brings it back)')
    .action(async (_opts: unknown, cmd: Command) => {
      const socket = socketOf(cmd);
      await managedStatus(socket);
      const r = await localApiCall<{ wasUp: boolean }>(socket, 'POST', LOCAL_PATHS.down, {});
      out(r.wasUp ? 'down: tunnel removed, still registered' : 'down: the tunnel was not up; still registered');
    });

  program.command('logout')
    .description('deregister this node from its coordinator and forget its keys and netmap')
    .action(async (_opts: unknown, cmd: Command) => {
      const socket = socketOf(cmd);
      await managedStatus(socket);
      const r = await localApiCall<LogoutResult>(socket, 'POST', LOCAL_PATHS.logout, {});
      if (!r.wasRegistered) out('not registered; nothing to do');
      else if (r.coordinatorNotified) out('logged out: the coordinator deleted this node; local state forgotten');
      else {
        out('logged out locally: local state forgotten');
        process.stderr.write(`pinhole: warning: the coordinator was not told (${r.reason}); an admin can remove the node with pinhole admin nodes delete\n`);
      }
    });

  program.command('ip')
    .description("print this node's overlay addresses")
    .option('-4', 'IPv4 only')
    .option('-6', 'IPv6 only')
    .action(async (opts: { 4?: boolean; 6?: boolean }, cmd: Command) => {
      const st = await managedStatus(socketOf(cmd));
      if (!st.self.ipv4 || !st.self.ipv6) throw new NotManagedError('this node is not registered: pinhole up --coordinator URL --auth-key KEY');
      const both = !opts[4] && !opts[6];
      if (both || opts[4]) out(st.self.ipv4);
      if (both || opts[6]) out(st.self.ipv6);
    });
}
