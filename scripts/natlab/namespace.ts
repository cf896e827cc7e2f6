// Network namespace plumbing: create/delete namespaces, veth pairs, addresses, routes, sysctls.
import { runArgv, runArgvSync } from './command.js';

/** `ip` against one namespace. */
export function ipIn(ns: string, args: readonly string[]): Promise<string> {
  return runArgv(['ip', '-n', ns, ...args]);
}

/** Runs argv inside ns and requires success. */
export function runIn(ns: string, argv: readonly string[], input?: string): Promise<string> {
  return runArgv(['ip', 'netns', 'exec', ns, ...argv], input === undefined ? {} : { input });
}

/** Creates a namespace with loopback up and IPv4 defaults the lab relies on. */
export async function createNamespace(ns: string, opts: { forwarding?: boolean } = {}): Promise<void> {
  await runArgv(['ip', 'netns', 'add', ns]);
  await ipIn(ns, ['link', 'set', 'lo', 'up']);
  const sysctls = [
    'net.ipv4.conf.all.rp_filter=0',
    'net.ipv4.conf.default.rp_filter=0',
    // the internet namespace forwards between sites on one bridge port: redirects would only confuse hosts
    'net.ipv4.conf.all.send_redirects=0',
    'net.ipv4.conf.default.send_redirects=0',
    'net.ipv4.conf.all.accept_redirects=0',
    'net.ipv4.conf.default.accept_redirects=0',
    `net.ipv4.ip_forward=${opts.forwarding ? 1 : 0}`,
  ];
  await runIn(ns, ['sysctl', '-q', '-w', ...sysctls]);
}

/** Deletes a namespace; missing namespaces are fine (idempotent). */
export async function deleteNamespace(ns: string): Promise<void> {
  try { await runArgv(['ip', 'netns', 'del', ns]); } catch (e) {
    if (!(await listNamespaces()).includes(ns)) return;
    throw e;
  }
}

export function deleteNamespaceSync(ns: string): void {
  runArgvSync(['ip', 'netns', 'del', ns]);
}

/** Names of all namespaces on the machine (first column of `ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const out = await runArgv(['ip', 'netns', 'list']);
  return parseNetnsList(out);
}

export function listNamespacesSync(): string[] {
  return parseNetnsList(runArgvSync(['ip', 'netns', 'list']));
}

function parseNetnsList(out: string): string[] {
  return out.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter(Boolean);
}

/** Pids of every process living in ns. */
export async function namespacePids(ns: string): Promise<number[]> {
  try {
    const out = await runArgv(['ip', 'netns', 'pids', ns]);
    return out.split(/\s+/).filter(Boolean).map(Number).filter((n) => n > 1 && n !== process.pid);
  } catch {
    return [];
  }
}

export function namespacePidsSync(ns: string): number[] {
  return runArgvSync(['ip', 'netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number).filter((n) => n > 1 && n !== process.pid);
}

/**
 * Creates a veth pair with one end in each namespace (never in the caller's namespace, so link
 * names only have to be unique inside their own namespace) and brings both ends up.
 */
export async function createVethPair(nsA: string, ifA: string, nsB: string, ifB: string): Promise<void> {
  checkIfName(ifA);
  checkIfName(ifB);
  await ipIn(nsA, ['link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
  await ipIn(nsA, ['link', 'set', ifA, 'up']);
  await ipIn(nsB, ['link', 'set', ifB, 'up']);
}

export async function addAddress(ns: string, ifName: string, cidr: string): Promise<void> {
  await ipIn(ns, ['addr', 'add', cidr, 'dev', ifName]);
}

/** Adds (or replaces) a route: `ip route replace DST [via GW] [dev IF]`. */
export async function addRoute(ns: string, dst: string, opts: { via?: string; dev?: string }): Promise<void> {
  const args = ['route', 'replace', dst];
  if (opts.via) args.push('via', opts.via);
  if (opts.dev) args.push('dev', opts.dev);
  await ipIn(ns, args);
}

/** Linux interface names: 1–15 chars, no '/', ':' or whitespace. */
export function checkIfName(name: string): void {
  if (!/^[A-Za-z0-9_.-]{1,15}$/.test(name)) throw new Error(`bad interface name ${JSON.stringify(name)} (1-15 chars)`);
}
