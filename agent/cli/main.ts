// `pinhole ...` for everything that runs on a node: the agent daemon and the commands that talk
// to it. (coordinator and relay are dispatched by bin/pinhole to their own folders.)
import { Command, CommanderError, Option } from 'commander';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import { randomBytes } from 'node:crypto';
import { DEFAULT_SOCKET, localApiCall } from '../localapi/client.js';
import { formatStatus } from './status-format.js';
import { packageVersion } from '../platform-info.js';
import { registerNodeCommands } from './node-commands.js';
import { registerAdminCommand } from './admin-command.js';
import { registerNetcheckCommand } from './netcheck-command.js';
import { registerPingCommand } from './ping-command.js';
import type { AgentStatus } from '../static/status.js';
import type { JoinOnStart } from '../daemon/run-managed.js';
import { DEFAULT_SOCKET_MARK, formatSocketMark, parseSocketMark, SocketMarkError } from '../routing/socket-mark.js';
import { MetricsListenError, parseMetricsListen } from '../../metrics/http-server.js';
import { PORTMAP_PROTOCOLS, type PortmapProtocol } from '../portmap/protocol-names.js';
import type { PortmapSettings } from '../daemon/managed-agent.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function buildProgram(): Command {
  const program = new Command('pinhole')
    .description('peer-to-peer mesh VPN speaking the WireGuard protocol')
    .option('--socket <path>', 'local API socket of the agent', DEFAULT_SOCKET)
    .version(`pinhole ${packageVersion()}`, '-V, --version', 'print the version')
    .showHelpAfterError(false)
    .exitOverride();

  program.command('agent')
    .description('run the agent daemon in the foreground')
    .option('--config <file>', 'static mode: a wg-quick style [Interface]/[Peer] file')
    .option('--tun <name>', 'TUN device name (default: pinhole0, or the config file name, e.g. wg0 for wg0.conf)')
    .option('--state-dir <dir>', 'control-plane mode: where the node key and last netmap live')
    .option('--port <n>', 'UDP port to listen on (overrides ListenPort)')
    .addOption(new Option('--socket-mark <value[/mask]>', 'firewall mark on the agent\'s own sockets, routed around an exit node')
      .default(formatSocketMark(DEFAULT_SOCKET_MARK)).env('PINHOLE_SOCKET_MARK'))
    
    .option('--resolv-conf <path>', 'the resolver file MagicDNS rewrites (with a backup) when systemd-resolved is not running', '/etc/resolv.conf')
    .option('--admin-group <group>', 'members may change state through the local API (up, down, logout, routes, exit node)')
    .option('--operator-group <group>', 'members may read through the local API (status, ip, netcheck, ping); the socket gets this group')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (managed mode; plain HTTP: localhost or a management network)')
    .option('--no-portmap', 'managed mode: do not ask the gateway for a port mapping (UPnP, NAT-PMP, PCP); also PINHOLE_NO_PORTMAP=1')
    .option('--portmap-protocol <name>', 'managed mode: use only this port-mapping protocol: pcp, nat-pmp or upnp (default: whichever the gateway offers, in that order)')
    .option('--portmap-lease <seconds>', 'managed mode: port-mapping lease to ask for (renewed at half of what is granted)', '7200')
    .option('--force-relay', 'managed mode: never go direct, reach every peer through its relay (debugging, benchmarks); also PINHOLE_FORCE_RELAY=1')
    .option('--no-relay-trains', 'managed mode: through a relay, one WireGuard message per packet (no relay trains: docs/relay.md); also PINHOLE_RELAY_TRAINS=0')
    .option('--config-file <file>', 'managed mode: a YAML file with these flags and the preferences of `up` (docs/agent.yaml.example); flags override it')
    .action(async (opts: AgentFlags, cmd: Command) => {
      let socket = (cmd.optsWithGlobals() as { socket: string }).socket;
      let join: JoinOnStart | undefined;
      if (opts.configFile !== undefined) {
        if (opts.config) throw new UsageError('--config FILE.conf is a static wg-quick tunnel, --config-file FILE.yaml a managed agent\'s settings: give one');
        const { loadAgentConfigFile } = await import('./agent-config-load.js');
        const file = await loadAgentConfigFile(opts.configFile);
        // Flags given on the command line win over the file.
        opts.stateDir ??= file.stateDir;
        opts.tun ??= file.tun;
        opts.port ??= file.port === undefined ? undefined : String(file.port);
        opts.adminGroup ??= file.adminGroup;
        opts.operatorGroup ??= file.operatorGroup;
        opts.metricsListen ??= file.metricsListen;
        if (file.portmap === false && cmd.getOptionValueSource('portmap') === 'default') opts.portmap = false;
        opts.portmapProtocol ??= file.portmapProtocol;
        if (file.portmapLease !== undefined && cmd.getOptionValueSource('portmapLease') === 'default') opts.portmapLease = String(file.portmapLease);
        if (file.resolvConf !== undefined && cmd.getOptionValueSource('resolvConf') === 'default') opts.resolvConf = file.resolvConf;
        if (file.socketMark !== undefined && cmd.getOptionValueSource('socketMark') === 'default') opts.socketMark = file.socketMark;
        if (file.socket !== undefined && cmd.parent?.getOptionValueSource('socket') === 'default') socket = file.socket;
        join = file.join;
        if (!opts.stateDir) throw new UsageError(`${opts.configFile}: no state-dir (and no --state-dir)`);
      }
      if (opts.config && opts.stateDir) throw new UsageError('use either --config FILE.conf (static) or --state-dir DIR (managed), not both');
      if (opts.stateDir) {
        const { runManagedAgent } = await import('../daemon/run-managed.js');
        let socketMark;
        try {
          socketMark = parseSocketMark(opts.socketMark);
        } catch (err) {
          if (err instanceof SocketMarkError) throw new UsageError(err.message);
          throw err;
        }
        const metricsListen = metricsAddress(opts.metricsListen);
        const portmap = portmapSettings(opts);
        await runManagedAgent({
          stateDir: opts.stateDir, socketPath: socket, tunName: opts.tun, port: parsePort(opts.port), socketMark, resolvConfPath: opts.resolvConf, portmap,
          forceRelay: opts.forceRelay === true || process.env.PINHOLE_FORCE_RELAY === '1',
          relayTrains: opts.relayTrains !== false && process.env.PINHOLE_RELAY_TRAINS !== '0',
          ...accessGroups(opts), ...(metricsListen ? { metricsListen } : {}), ...(join ? { join } : {}),
        });
        return;
      }
      if (opts.metricsListen !== undefined) throw new UsageError('--metrics-listen works in managed mode (--state-dir) only');
      if (!opts.config) throw new UsageError('pinhole agent needs --state-dir DIR (managed by a coordinator) or --config FILE.conf (static)');
      const { runStaticAgent } = await import('../static/static-agent.js');
      await runStaticAgent({ configPath: opts.config, tunName: opts.tun, socketPath: socket, port: parsePort(opts.port), ...accessGroups(opts) });
    });

  program.command('genkey')
    .description('print a new private key (base64), like wg genkey')
    .action(() => { process.stdout.write(`${encodeKey(generatePrivateKey())}\n`); });

  program.command('pubkey')
    .description('read a private key on stdin, print its public key, like wg pubkey')
    .action(async () => {
      const key = decodeKey((await readStdin()).trim());
      process.stdout.write(`${encodeKey(publicKeyFromPrivate(key))}\n`);
    });

  program.command('genpsk')
    .description('print a new preshared key (base64), like wg genpsk')
    .action(() => { process.stdout.write(`${randomBytes(32).toString('base64')}\n`); });

  program.command('status')
    .description('show the agent, its peers, their paths and counters')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const socket = (cmd.optsWithGlobals() as { socket: string }).socket;
      const st = await localApiCall<AgentStatus>(socket, 'GET', '/v0/status');
      process.stdout.write(opts.json ? `${JSON.stringify(st, null, 2)}\n` : `${formatStatus(st)}\n`);
    });

  registerNodeCommands(program);
  registerNetcheckCommand(program);
  registerPingCommand(program);
  registerAdminCommand(program);
  return program;
}

