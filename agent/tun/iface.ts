// Interface configuration through iproute2 (`ip`), run with execFile: no shell, argv only.
import { formatCidr, parseCidr } from '../../proto/ip/address.js';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

/** How long one `ip` invocation may take before it is killed. */
const IP_TIMEOUT_MS = 10_000;

export class IfaceConfigError extends Error {
  override readonly name = 'IfaceConfigError';
  readonly code = 'ERR_IFACE_CONFIG';
  constructor(message: string, readonly command: string) {
    super(message);
  }
}

export interface IpOptions {
  signal?: AbortSignal;
}

export interface RouteOptions extends IpOptions {
  metric?: number;
  /** Routing table id or name (default: main). */
  table?: number | string;
}

/** Validates a CIDR with the project's one parser; returns ip's family flag and canonical text. */
function cidrArgs(cidr: string): [string, string] {
  try {
    const c = parseCidr(cidr);
    return [`-${c.family}`, formatCidr(c)];
  } catch {
    throw new IfaceConfigError(`invalid CIDR "${cidr}"`, '');
  }
}

function checkName(name: string): void {
  if (!/^[A-Za-z0-9_.:@][A-Za-z0-9_.:@-]{0,14}$/.test(name))
    throw new IfaceConfigError(`invalid interface name "${name}"`, '');
}

/** Runs `ip ARGS`; rejects with one line naming the command and iproute2's own complaint. */
export function runIp(args: string[], options: IpOptions = {}): Promise<string> {
  const command = `ip ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: IP_TIMEOUT_MS, signal: options.signal, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const e = err as NodeJS.ErrnoException & { killed?: boolean };
      let reason: string;
      if (e.code === 'ENOENT') reason = 'the ip command (iproute2) is not installed';
      else if (e.name === 'AbortError') reason = 'aborted';
      else if (e.killed) reason = `timed out after ${IP_TIMEOUT_MS} ms`;
      else reason = stderr.trim().split('\n')[0] || e.message.split('\n')[0] || 'failed';
      reject(new IfaceConfigError(`${command}: ${reason}`, command));
    });
  });
}

export async function setMtu(name: string, mtu: number, options?: IpOptions): Promise<void> {
  checkName(name);
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) throw new IfaceConfigError(`invalid MTU ${mtu}`, '');
  await runIp(['link', 'set', 'dev', name, 'mtu', String(mtu)], options);
}

export async function setLinkUp(name: string, options?: IpOptions): Promise<void> {
  checkName(name);
  await runIp(['link', 'set', 'dev', name, 'up'], options);
}

export async function setLinkDown(name: string, options?: IpOptions): Promise<void> {
  checkName(name);
  await runIp(['link', 'set', 'dev', name, 'down'], options);
}

/** Adds (or keeps) an address such as "100.64.0.1/10" or "fd7a:115c:a1e0::1/48". Idempotent. */
export async function addAddress(name: string, cidr: string, options?: IpOptions): Promise<void> {
  checkName(name);
  const [family, text] = cidrArgs(cidr);
  await runIp([family, 'addr', 'replace', text, 'dev', name], options);
}

export async function removeAddress(name: string, cidr: string, options?: IpOptions): Promise<void> {
  checkName(name);
  const [family, text] = cidrArgs(cidr);
  await runIp([family, 'addr', 'del', text, 'dev', name], options);
}

function routeArgs(name: string, cidr: string, options: RouteOptions): string[] {
  checkName(name);
  const [family, text] = cidrArgs(cidr);
  const args = [family, 'route', '', text, 'dev', name];
  if (options.metric !== undefined) {
    if (!Number.isInteger(options.metric) || options.metric < 0) throw new IfaceConfigError(`invalid metric ${options.metric}`, '');
    args.push('metric', String(options.metric));
  }
  if (options.table !== undefined) {
    if (!/^[A-Za-z0-9_]+$/.test(String(options.table))) throw new IfaceConfigError(`invalid table ${options.table}`, '');
    args.push('table', String(options.table));
  }
  return args;
}

/** Routes CIDR into the interface; replaces an existing route to the same prefix (idempotent). */
export async function addRoute(name: string, cidr: string, options: RouteOptions = {}): Promise<void> {
  const args = routeArgs(name, cidr, options);
  args[2] = 'replace';
  await runIp(args, options);
}

export async function removeRoute(name: string, cidr: string, options: RouteOptions = {}): Promise<void> {
  const args = routeArgs(name, cidr, options);
  args[2] = 'del';
  await runIp(args, options);
}

/** True while a network interface of that name exists in this network namespace. */
export function interfaceExists(name: string): boolean {
  checkName(name);
  return existsSync(`/sys/class/net/${name}`);
}
