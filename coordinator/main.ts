// `pinhole coordinator --listen HOST:PORT --db PATH|postgres://USER@HOST:PORT/DB [--db-password-file F]
//  [--admin-token-file F] [--relay NAME=URL --relay-key NAME=KEY ...] [--relay-stun NAME=HOST:PORT ...]
//  [--relay-region NAME=REGION ...]
//  [--tls-cert F --tls-key F] [limits]`
// `pinhole coordinator migrate-db --from PATH --to postgres://USER@HOST:PORT/DB [--db-password-file F]`
// Prints two lines on stdout once it listens ("pinhole coordinator listening on http://HOST:PORT",
// then "pinhole coordinator key FINGERPRINT"), logs on stderr, shuts down cleanly on SIGINT/SIGTERM.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { Command, CommanderError } from 'commander';
import { parseDuration } from '../proto/control/duration.js';
import { buildDnsConfig, DEFAULT_DNS_DOMAIN, DnsConfigError } from '../proto/dns/dns-config.js';
import { startCoordinator, type CoordinatorOptions } from './coordinator.js';
import { createLogger } from './log.js';
import { buildRelayMap, RelayMapError } from './relay-map.js';
import { MetricsListenError, parseMetricsListen, type MetricsListen } from '../metrics/http-server.js';
import { DatabaseUrlError, parseDatabaseTarget, parsePostgresUrl, type DatabaseTarget } from './store/database-url.js';
import type { StoreOptions } from './store/open.js';
import { migrateSqliteToPostgres } from './migrate-db.js';

class UsageError extends Error {
  override readonly name = 'UsageError';
}

function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen: expected HOST:PORT (e.g. 127.0.0.1:8080), got ${JSON.stringify(text)}`);
  return { host: m[1] ?? m[2]!, port };
}

function durationFlag(flag: string, text: string, allowNever = false): number | null {
  if (allowNever && text === 'never') return null;
  try {
    return parseDuration(text);
  } catch (err) {
    throw new UsageError(`${flag}: ${(err as Error).message}`);
  }
}

function relayMap(relays: string[], stun: string[], keys: string[], regions: string[]): CoordinatorOptions['relays'] {
  try {
    return buildRelayMap(relays, stun, keys, regions);
  } catch (err) {
    if (err instanceof RelayMapError) throw new UsageError(err.message);
    throw err;
  }
}

function dnsConfig(domain: string, routes: string[]): CoordinatorOptions['dns'] {
  try {
    return buildDnsConfig(domain, routes);
  } catch (err) {
    if (err instanceof DnsConfigError) throw new UsageError(err.message);
    throw err;
  }
}

function readAdminToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`--admin-token-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const token = text.trim();
  if (!/^\S{16,512}$/.test(token)) throw new UsageError(`--admin-token-file: ${file} must hold one token of 16 or more non-space characters`);
  return token;
}

