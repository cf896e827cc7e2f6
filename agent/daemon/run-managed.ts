// `pinhole agent --state-dir DIR --socket PATH [--tun NAME] [--port N] [--admin-group G] [--operator-group G]`: the managed daemon in
// the foreground. Loads (or creates) its identity, serves the local API, and if it was up
// before, brings the tunnel straight back from the last netmap.
import { createLogger } from '../log.js';
import { prepareLocalApi, refusalLogFields, startLocalApi } from '../localapi/server.js';
import type { AccessGroupOptions } from '../localapi/credentials.js';
import { timersFromEnv } from '../static/timer-overrides.js';
import { defaultHostname } from './hostname.js';
import { OptimizerOnLoad } from './optimizer-on-load.js';
import { collectorForBulkRelay } from './collector-mode.js';
import { managedRoutes } from './local-routes.js';
import { ManagedAgent, type PortmapSettings, type RegisterRequestLocal } from './managed-agent.js';
import type { ClientRoutingFlags } from './routing-prefs.js';
import { StateDir } from './state-dir.js';
import { lockStateDir } from './state-lock.js';
import { TUN_NAME } from './tunnel.js';
import { DEFAULT_SOCKET_MARK, type SocketMark } from '../routing/socket-mark.js';
import type { MetricsListen, MetricsServer } from '../../metrics/http-server.js';
import { sodiumWhenBusy, useAddonSodium } from '../tun/addon-sodium.js';

export const DEFAULT_TUN = 'pinhole0';

export interface ManagedDaemonOptions extends AccessGroupOptions {
  stateDir: string;
  socketPath: string;
  tunName?: string;
  port?: number;
  /** --socket-mark: the mark on the agent's own sockets (default DEFAULT_SOCKET_MARK). */
  socketMark?: SocketMark;
  /** --metrics-listen: serve Prometheus metrics here (plain HTTP, GET /metrics). */
  metricsListen?: MetricsListen;
  /** --resolv-conf: what MagicDNS rewrites when systemd-resolved is not running. */
  resolvConfPath?: string;
  /** From `--config-file`'s `up` section: join on start, as `pinhole up` would. */
  join?: JoinOnStart;
  /** Port mapping (--no-portmap gives null); absent: on, with the defaults. */
  portmap?: PortmapSettings | null;
  /** --force-relay / PINHOLE_FORCE_RELAY=1: never go direct. */
  forceRelay?: boolean;
  /** --no-relay-trains / PINHOLE_RELAY_TRAINS=0 give false: one message per packet through relays. */
  relayTrains?: boolean;
}

export interface JoinOnStart {
  register: RegisterRequestLocal & { coordinatorUrl: string };
  client: ClientRoutingFlags & { acceptDns?: boolean };
}

export async function runManagedAgent(opts: ManagedDaemonOptions): Promise<void> {
  useAddonSodium();
  const log = createLogger('agent');
  const tunName = opts.tunName ?? DEFAULT_TUN;
  if (!TUN_NAME.test(tunName)) throw new Error(`invalid TUN name "${tunName}": use --tun NAME (1-15 letters, digits, _=+.-)`);
  // Before anything else: a second agent on this directory must change nothing, not even the socket.
  const lock = await lockStateDir(opts.stateDir);
  process.once('exit', () => lock.release());
  const policy = await prepareLocalApi(opts.socketPath, opts);
  const state = await StateDir.open(opts.stateDir);
  // Built before the agent so the magic socket reports path events to it; read the agent at scrape time.
  // prom-client is loaded only by an agent that serves metrics (it costs an idle agent ~4 MB).
  const metricsModules = opts.metricsListen
    ? await Promise.all([import('../metrics.js'), import('../../metrics/http-server.js')])
    : null;
  const metrics = metricsModules ? metricsModules[0].createAgentMetrics({ status: () => agent.status(), netcheck: () => agent.netcheckReport }) : null;
  const collector = collectorForBulkRelay(log);
  const optimizer = new OptimizerOnLoad({ log, onBusy: sodiumWhenBusy });
  const agent: ManagedAgent = await ManagedAgent.load({
    state, log, tunName, port: opts.port, timers: timersFromEnv(process.env.PINHOLE_WG_TIMERS), defaultHostname: defaultHostname(),
    socketMark: opts.socketMark ?? DEFAULT_SOCKET_MARK, forceRelay: opts.forceRelay === true, relayTrains: opts.relayTrains !== false,
    ...(opts.portmap !== undefined ? { portmap: opts.portmap } : {}),
    ...(metrics ? { onPathEvent: metrics.onPathEvent } : {}),
    onBulkRelay: () => { collector(); optimizer.noteBulkRelay(); },
    onBatch: optimizer.noteBatch,
    ...(opts.resolvConfPath !== undefined ? { resolvConfPath: opts.resolvConfPath } : {}),
  });
  // The tunnel first: by the time the local API answers, a node that was up is up again.
  await agent.start();
  const api = await startLocalApi(opts.socketPath, managedRoutes(agent), {
    policy, onRefused: (cred, verb, reason) => log.warn(refusalLogFields(cred, verb), reason),
  }).catch(async (err: Error) => {
    await agent.close();
    throw err;
  });
  let metricsServer: MetricsServer | null = null;
  if (metrics && metricsModules && opts.metricsListen) {
    metricsServer = await metricsModules[1].startMetricsServer({ ...opts.metricsListen, registry: metrics.registry, onError: (err) => log.error({ err: err.message }, 'metrics collection failed') })
      .catch(async (err: Error) => {
        await api.close().catch(() => undefined);
        await agent.close();
        throw err;
      });
    log.info(`metrics at ${metricsServer.url}`);
  }
  try {
    log.info(`pinhole agent: node key ${state.keys.nodeKey}, state ${opts.stateDir}, local API ${opts.socketPath}`);
    if (opts.join) await joinOnStart(agent, opts.join, log);
    await new Promise<void>((resolve) => {
      const stop = (sig: string): void => { log.info(`${sig}: shutting down`); resolve(); };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
  } finally {
    await metricsServer?.close().catch(() => undefined);
    await api.close().catch(() => undefined);
    await agent.close().catch(() => undefined);
    lock.release();
  }
}

/**
 * `pinhole up` from the config file. A node already registered with that coordinator comes up
 * on its registration (the auth key may be single-use and spent); a failure is logged and the
 * daemon keeps serving, so `pinhole status` can say what went wrong.
 */
async function joinOnStart(agent: ManagedAgent, join: JoinOnStart, log: ReturnType<typeof createLogger>): Promise<void> {
  const self = agent.status().self;
  const registered = self !== undefined && self.state !== 'logged-out' && self.coordinator === join.register.coordinatorUrl;
  const { authKey: _unused, ...withoutKey } = join.register;
  try {
    const reg = await agent.register(registered ? { ...withoutKey, allowOffline: true } : join.register);
    const up = await agent.up(join.client);
    log.info(`joined from the config file: ${reg.node.name} ${reg.node.ipv4}, ${up.peers} peer(s)${reg.offline ? ' (coordinator unreachable: registration on file)' : ''}`);
  } catch (err) {
    log.error(`joining from the config file failed: ${(err as Error).message}`);
  }
}
