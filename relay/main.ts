// `pinhole relay --listen HOST:PORT --stun HOST:PORT [--stun HOST2:PORT2] (--coordinator URL
// --key-file F | --open) ...`
// Runs in the foreground; prints a "listening" line and a "key" line on stdout once both listeners
// are up, logs (pino) on stderr; SIGINT/SIGTERM stop it cleanly.
import { Command, CommanderError, Option } from 'commander';
import { tryParseAddress } from '../proto/ip/address.js';
import type { StunEndpoint } from '../proto/stun/attributes.js';
import { encodeKey } from '../proto/wireguard/keys.js';
import { readFileSync } from 'node:fs';
import { createCoordinatorAuthorizer, relayKeyPath } from './authorizer.js';
import { MeshCredentialError, readMeshCredential } from './mesh-credential.js';
import { meshUrl } from './mesh-link.js';
import { coordinatorLookup, resolveCoordinatorKey } from './coordinator-channel.js';
import { loadOrCreateRelayKey, RelayKeyFileError } from './key-file.js';
import { createLogger } from './log.js';
import { MetricsListenError, parseMetricsListen, startMetricsServer, type MetricsServer } from '../metrics/http-server.js';
import { createRelayMetrics } from './metrics.js';
import { startRelayServer } from './server.js';

class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** "IP:PORT" or "[IPv6]:PORT"; port 0 = any free port. */
export function parseListenAddress(s: string, what: string): StunEndpoint {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(s) ?? /^([0-9.]+):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !tryParseAddress(m[1]!) || port > 65535) throw new UsageError(`${what}: expected IP:PORT or [IPv6]:PORT, got ${JSON.stringify(s)}`);
  return { address: m[1]!, port };
}

const UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, ki: 1024, mi: 1024 ** 2, gi: 1024 ** 3 };

/** "1000000", "10M", "64Ki" → bytes. */
export function parseBytes(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?)?b?$/i.exec(s.trim());
  if (!m) throw new UsageError(`${what}: expected a byte count like 1000000, 10M or 64Ki, got ${JSON.stringify(s)}`);
  return Math.round(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!);
}

/** "250ms", "30s", "2m" → milliseconds. */
export function parseDuration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(s.trim());
  if (!m) throw new UsageError(`${what}: expected a duration like 250ms, 30s or 2m, got ${JSON.stringify(s)}`);
  return Math.round(Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : 60_000));
}

function metricsAddress(text: string): { host: string; port: number } {
  try {
    return parseMetricsListen(text);
  } catch (err) {
    if (err instanceof MetricsListenError) throw new UsageError(err.message);
    throw err;
  }
}