interface AgentFlags {
  config?: string; configFile?: string; tun?: string; stateDir?: string; port?: string; adminGroup?: string; operatorGroup?: string;
  socketMark: string; resolvConf: string; metricsListen?: string;
  portmap: boolean; portmapProtocol?: string; portmapLease: string; forceRelay?: boolean; relayTrains?: boolean;
}

/** --no-portmap / PINHOLE_NO_PORTMAP=1 (read here, once), --portmap-protocol, --portmap-lease. */
function portmapSettings(o: AgentFlags): PortmapSettings | null {
  if (!o.portmap || process.env.PINHOLE_NO_PORTMAP === '1') return null;
  const lease = Number(o.portmapLease);
  if (!/^\d+$/.test(o.portmapLease) || lease < 2 || lease > 604800) throw new UsageError(`--portmap-lease: ${JSON.stringify(o.portmapLease)} is not a number of seconds from 2 to 604800`);
  if (o.portmapProtocol !== undefined && !(PORTMAP_PROTOCOLS as readonly string[]).includes(o.portmapProtocol)) {
    throw new UsageError(`--portmap-protocol: ${JSON.stringify(o.portmapProtocol)} is not one of ${PORTMAP_PROTOCOLS.join(', ')}`);
  }
  return { leaseSeconds: lease, ...(o.portmapProtocol !== undefined ? { protocols: [o.portmapProtocol as PortmapProtocol] } : {}) };
}

function accessGroups(o: AgentFlags): { adminGroup?: string; operatorGroup?: string } {
  return {
    ...(o.adminGroup !== undefined ? { adminGroup: o.adminGroup } : {}),
    ...(o.operatorGroup !== undefined ? { operatorGroup: o.operatorGroup } : {}),
  };
}

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function metricsAddress(text: string | undefined): { host: string; port: number } | undefined {
  if (text === undefined) return undefined;
  try {
    return parseMetricsListen(text);
  } catch (err) {
    if (err instanceof MetricsListenError) throw new UsageError(err.message);
    throw err;
  }
}

function parsePort(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port: not a port number: ${s}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its one-line message (or the help text).
      process.exitCode = err.exitCode;
      return;
    }
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`pinhole: ${msg.split('\n')[0]}\n`);
    process.exitCode = 1;
  }
}
