// The coordinator on PostgreSQL, as an operator runs it (docs/postgres.md): one real PostgreSQL in
// a lab host, started by initdb/postgres as the `postgres` user in a temporary directory. The store
// contract holds on it as on a SQLite file; three coordinator processes on one database hand out a
// single-use key once and 200 distinct addresses; a SQLite database migrated into PostgreSQL keeps
// serving its nodes, and a real agent joins; bad --db values fail with one line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { PINHOLE_BIN, REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';
import { parsePostgresUrl } from '../../coordinator/store/database-url.js';
import { PostgresStore } from '../../coordinator/store/postgres.js';
import { SqliteStore } from '../../coordinator/store/sqlite.js';
import { ping } from '../helpers/transfer.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres-server.js';
import { checkConcurrentRegistrations, checkStoreContract } from '../helpers/store-contract.js';

const BURST = join(REPO_ROOT, 'dist', 'test', 'helpers', 'register-burst.js');
const PASSWORD = 'lab-password-not-a-secret';
// Registrations come from one address here: lift the per-address limits that would refuse them.
const UNLIMITED = ['--max-register-rate', '100000', '--max-handshake-rate', '100000', '--max-unauthenticated-per-address', '10000'];

interface BurstResult { status: number; ipv4?: string; name?: string; id?: number; error?: string }

