// `pinhole agent --config-file /etc/pinhole/agent.yaml`: the flags of `agent` and the preferences
// of `up` in one YAML file, for a service. (Not `--config FILE.conf`: that is static mode's
// wg-quick file.) Keys are the flags' names; every error is one line, "FILE:LINE: reason".
//
//   state-dir: /var/lib/pinhole        socket, tun, port, socket-mark, admin-group, operator-group,
//                                      resolv-conf, metrics-listen, portmap (false: off),
//                                      portmap-protocol, portmap-lease
//   up:                                present: the agent joins on start, as `pinhole up` would
//     coordinator: https://coord.example.net#FINGERPRINT
//     auth-key-file: /etc/pinhole/auth.key     never the key itself; the file must be 0600
//     hostname, advertise-routes: [CIDR, ...], advertise-exit-node, accept-routes, exit-node,
//     exit-node-allow-lan-access, accept-dns, coordinator-key
//
// Pure: the caller reads the file; checking the auth key file's mode is the caller's (I/O).
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import * as z from 'zod/mini';
import { Hostname } from '../../proto/control/schemas.js';
import { advertisableRoute, RouteRefusedError } from '../../proto/control/routes.js';

export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
}

const MAX_CONFIG_BYTES = 64 * 1024;
const Port = z.number().check(z.int(), z.gte(0, 'port out of range (0-65535)'), z.lte(65535, 'port out of range (0-65535)'));
const Group = z.string().check(z.minLength(1), z.maxLength(64), z.regex(/^[a-z_][a-z0-9_-]*\$?$/i, 'a group name like pinhole-admins'));
const Path = z.string().check(z.minLength(1, 'an empty path'), z.maxLength(4096), z.refine((p) => !p.includes('\0'), 'a path cannot hold NUL'));

const CoordinatorUrl = z.string().check(z.minLength(1), z.maxLength(2000), z.refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'a coordinator URL like https://coord.example.net:8080'));

const UpSection = z.strictObject({
  /** One coordinator, or the replicas of one (the same key, one database): tried in turn. */
  coordinator: z.union([CoordinatorUrl, z.array(CoordinatorUrl).check(z.minLength(1, 'at least one coordinator URL'), z.maxLength(8, 'at most 8 coordinator URLs'))], {
    error: (iss) => (Array.isArray(iss.input) || typeof iss.input === 'string' ? undefined : 'a coordinator URL, or a list of them (replicas)'),
  }),
  'auth-key-file': z.optional(Path),
  'coordinator-key': z.optional(z.string().check(z.minLength(1), z.maxLength(100))),
  hostname: z.optional(Hostname),
  'advertise-routes': z.optional(z.array(z.string().check(z.maxLength(64))).check(z.maxLength(64))),
  'advertise-exit-node': z.optional(z.boolean()),
  'accept-routes': z.optional(z.boolean()),
  'exit-node': z.optional(z.string().check(z.maxLength(200))),
  'exit-node-allow-lan-access': z.optional(z.boolean()),
  'accept-dns': z.optional(z.boolean()),
});

const AgentConfigShape = z.strictObject({
  'state-dir': z.optional(Path),
  socket: z.optional(Path),
  tun: z.optional(z.string().check(z.regex(/^[a-zA-Z0-9_=+.-]{1,15}$/, 'a TUN name: 1-15 letters, digits, _=+.-'))),
  port: z.optional(Port),
  'socket-mark': z.optional(z.string().check(z.maxLength(40))),
  'admin-group': z.optional(Group),
  'operator-group': z.optional(Group),
  'resolv-conf': z.optional(Path),
  'metrics-listen': z.optional(z.string().check(z.minLength(1), z.maxLength(300))),
  portmap: z.optional(z.boolean()),
  'portmap-protocol': z.optional(z.enum(['pcp', 'nat-pmp', 'upnp'])),
  'portmap-lease': z.optional(z.number().check(z.int(), z.gte(2, 'a lease from 2 to 604800 seconds'), z.lte(604800, 'a lease from 2 to 604800 seconds'))),
  up: z.optional(UpSection),
});

export interface AgentConfigUp {
  /** One URL, or several separated by commas (replicas). */
  coordinator: string;
  authKeyFile?: string;
  coordinatorKey?: string;
  hostname?: string;
  advertiseRoutes?: string[];
  advertiseExitNode?: boolean;
  acceptRoutes?: boolean;
  exitNode?: string;
  exitNodeAllowLanAccess?: boolean;
  acceptDns?: boolean;
}

export interface AgentConfig {
  stateDir?: string;
  socket?: string;
  tun?: string;
  port?: number;
  socketMark?: string;
  adminGroup?: string;
  operatorGroup?: string;
  resolvConf?: string;
  metricsListen?: string;
  /** false: no port mapping (--no-portmap). */
  portmap?: boolean;
  portmapProtocol?: 'pcp' | 'nat-pmp' | 'upnp';
  portmapLease?: number;
  up?: AgentConfigUp;
}