function positiveInt(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${what}: expected a positive integer, got ${JSON.stringify(s)}`);
  return n;
}

interface RelayCliOptions {
  listen: string;
  stun: string[];
  coordinator?: string;
  coordinatorKey?: string;
  tlsCert?: string;
  tlsKey?: string;
  open?: boolean;
  keyFile?: string;
  rateLimit: string;
  rateBurst: string;
  queueFrames: string;
  queueBytes: string;
  maxPause: string;
  keepalive: string;
  idleTimeout: string;
  handshakeTimeout: string;
  writeTimeout: string;
  globalQueueBytes: string;
  maxConnsPerIp: string;
  metricsListen?: string;
  meshWith: string[];
  meshKeyFile?: string;
}

function buildProgram(): Command {
  const program = new Command('pinhole')
    .exitOverride()
    .showHelpAfterError(false);
  program.command('relay')
    .description('run a relay (WebSocket at /relay, GET /healthz) and a STUN responder')
    .requiredOption('--listen <host:port>', 'HTTP/WebSocket listener, e.g. 0.0.0.0:443 (port 0 = any)')
    .addOption(new Option('--stun <host:port>', 'STUN on UDP; give two addresses for RFC 5780 (CHANGE-REQUEST, OTHER-ADDRESS)')
      .argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]).makeOptionMandatory())
    .option('--coordinator <url>', 'only nodes this coordinator knows may connect (asked inside its encrypted control channel)')
    .option('--coordinator-key <fingerprint>', 'the coordinator key to pin (printed by the coordinator at start); required with --coordinator')
    .option('--open', 'no --coordinator: every node that proves its key may connect (for labs)')
    .option('--tls-cert <file>', 'serve wss:// with this certificate (PEM); relay frames carry only WireGuard ciphertext either way')
    .option('--tls-key <file>', 'the certificate\'s private key (PEM)')
    .option('--key-file <file>', 'the relay\'s static key (created with mode 0600 if missing); its public half goes to the coordinator\'s --relay-key')
    .option('--rate-limit <bytes/s>', 'per-client receive rate, 0 = unlimited (suffixes k M G Ki Mi Gi)', '128Mi')
    .option('--rate-burst <bytes>', 'per-client burst', '4Mi')
    .option('--queue-frames <n>', 'per-client queue of data frames: senders to a full queue are paused', '1024')
    .option('--queue-bytes <bytes>', 'per-client queue of data bytes: senders to a full queue are paused', '4Mi')
    .option('--max-pause <duration>', 'longest a full queue pauses a sender; then that queue drops its oldest frames instead', '1s')
    .option('--keepalive <duration>', 'keepalive interval, e.g. 30s', '30s')
    .option('--idle-timeout <duration>', 'close clients silent for this long', '75s')
    .option('--handshake-timeout <duration>', 'time a new client has to prove its node key', '10s')
    .option('--write-timeout <duration>', 'close a client that reads none of what waits for it for this long', '30s')
    .option('--global-queue-bytes <bytes>', 'all clients\' queues together; frames over it are dropped', '256Mi')
    .option('--max-conns-per-ip <n>', 'open connections per source address', '64')
    .option('--mesh-with <url,...>', 'other relays of this deployment to mesh with (repeatable; comma-separated URLs; this relay\'s own URL is skipped)',
      (v: string, prev: string[]) => [...prev, ...v.split(',').map((x) => x.trim()).filter(Boolean)], [] as string[])
    .option('--mesh-key-file <file>', 'the shared mesh credential (mode 0600, the same file on every relay of the mesh); required with --mesh-with')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (plain HTTP: localhost or a management network)')
    .action(async (o: RelayCliOptions) => {
      await runRelay(o);
    });
  return program;
}

async function runRelay(o: RelayCliOptions): Promise<void> {
  const listen = parseListenAddress(o.listen, '--listen');
  if (o.stun.length > 2) throw new UsageError('--stun: give one or two addresses');
  const stun = o.stun.map((s) => parseListenAddress(s, '--stun'));
  if (!o.coordinator && !o.open) {
    throw new UsageError('refusing to start an open relay: give --coordinator URL (only its nodes may connect) or --open (any node, for labs)');
  }
  if (o.coordinator && o.open) throw new UsageError('--open and --coordinator exclude each other');
  if (o.coordinator && !o.keyFile) throw new UsageError('--key-file is required with --coordinator: the coordinator publishes this relay\'s key (--relay-key), so it must not change');
  let key;
  try {
    key = o.keyFile ? loadOrCreateRelayKey(o.keyFile) : null;
  } catch (err) {
    if (err instanceof RelayKeyFileError) throw new UsageError(err.message);
    throw new UsageError(`--key-file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  let tls: { cert: Buffer; key: Buffer } | undefined;
  try {
    tls = o.tlsCert && o.tlsKey ? { cert: readFileSync(o.tlsCert), key: readFileSync(o.tlsKey) } : undefined;
  } catch (err) {
    throw new UsageError(`--tls-cert/--tls-key: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const metricsListen = o.metricsListen === undefined ? null : metricsAddress(o.metricsListen);
  if (o.meshWith.length > 0 && !o.meshKeyFile) throw new UsageError('--mesh-key-file F is required with --mesh-with (the shared mesh credential, mode 0600)');
  if (o.meshKeyFile && o.meshWith.length === 0) throw new UsageError('--mesh-key-file without --mesh-with: give the other relays\' URLs');
  for (const u of o.meshWith) {
    try {
      meshUrl(u);
    } catch (err) {
      throw new UsageError(`--mesh-with: ${(err as Error).message}`);
    }
  }
  let meshCredential: Uint8Array | null = null;
  if (o.meshKeyFile) {
    try {
      meshCredential = readMeshCredential(o.meshKeyFile);
    } catch (err) {
      if (err instanceof MeshCredentialError) throw new UsageError(err.message);
      throw new UsageError(`--mesh-key-file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const logger = createLogger('relay');
  let authorizer;
  let authorizePeer: ((key: Uint8Array) => Promise<'allowed' | 'denied' | 'unavailable'>) | undefined;
  if (o.coordinator) {
    let url: URL;
    try {
      url = new URL(o.coordinator);
    } catch {
      throw new UsageError(`--coordinator: not a URL: ${JSON.stringify(o.coordinator)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--coordinator: expected an http:// or https:// URL');
    if (!o.coordinatorKey) throw new UsageError('--coordinator-key FINGERPRINT is required with --coordinator (the coordinator prints it at start)');
    let coordinatorKey: Uint8Array;
    try {
      coordinatorKey = await resolveCoordinatorKey(url.toString(), o.coordinatorKey);
    } catch (err) {
      throw new UsageError(`--coordinator-key: ${(err as Error).message.split('\n')[0]}`);
    }
    const lookup = coordinatorLookup(url.toString(), coordinatorKey, key!.privateKey);
    const onError = (err: unknown): void => logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'coordinator lookup failed');
    authorizer = createCoordinatorAuthorizer({ lookup, onError });
    // A mesh peer must be a relay of the coordinator's relay map, not only hold the credential.
    const relays = createCoordinatorAuthorizer({ lookup, onError, pathOf: relayKeyPath });
    authorizePeer = (k) => relays.authorize(k);
  }
  const keepaliveMs = parseDuration(o.keepalive, '--keepalive');
  const idleTimeoutMs = parseDuration(o.idleTimeout, '--idle-timeout');
  if (idleTimeoutMs <= keepaliveMs) throw new UsageError('--idle-timeout must be longer than --keepalive');
  let server;
  try {
    server = await startRelayServer({
      listen,
      stun,
      ...(authorizer ? { authorizer } : {}),
      ...(tls ? { tls } : {}),
      ...(key ? { privateKey: key.privateKey } : {}),
      rateBytesPerSec: parseBytes(o.rateLimit, '--rate-limit'),
      rateBurstBytes: parseBytes(o.rateBurst, '--rate-burst'),
      queueFrames: positiveInt(o.queueFrames, '--queue-frames'),
      queueBytes: parseBytes(o.queueBytes, '--queue-bytes'),
      maxPauseMs: parseDuration(o.maxPause, '--max-pause'),
      keepaliveMs,
      idleTimeoutMs,
      handshakeTimeoutMs: parseDuration(o.handshakeTimeout, '--handshake-timeout'),
      writeTimeoutMs: parseDuration(o.writeTimeout, '--write-timeout'),
      globalQueueBytes: parseBytes(o.globalQueueBytes, '--global-queue-bytes'),
      maxConnsPerIp: positiveInt(o.maxConnsPerIp, '--max-conns-per-ip'),
      logger,
      ...(meshCredential ? { mesh: { peers: o.meshWith, credential: meshCredential, ...(authorizePeer ? { authorizePeer } : {}) } } : {}),
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
    if (e.code === 'EADDRINUSE') throw new Error(`cannot listen on ${e.address}:${e.port}: address in use`);
    if (e.code === 'EADDRNOTAVAIL') throw new Error(`cannot listen on ${e.address}:${e.port}: no such local address`);
    if (e.code === 'EACCES') throw new Error(`cannot listen on ${e.address}:${e.port}: permission denied`);
    throw err;
  }
  let metrics: MetricsServer | null = null;
  if (metricsListen) {
    try {
      metrics = await startMetricsServer({ ...metricsListen, registry: createRelayMetrics(server), onError: (err) => logger.error({ err: err.message }, 'metrics collection failed') });
    } catch (err) {
      await server.close();
      throw err;
    }
  }
  const stunText = server.stun ? server.stun.addresses.map((a) => (a.address.includes(':') ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`)).join(',') : '';
  const publicKey = encodeKey(server.publicKey);
  process.stdout.write(`pinhole relay: listening ${server.url} stun=${stunText} key=${publicKey}\n`);
  // The line an operator copies into the coordinator's --relay-key NAME=KEY.
  process.stdout.write(`pinhole relay key ${publicKey}\n`);
  logger.info({
    url: server.url, stun: server.stun?.addresses, otherAddress: server.stun?.otherAddress, key: publicKey,
    keyFile: o.keyFile ?? null, keyCreated: key?.created ?? false, open: !!o.open, metrics: metrics?.url ?? null,
  }, 'relay listening');

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      logger.info({ signal: sig }, 'relay stopping');
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void Promise.all([server.close(), metrics?.close()]).then(() => resolve(), () => resolve());
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`pinhole: ${msg.split('\n')[0]}\n`);
    process.exitCode = 1;
  }
}
