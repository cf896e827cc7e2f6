// coturn as the lab's reference NAT classifier: a STUN server on two addresses (RFC 5780) and
// turnutils_natdiscovery run from inside a site.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from './host.js';
import type { LabProcess } from './process.js';

/** RFC 4787 mapping/filtering behaviour as turnutils_natdiscovery reports it. */
export type RfcBehaviour = 'endpoint-independent' | 'address-dependent' | 'address-and-port-dependent';

export interface NatDiscovery {
  /** From "NAT with ... Mapping!"; null if coturn could not tell (e.g. no reply). */
  mapping: RfcBehaviour | null;
  /** From "NAT with ... Filtering!". */
  filtering: RfcBehaviour | null;
  /** Every "UDP reflexive addr" coturn reported (ip:port), in order. */
  reflexive: string[];
  /** The tool's complete output, for failure messages. */
  raw: string;
}

export interface StunServer {
  host: Host;
  /** The two listening addresses: primary and alternate (RFC 5780 OTHER-ADDRESS). */
  ips: readonly [string, string];
  port: number;
  proc: LabProcess;
  /** Stops the server and removes its temp dir. */
  stop(): Promise<void>;
}

/** coturn did not answer a binding request in time. */
export class StunServerStartError extends Error {
  constructor(readonly output: string) {
    super(`turnserver did not answer STUN in time; output: ${output.slice(-600)}`);
    this.name = 'StunServerStartError';
  }
}

/**
 * Starts `turnserver` as an unauthenticated, STUN-only RFC 5780 server on host's first two
 * addresses (so create the host with `{ ips: 2 }`) and waits until it answers a binding request.
 */
export async function startCoturn(host: Host, opts: { port?: number; timeoutMs?: number } = {}): Promise<StunServer> {
  if (host.ips.length < 2) throw new Error(`coturn needs two addresses on ${host.name} for RFC 5780 (addPublicHost(name, { ips: 2 }))`);
  const port = opts.port ?? 3478;
  const ips = [host.ips[0]!, host.ips[1]!] as const;
  const dir = mkdtempSync(join(tmpdir(), 'natlab-coturn-'));
  const conf = join(dir, 'turnserver.conf');
  writeFileSync(conf, '# empty: everything is on the command line, /etc/turnserver.conf is not read\n');
  const proc = host.spawn([
    'turnserver', '-c', conf, '-L', ips[0], '-L', ips[1], '--listening-port', String(port),
    '--stun-only', '--no-auth', '--no-tls', '--no-dtls', '--no-cli', '-m', '0',
    '--pidfile', join(dir, 'turnserver.pid'), '--db', join(dir, 'turndb'),
    '--log-file', 'stdout', '--simple-log',
  ]);
  void proc.exited.then(() => rmSync(dir, { recursive: true, force: true }));
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
  for (;;) {
    if (!proc.running) throw new StunServerStartError(proc.output);
    const probe = await host.exec(['turnutils_stunclient', '-p', String(port), ips[0]], { timeoutMs: 5000 }).catch(() => null);
    if (probe && /reflexive addr/i.test(probe.stdout + probe.stderr)) break;
    if (Date.now() > deadline) {
      await proc.kill('SIGKILL');
      throw new StunServerStartError(proc.output);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { host, ips, port, proc, stop: async () => { await proc.kill(); } };
}

/**
 * Runs `turnutils_natdiscovery -m -f -P` on host against server and parses its verdicts. -P pads
 * each request (PADDING, 1500 bytes): pinhole's responder answers no larger than it was asked.
 */
export async function discoverNat(host: Host, server: string | StunServer, opts: { timeoutMs?: number } = {}): Promise<NatDiscovery> {
  const ip = typeof server === 'string' ? server : server.ips[0];
  const port = typeof server === 'string' ? 3478 : server.port;
  const r = await host.exec(['turnutils_natdiscovery', '-m', '-f', '-P', '-p', String(port), ip], { timeoutMs: opts.timeoutMs ?? 30_000 });
  return parseNatDiscovery(r.stdout + r.stderr);
}

/**
 * Parses turnutils_natdiscovery (coturn 4.6) output, e.g.
 *   0: : IPv4. UDP reflexive addr: 198.51.100.14:17178
 *   NAT with Address and Port Dependent Mapping!
 *   NAT with Endpoint Independent Filtering!
 */
export function parseNatDiscovery(raw: string): NatDiscovery {
  const verdict = (what: 'Mapping' | 'Filtering'): RfcBehaviour | null => {
    const m = raw.match(new RegExp(`NAT with (Endpoint Independent|Address Dependent|Address and Port Dependent) ${what}!`));
    if (!m) return null;
    return m[1] === 'Endpoint Independent' ? 'endpoint-independent'
      : m[1] === 'Address Dependent' ? 'address-dependent' : 'address-and-port-dependent';
  };
  const reflexive = [...raw.matchAll(/UDP reflexive addr: ([0-9.]+:\d+)/g)].map((m) => m[1]!);
  return { mapping: verdict('Mapping'), filtering: verdict('Filtering'), reflexive, raw };
}