/** The 1-based line of the key (or list item) at `path`, else of its nearest existing parent. */
function lineOf(doc: Document, lines: LineCounter, path: (string | number)[], key?: string): number {
  const full = key !== undefined ? [...path, key] : path;
  for (let n = full.length; n > 0; n--) {
    const parent = doc.getIn(full.slice(0, n - 1), true);
    let node: unknown;
    if (isMap(parent)) node = parent.items.find((p) => isScalar(p.key) && p.key.value === full[n - 1])?.key;
    else if (isSeq(parent) && typeof full[n - 1] === 'number') node = parent.items[full[n - 1] as number];
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    if (range) return lines.linePos(range[0]).line;
  }
  return 1;
}

/** Parses and validates config text; throws ConfigFileError "FILE:LINE: reason" (one line). */
export function parseAgentConfig(file: string, text: string): AgentConfig {
  if (text.length > MAX_CONFIG_BYTES) throw new ConfigFileError(`${file}:1: larger than ${MAX_CONFIG_BYTES} bytes`);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const bad = doc.errors[0];
  if (bad) {
    const line = bad.linePos?.[0]?.line ?? lines.linePos(bad.pos[0]).line;
    throw new ConfigFileError(`${file}:${line}: not valid YAML: ${bad.message.split('\n')[0]}`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 0 }) ?? {};
  } catch (err) {
    throw new ConfigFileError(`${file}:1: not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigFileError(`${file}:1: expected keys like state-dir: /var/lib/pinhole`);
  if ('auth-key' in value || (isRecord((value as Record<string, unknown>).up) && 'auth-key' in ((value as Record<string, unknown>).up as object))) {
    const path = 'auth-key' in value ? [] : ['up'];
    throw new ConfigFileError(`${file}:${lineOf(doc, lines, path, 'auth-key')}: auth-key: the key itself does not go in the config file; put it in a 0600 file and name it with up: auth-key-file`);
  }
  const r = AgentConfigShape.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const path = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    if (issue.code === 'unrecognized_keys') {
      const k = issue.keys[0]!;
      throw new ConfigFileError(`${file}:${lineOf(doc, lines, path, k)}: ${[...path, k].join('.')}: unknown key`);
    }
    throw new ConfigFileError(`${file}:${lineOf(doc, lines, path)}: ${path.join('.') || 'file'}: ${issue.message}`);
  }
  const c = r.data;
  const up = c.up;
  let advertiseRoutes: string[] | undefined;
  if (up?.['advertise-routes']) {
    advertiseRoutes = up['advertise-routes'].map((route, i) => {
      try {
        return advertisableRoute(route, { strict: true });
      } catch (err) {
        if (!(err instanceof RouteRefusedError)) throw err;
        throw new ConfigFileError(`${file}:${lineOf(doc, lines, ['up', 'advertise-routes', i])}: up.advertise-routes.${i}: ${err.message}`);
      }
    });
  }
  return {
    ...(c['state-dir'] !== undefined ? { stateDir: c['state-dir'] } : {}),
    ...(c.socket !== undefined ? { socket: c.socket } : {}),
    ...(c.tun !== undefined ? { tun: c.tun } : {}),
    ...(c.port !== undefined ? { port: c.port } : {}),
    ...(c['socket-mark'] !== undefined ? { socketMark: c['socket-mark'] } : {}),
    ...(c['admin-group'] !== undefined ? { adminGroup: c['admin-group'] } : {}),
    ...(c['operator-group'] !== undefined ? { operatorGroup: c['operator-group'] } : {}),
    ...(c['resolv-conf'] !== undefined ? { resolvConf: c['resolv-conf'] } : {}),
    ...(c['metrics-listen'] !== undefined ? { metricsListen: c['metrics-listen'] } : {}),
    ...(c.portmap !== undefined ? { portmap: c.portmap } : {}),
    ...(c['portmap-protocol'] !== undefined ? { portmapProtocol: c['portmap-protocol'] } : {}),
    ...(c['portmap-lease'] !== undefined ? { portmapLease: c['portmap-lease'] } : {}),
    ...(up ? {
      up: {
        coordinator: Array.isArray(up.coordinator) ? up.coordinator.join(',') : up.coordinator,
        ...(up['auth-key-file'] !== undefined ? { authKeyFile: up['auth-key-file'] } : {}),
        ...(up['coordinator-key'] !== undefined ? { coordinatorKey: up['coordinator-key'] } : {}),
        ...(up.hostname !== undefined ? { hostname: up.hostname } : {}),
        ...(advertiseRoutes !== undefined ? { advertiseRoutes } : {}),
        ...(up['advertise-exit-node'] !== undefined ? { advertiseExitNode: up['advertise-exit-node'] } : {}),
        ...(up['accept-routes'] !== undefined ? { acceptRoutes: up['accept-routes'] } : {}),
        ...(up['exit-node'] !== undefined ? { exitNode: up['exit-node'] } : {}),
        ...(up['exit-node-allow-lan-access'] !== undefined ? { exitNodeAllowLanAccess: up['exit-node-allow-lan-access'] } : {}),
        ...(up['accept-dns'] !== undefined ? { acceptDns: up['accept-dns'] } : {}),
      },
    } : {}),
  };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
