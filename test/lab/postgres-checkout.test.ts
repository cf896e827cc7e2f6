// A real PostgreSQL restarted while pooled connections are checked out (one idle, one with a query
// in flight): with watchCheckedOut (coordinator/store/pg-checkout.ts) the cut is an error to the
// holder and the process goes on; without it (the control, in a child process), the same cut is an
// uncaught 'error' that ends the process, as it ended coordinators. Needs root (runuser).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import pg from 'pg';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';
import { watchCheckedOut } from '../../coordinator/store/pg-checkout.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres-server.js';

describe('PostgreSQL restarted under checked-out connections', () => {
  let lab: Lab | null = null;
  let srv: PostgresServer;
  let pool: pg.Pool;
  const uncaught: Error[] = [];
  const onUncaught = (err: Error): void => { uncaught.push(err); };

  before(async () => {
    lab = await createLab({ name: 'pgco' });
    srv = await startPostgres(await lab.addPublicHost('db'));
    pool = new pg.Pool({ connectionString: srv.socketUrl('postgres'), max: 4 });
    pool.on('error', () => undefined); // idle clients: the pool's own concern
    process.on('uncaughtException', onUncaught);
  });

  after(async () => {
    process.off('uncaughtException', onUncaught);
    await pool?.end().catch(() => undefined);
    await srv?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('watched: the cut is an error to the holder, nothing is uncaught, and the pool works again', async () => {
    const idle = await pool.connect();
    const busy = await pool.connect();
    const watched = [watchCheckedOut(idle), watchCheckedOut(busy)];
    await idle.query('SELECT 1');
    const query = busy.query('SELECT pg_sleep(5)').then(() => 'answered', (err: Error) => `failed: ${err.message}`);
    await srv.restart();
    assert.match(await query, /^failed: /, 'the query in flight fails');
    await waitFor('both clients to report the cut', async () => watched.every((w) => w.error !== null), 5000, 50);
    for (const w of watched) w.done();
    idle.release(true);
    busy.release(true);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(uncaught.map((e) => e.message), [], 'nothing uncaught');
    await waitFor('the pool to answer again', async () => (await pool.query('SELECT 41 + 1 AS n').catch(() => null))?.rows[0]?.n === 42, 10_000, 100);
  });

  test('unwatched (the control, in a child process): the same cut ends the process', async () => {
    const script = `
      import pg from 'pg';
      const pool = new pg.Pool({ connectionString: process.argv[1], max: 2 });
      pool.on('error', () => undefined);
      const c = await pool.connect();
      await c.query('SELECT 1');
      process.stdout.write('checked out\\n');
      setTimeout(() => process.exit(0), 15000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, srv.socketUrl('postgres')], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += String(c); });
    child.stderr.on('data', (c: Buffer) => { err += String(c); });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await waitFor('the child to check out a connection', async () => out.includes('checked out'), 10_000, 50);
      await srv.restart();
      const code = await exited;
      assert.notEqual(code, 0, `exit ${code}: ${err}`);
      assert.match(err, /terminat/i, err);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