function readTls(cert: string | undefined, key: string | undefined): { cert: Buffer; key: Buffer } | null {
  if (cert === undefined && key === undefined) return null;
  if (cert === undefined || key === undefined) throw new UsageError('--tls-cert and --tls-key go together');
  const read = (flag: string, file: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new UsageError(`${flag}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  return { cert: read('--tls-cert', cert), key: read('--tls-key', key) };
}

function metricsListen(text: string | undefined): MetricsListen | null {
  if (text === undefined) return null;
  try {
    return parseMetricsListen(text);
  } catch (err) {
    if (err instanceof MetricsListenError) throw new UsageError(err.message);
    throw err;
  }
}

function positive(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: expected a positive number, got ${JSON.stringify(text)}`);
  return n;
}

function databaseTarget(text: string): DatabaseTarget {
  try {
    return parseDatabaseTarget(text);
  } catch (err) {
    if (err instanceof DatabaseUrlError) throw new UsageError(err.message);
    throw err;
  }
}

/** The PostgreSQL password from a file (its first line); warns if others may read it. */
function readDbPassword(file: string, warn: (message: string) => void): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
    if ((statSync(file).mode & 0o077) !== 0) warn(`the database password file ${file} is readable by other users`);
  } catch (err) {
    throw new UsageError(`--db-password-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const password = text.split(/\r?\n/)[0]!;
  if (password === '') throw new UsageError(`--db-password-file: ${file} is empty`);
  return password;
}

function storeOptions(db: string, passwordFile: string | undefined, poolSize: string, warn: (message: string) => void): StoreOptions {
  const target = databaseTarget(db);
  if (target.kind === 'sqlite') {
    if (passwordFile !== undefined) throw new UsageError('--db-password-file goes with a postgres:// --db, not a SQLite file');
    // The database's folder is created (0700) on a fresh machine, as the README's first command expects.
    try {
      mkdirSync(dirname(target.path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new UsageError(`--db: cannot create the folder of ${target.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return { target };
  }
  return {
    target,
    poolSize: Math.floor(positive('--db-pool-size', poolSize)),
    ...(passwordFile !== undefined ? { password: readDbPassword(passwordFile, warn) } : {}),
  };
}

interface Flags {
  listen: string; db: string; dbPasswordFile?: string; dbPoolSize: string; adminTokenFile?: string; relay: string[]; relayStun: string[]; relayKey: string[]; relayRegion: string[];
  tlsCert?: string; tlsKey?: string; maxHandshakeRate: string; maxRegisterRate: string;
  maxUnauthenticated: string; maxUnauthenticatedPerAddress: string;
  dnsDomain: string; dnsRoute: string[];
  nodeKeyExpiry: string; ephemeralTimeout: string; streamKeepalive: string; flushInterval: string;
  metricsListen?: string;
}

async function run(flags: Flags): Promise<void> {
  const log = createLogger('coordinator');
  const { host, port } = parseListen(flags.listen);
  const dns = dnsConfig(flags.dnsDomain, flags.dnsRoute);
  const adminToken = flags.adminTokenFile === undefined ? null : readAdminToken(flags.adminTokenFile);
  if (flags.adminTokenFile !== undefined && (statSync(flags.adminTokenFile).mode & 0o077) !== 0) {
    log.warn({ file: flags.adminTokenFile }, 'the admin token file is readable by other users');
  }
  const store = storeOptions(flags.db, flags.dbPasswordFile, flags.dbPoolSize, (message) => log.warn(message));
  const opts: CoordinatorOptions = {
    host, port, store, adminToken, log,
    tls: readTls(flags.tlsCert, flags.tlsKey),
    registerPerSecond: positive('--max-register-rate', flags.maxRegisterRate),
    limits: {
      handshakesPerSecond: positive('--max-handshake-rate', flags.maxHandshakeRate),
      maxUnauthenticated: Math.floor(positive('--max-unauthenticated', flags.maxUnauthenticated)),
      maxUnauthenticatedPerAddress: Math.floor(positive('--max-unauthenticated-per-address', flags.maxUnauthenticatedPerAddress)),
    },
    relays: relayMap(flags.relay, flags.relayStun, flags.relayKey, flags.relayRegion),
    dns,
    nodeKeyExpiryMs: durationFlag('--node-key-expiry', flags.nodeKeyExpiry, true),
    ephemeralTimeoutMs: durationFlag('--ephemeral-timeout', flags.ephemeralTimeout)!,
    keepaliveMs: Math.max(100, durationFlag('--stream-keepalive', flags.streamKeepalive)!),
    flushMs: Math.max(1, durationFlag('--flush-interval', flags.flushInterval)!),
    metricsListen: metricsListen(flags.metricsListen),
  };
  const coordinator = await startCoordinator(opts);
  process.stdout.write(`pinhole coordinator listening on ${coordinator.url}\npinhole coordinator key ${coordinator.fingerprint}\n`);
  const stop = (signal: string): void => {
    log.info({ signal }, 'shutting down');
    coordinator.close().then(() => process.exit(0), (err: Error) => {
      process.stderr.write(`pinhole coordinator: ${err.message}\n`);
      process.exit(1);
    });
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

function buildProgram(): Command {
  const program = new Command('pinhole').exitOverride().showHelpAfterError(false);
  program.command('coordinator')
    .description('run the control plane: registration, auth keys, netmaps, admin API')
    .requiredOption('--listen <host:port>', 'address to serve HTTP and WebSocket on')
    .requiredOption('--db <path|url>', 'SQLite database file (created with mode 0600), or postgres://USER@HOST:PORT/DB (no password in the URL)')
    .option('--db-password-file <file>', 'PostgreSQL password, first line of this file (default: PGPASSWORD or the pgpass file)')
    .option('--db-pool-size <n>', 'PostgreSQL connections at most', '8')
    .option('--admin-token-file <file>', 'file holding the admin API bearer token (without it the admin API is disabled)')
    .option('--relay <name=url>', 'a relay to tell nodes about (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--relay-key <name=key>', 'the static key of relay NAME, as `pinhole relay` prints it (required for every --relay)',
      (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--relay-stun <name=host:port>', 'a STUN server of relay NAME (repeatable; default: the relay URL\'s host, port 3478)',
      (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--relay-region <name=region>', 'relay NAME belongs to REGION; the relays of a region are meshed (`pinhole relay --mesh-with`) and nodes fail over among them (repeatable)',
      (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--dns-domain <domain>', 'nodes are named HOST.DOMAIN in DNS (MagicDNS)', DEFAULT_DNS_DOMAIN)
    .option('--dns-route <suffix=resolver>', 'split DNS: names under SUFFIX are resolved by RESOLVER (IP[:port]) on every node (repeatable)',
      (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--node-key-expiry <duration>', 'node key lifetime after authenticating, or "never"', '180d')
    .option('--ephemeral-timeout <duration>', 'delete an ephemeral node this long after it goes offline', '5m')
    .option('--stream-keepalive <duration>', 'WebSocket ping interval; a stream silent this long is dropped', '30s')
    .option('--flush-interval <duration>', 'gather netmap changes this long before sending deltas', '50ms')
    .option('--tls-cert <file>', 'serve HTTPS with this certificate (PEM) instead of HTTP; the control channel is Noise-encrypted either way')
    .option('--tls-key <file>', 'the certificate\'s private key (PEM)')
    .option('--max-handshake-rate <n>', 'control-channel handshakes per second per source address (burst: 10 s worth)', '20')
    .option('--max-register-rate <n>', 'registrations per second per source address (burst: 10 s worth)', '5')
    .option('--max-unauthenticated <n>', 'control channels that have not yet authenticated, in all', '4096')
    .option('--max-unauthenticated-per-address <n>', 'control channels that have not yet authenticated, per source address', '64')
    .option('--metrics-listen <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (plain HTTP: localhost or a management network)')
    .action(run);
  return program;
}

async function migrateDb(flags: { from: string; to: string; dbPasswordFile?: string }): Promise<void> {
  let to;
  try {
    to = parsePostgresUrl(flags.to);
  } catch (err) {
    if (err instanceof DatabaseUrlError) throw new UsageError(err.message.replace(/^--db/, '--to'));
    throw err;
  }
  const warn = (message: string): void => { process.stderr.write(`pinhole coordinator migrate-db: ${message}\n`); };
  const password = flags.dbPasswordFile === undefined ? undefined : readDbPassword(flags.dbPasswordFile, warn);
  const s = await migrateSqliteToPostgres({ from: flags.from, to, ...(password !== undefined ? { password } : {}) });
  process.stdout.write(`copied ${s.nodes} nodes, ${s.authKeys} auth keys, ${s.coordinatorKeys} coordinator key${s.coordinatorKeys === 1 ? '' : 's'} ` +
    `and ${s.policy ? 'the' : 'no'} policy from ${flags.from} to ${to.display}\n`);
}

function buildMigrateProgram(): Command {
  const program = new Command('pinhole').exitOverride().showHelpAfterError(false);
  program.command('coordinator').command('migrate-db')
    .description('copy a SQLite coordinator database into an empty PostgreSQL database, in one transaction')
    .requiredOption('--from <path>', 'the SQLite database file (no coordinator may be running on it)')
    .requiredOption('--to <url>', 'postgres://USER@HOST:PORT/DB, empty (no password in the URL)')
    .option('--db-password-file <file>', 'PostgreSQL password, first line of this file (default: PGPASSWORD or the pgpass file)')
    .action(migrateDb);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    const migrate = argv[0] === 'coordinator' && argv[1] === 'migrate-db';
    await (migrate ? buildMigrateProgram() : buildProgram()).parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    const who = argv[0] === 'coordinator' && argv[1] === 'migrate-db' ? 'pinhole coordinator migrate-db' : 'pinhole coordinator';
    process.stderr.write(`${who}: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}\n`);
    process.exitCode = 1;
  }
}
