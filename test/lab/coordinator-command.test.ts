// `pinhole coordinator` on the command line: bad flags are one line on stderr and a non-zero exit;
// a good start prints where it listens.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';

function pinhole(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PINHOLE_BIN, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('pinhole coordinator flags', () => {
  test('bad flags: one line on stderr, non-zero exit, nothing started', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pinhole-coord-flags-'));
    try {
      const db = join(dir, 'c.db');
      const emptyToken = join(dir, 'empty');
      await writeFile(emptyToken, '\n');
      const cases: [string[], RegExp][] = [
        [['--listen', 'nowhere', '--db', db], /--listen: expected HOST:PORT/],
        [['--listen', '127.0.0.1:0', '--db', db, '--node-key-expiry', '10 days'], /--node-key-expiry: not a duration/],
        [['--listen', '127.0.0.1:0', '--db', db, '--relay', 'no-url'], /--relay: expected NAME=URL/],
        [['--listen', '127.0.0.1:0', '--db', db, '--admin-token-file', join(dir, 'missing')], /--admin-token-file: cannot read .*ENOENT/],
        [['--listen', '127.0.0.1:0', '--db', db, '--admin-token-file', emptyToken], /must hold one token/],
        // A missing folder is created (0700); a path through a file cannot be.
        [['--listen', '127.0.0.1:0', '--db', join(emptyToken, 'c.db')], /--db: cannot create the folder of .*(ENOTDIR|EEXIST)/],
        [['--listen', '127.0.0.1:0', '--db', db, '--tls-cert', emptyToken], /--tls-cert and --tls-key go together/],
        [['--listen', '127.0.0.1:0', '--db', db, '--max-register-rate', '0'], /--max-register-rate: expected a positive number/],
        [['--db', db], /required option '--listen/],
      ];
      for (const [args, reason] of cases) {
        const r = await pinhole(['coordinator', ...args]);
        assert.notEqual(r.code, 0, args.join(' '));
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, reason);
        assert.equal(r.stdout, '');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a second coordinator on the same database is refused; after kill -9 the lock is taken over', async () => {
    const first = await CoordinatorProcess.start();
    try {
      const r = await pinhole(['coordinator', '--listen', '127.0.0.1:0', '--db', first.dbPath]);
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim(), `pinhole coordinator: database ${first.dbPath} is in use by another coordinator (pid ${first.pid})`);
      await first.kill9();
      await first.launch();
      assert.equal((await first.call('GET', '/api/v1/server')).status, 200);
    } finally {
      await first.destroy();
    }
  });
});