describe('coordinator on PostgreSQL', { timeout: 240_000 }, () => {
  const id = runId();
  let lab: Lab;
  let dbHost: Host;
  let coordHost: Host;
  let pg: PostgresServer;
  let tmp: string;
  let passwordFile: string;
  const coords: LabCoordinator[] = [];
  const agents: ManagedAgent[] = [];

  const coordinator = async (port: number, db?: string, extraArgs: string[] = []): Promise<LabCoordinator> => {
    const c = await startCoordinator(coordHost, { port, ...(db ? { db } : {}), extraArgs });
    coords.push(c);
    return c;
  };
  const pinhole = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    coordHost.exec(['node', PINHOLE_BIN, ...args], { timeoutMs: 20_000 });
  const burst = async (urls: string[], key: string, n: number, prefix: string): Promise<BurstResult[]> => {
    const r = await coordHost.exec(['node', BURST, urls.join(','), key, String(n), prefix], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.trim().split('\n').map((l) => JSON.parse(l) as BurstResult);
  };

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'pinhole-pgtest-'));
    passwordFile = join(tmp, 'db-password');
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    lab = await createLab({ name: 'pg' });
    dbHost = await lab.addPublicHost('db');
    coordHost = await lab.addPublicHost('coord');
    pg = await startPostgres(dbHost, { password: PASSWORD });
  });

  after(async () => {
    for (const a of agents) await a.stop().catch(() => undefined);
    for (const c of coords) await c.stop().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    await lab?.destroy();
    await rm(tmp, { recursive: true, force: true });
  });

  test('the store contract holds on a SQLite file and on PostgreSQL', async () => {
    await checkStoreContract(() => SqliteStore.open(join(tmp, 'contract.db')));
    await pg.psql('CREATE DATABASE contract');
    const target = parsePostgresUrl(pg.socketUrl('contract'));
    await checkStoreContract(() => PostgresStore.open({ target }));
    await pg.psql('CREATE DATABASE contract_burst');
    await checkConcurrentRegistrations(() => PostgresStore.open({ target: parsePostgresUrl(pg.socketUrl('contract_burst')) }));
  });

  test('three coordinators on one database: a single-use key registers 1 node of 200, a reusable key 200 distinct addresses', async () => {
    // The first coordinator logs in with a password (read from a file) and owns the database.
    await pg.psql('CREATE DATABASE burst OWNER pinhole_pw');
    const metrics = (port: number): string[] => ['--metrics-listen', `${coordHost.ip}:${port + 1000}`];
    const first = await coordinator(8081, pg.url('burst', 'pinhole_pw'), [...UNLIMITED, ...metrics(8081), '--db-password-file', passwordFile]);
    const single = await first.createAuthKey({ reusable: false });
    const reusable = await first.createAuthKey({ reusable: true });
    const others = await Promise.all([8082, 8083].map((port) => coordinator(port, pg.url('burst'), [...UNLIMITED, ...metrics(port)])));
    const urls = [first.url, ...others.map((c) => c.url)];
    for (const c of others) assert.equal(c.fingerprint, first.fingerprint, 'one coordinator key, stored once');

    const once = await burst(urls, single, 200, 'once');
    const ok = once.filter((r) => r.status === 200);
    assert.equal(ok.length, 1, `exactly one registration with the single-use key: ${JSON.stringify(once.filter((r) => r.status !== 403).slice(0, 5))}`);
    assert.ok(once.every((r) => r.status === 200 || r.status === 403), `the rest are refused with 403: ${JSON.stringify(once.find((r) => r.status !== 200 && r.status !== 403))}`);
    // Each coordinator's memory alone would allow one use of its own (three in all): one success in
    // all is the database's doing. Every coordinator got requests and refused some.
    for (let i = 0; i < 3; i++) assert.ok(once.some((r, j) => j % 3 === i && r.status === 403), `coordinator ${i + 1} refused some`);
    assert.equal(await pg.psql('SELECT used_count FROM auth_keys WHERE NOT reusable', 'burst'), '1');
    assert.equal(await pg.psql('SELECT count(*) FROM nodes', 'burst'), '1');

    const started = Date.now();
    const many = await burst(urls, reusable, 200, 'many');
    const seconds = (Date.now() - started) / 1000;
    const failed = many.filter((r) => r.status !== 200);
    assert.deepEqual(failed, [], 'every registration with the reusable key succeeds');
    assert.equal(new Set(many.map((r) => r.ipv4)).size, 200, '200 distinct addresses');
    assert.equal(new Set(many.map((r) => r.name)).size, 200, '200 distinct names');
    assert.ok(!many.some((r) => r.ipv4 === ok[0]!.ipv4), 'none reuses the single-use node\'s address');
    assert.equal(await pg.psql('SELECT count(*), count(DISTINCT ipv4), count(DISTINCT ipv6), count(DISTINCT id) FROM nodes', 'burst'), '201|201|201|201');
    assert.equal(await pg.psql('SELECT used_count FROM auth_keys WHERE reusable', 'burst'), '200');
    // Each coordinator's pool is bounded (--db-pool-size, default 8), however many requests came at once.
    const connections = Number(await pg.psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'burst' AND application_name = 'pinhole-coordinator'"));
    assert.ok(connections >= 3 && connections <= 3 * 8, `connections: ${connections}`);
    // They did race: each started from the same ids and addresses, and the database sent the losers back.
    let conflicts = 0;
    for (const port of [8081, 8082, 8083]) {
      const scrape = await coordHost.exec(['node', '-e', 'fetch(process.argv[1]).then((r) => r.text()).then((t) => process.stdout.write(t))', `http://${coordHost.ip}:${port + 1000}/metrics`]);
      const m = /^pinhole_coordinator_identity_conflicts_total (\d+)$/m.exec(scrape.stdout);
      assert.ok(m, scrape.stdout.slice(0, 300) + scrape.stderr);
      conflicts += Number(m[1]);
    }
    assert.ok(conflicts > 0, 'some registrations lost a race and were retried');
    process.stderr.write(`# 200 registrations over 3 coordinators on one PostgreSQL: ${seconds.toFixed(1)} s, ${conflicts} retried after losing a race, ${connections} database connections\n`);
    for (const c of [first, ...others]) await c.proc.kill('SIGTERM', 3000);
  });

  test('a SQLite database migrated into PostgreSQL: the old node keeps its identity, a real agent joins with an old key', async () => {
    const port = 8090;
    const old = await coordinator(port);
    const reusable = await old.createAuthKey({ reusable: true });
    const single = await old.createAuthKey({ reusable: false });
    const policy = { acls: [{ action: 'accept', src: ['*'], dst: ['*:*'] }] };
    assert.equal((await old.request('PUT', '/api/v1/admin/policy', policy, true)).status, 200);
    const alphaHost = await lab.addPublicHost('alpha');
    const alpha = await startManagedAgent(alphaHost, { tun: `pg${id}a` });
    agents.push(alpha);
    const up = await alpha.cli(['up', '--coordinator', old.url, '--auth-key', reusable, '--hostname', 'alpha']);
    assert.equal(up.code, 0, up.stderr);
    const before = (await old.nodes()).find((n) => n.name === 'alpha')!;
    const oldPolicy = (await old.request('GET', '/api/v1/admin/policy', undefined, true)).body;
    await old.proc.kill('SIGTERM', 3000);

    await pg.psql('CREATE DATABASE migrated');
    const target = pg.url('migrated');
    const copy = await pinhole(['coordinator', 'migrate-db', '--from', old.db, '--to', target]);
    assert.equal(copy.code, 0, copy.stderr);
    assert.equal(copy.stdout.trim(), `copied 1 nodes, 2 auth keys, 1 coordinator key and the policy from ${old.db} to ${target}`);
    const again = await pinhole(['coordinator', 'migrate-db', '--from', old.db, '--to', target]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^pinhole coordinator migrate-db: postgres:\/\/\S+ is not empty \(1 nodes, 2 auth keys, a coordinator key, a policy\): migrate into a fresh database\n$/);
    assert.equal(await pg.psql('SELECT count(*) FROM nodes', 'migrated'), '1', 'the refused second copy changed nothing');

    // Same address and port, now on PostgreSQL: same coordinator key, the agent comes back by itself.
    const migrated = await coordinator(port, target);
    assert.equal(migrated.fingerprint, old.fingerprint);
    await waitFor('alpha to reconnect to the migrated coordinator', async () => (await alpha.status()).self?.connected === true, 30_000, 250);
    const after = (await migrated.nodes()).find((n) => n.name === 'alpha');
    assert.deepEqual({ id: after?.id, ipv4: after?.ipv4, ipv6: after?.ipv6 }, { id: before.id, ipv4: before.ipv4, ipv6: before.ipv6 });
    assert.deepEqual((await migrated.request('GET', '/api/v1/admin/policy', undefined, true)).body, oldPolicy);

    // The single-use key made on SQLite lets a new agent join on PostgreSQL; the two reach each other.
    const betaHost = await lab.addPublicHost('beta');
    const beta = await startManagedAgent(betaHost, { tun: `pg${id}b` });
    agents.push(beta);
    const join2 = await beta.cli(['up', '--coordinator', migrated.url, '--auth-key', single, '--hostname', 'beta']);
    assert.equal(join2.code, 0, join2.stderr);
    const betaIp = (await beta.status()).self!.ipv4!;
    assert.notEqual(betaIp, before.ipv4);
    await waitFor('alpha to see beta', async () => (await alpha.status()).peers.some((p) => p.name === 'beta'), 20_000, 250);
    const r = await ping(alphaHost, betaIp, 3, 5);
    assert.ok(r.ok, r.output);
    assert.equal(await pg.psql("SELECT used_count FROM auth_keys WHERE NOT reusable", 'migrated'), '1');
  });

  test('bad --db values: one line, exit 1, no password echoed', async () => {
    const run = async (db: string, extra: string[] = []): Promise<string> => {
      const r = await pinhole(['coordinator', '--listen', `${coordHost.ip}:0`, '--db', db, ...extra]);
      assert.equal(r.code, 1, `${db}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr.split('\n').length, 2, `one line: ${r.stderr}`);
      return r.stderr.trim();
    };
    const wrong = join(tmp, 'wrong-password');
    await writeFile(wrong, 'not-the-password\n', { mode: 0o600 });
    const refused = `postgres://pinhole@${pg.ip}:${pg.port + 1}/burst`;
    // Each is its own process: run them together.
    const [badUrl, noHost, noDatabase, withPassword, unreachable, wrongPassword, notPostgres] = await Promise.all([
      run('postgres://pinhole@/burst'),
      run('postgres:///burst'),
      run(`postgres://pinhole@${pg.ip}:${pg.port}`),
      run(`postgres://pinhole:${PASSWORD}@${pg.ip}:${pg.port}/burst`),
      run(refused),
      run(pg.url('burst', 'pinhole_pw'), ['--db-password-file', wrong]),
      run(join(tmp, 'x.db'), ['--db-password-file', wrong]),
    ]);
    assert.equal(badUrl, 'pinhole coordinator: --db: not a valid URL: expected postgres://USER@HOST:PORT/DB');
    assert.equal(noHost, 'pinhole coordinator: --db: the host is missing: expected postgres://USER@HOST:PORT/DB');
    assert.equal(noDatabase, 'pinhole coordinator: --db: the database name is missing: expected postgres://USER@HOST:PORT/DB');
    assert.match(withPassword, /must not hold a password/);
    assert.ok(!withPassword.includes(PASSWORD));
    assert.equal(unreachable, `pinhole coordinator: cannot connect to PostgreSQL at ${refused}: connect ECONNREFUSED ${pg.ip}:${pg.port + 1}`);
    assert.equal(wrongPassword, `pinhole coordinator: cannot connect to PostgreSQL at ${pg.url('burst', 'pinhole_pw')}: password authentication failed for user "pinhole_pw"`);
    assert.equal(notPostgres, 'pinhole coordinator: --db-password-file goes with a postgres:// --db, not a SQLite file');

    // Without --db-password-file the password comes from a pgpass file, as for psql.
    const pgpass = join(tmp, 'pgpass');
    await writeFile(pgpass, `${pg.ip}:${pg.port}:burst:pinhole_pw:${PASSWORD}\n`, { mode: 0o600 });
    const viaPgpass = coordHost.spawn(['node', PINHOLE_BIN, 'coordinator', '--listen', `${coordHost.ip}:8099`, '--db', pg.url('burst', 'pinhole_pw')],
      { env: { PGPASSFILE: pgpass, PINHOLE_LOG_LEVEL: 'warn' } });
    try {
      await viaPgpass.waitForOutput(/pinhole coordinator key [0-9a-f]{32}/, 15_000);
    } finally {
      await viaPgpass.kill('SIGTERM', 3000);
    }

    // migrate-db checks its source before opening it: a file that is not SQLite is left as it was.
    const notDb = join(tmp, 'notes.txt');
    await writeFile(notDb, 'not a database\n', { mode: 0o644 });
    const m = await pinhole(['coordinator', 'migrate-db', '--from', notDb, '--to', pg.url('fresh')]);
    assert.equal(m.code, 1);
    assert.equal(m.stderr, `pinhole coordinator migrate-db: --from: ${notDb} is not a SQLite database\n`);
    assert.equal((await stat(notDb)).mode & 0o777, 0o644);
    assert.equal(await readFile(notDb, 'utf8'), 'not a database\n');
  });
});
