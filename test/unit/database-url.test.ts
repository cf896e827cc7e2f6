// --db parsing: a SQLite path or postgres://USER@HOST:PORT/DB; any text gives a target or one
// DatabaseUrlError, and what may be logged never holds a password.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DatabaseUrlError, parseDatabaseTarget } from '../../coordinator/store/database-url.js';

test('postgres URLs become host, port, user, database; other text is a SQLite path', () => {
  assert.deepEqual(parseDatabaseTarget('/var/lib/pinhole/coordinator.db'), { kind: 'sqlite', path: '/var/lib/pinhole/coordinator.db' });
  assert.deepEqual(parseDatabaseTarget('postgres://pinhole@203.0.113.5:6543/mesh'), {
    kind: 'postgres',
    postgres: { host: '203.0.113.5', port: 6543, user: 'pinhole', database: 'mesh', ssl: false, display: 'postgres://pinhole@203.0.113.5:6543/mesh' },
  });
  const socket = parseDatabaseTarget('postgresql://pinhole@localhost/mesh?host=%2Frun%2Fpostgresql&sslmode=require');
  assert.equal(socket.kind, 'postgres');
  if (socket.kind === 'postgres') {
    assert.equal(socket.postgres.host, '/run/postgresql');
    assert.equal(socket.postgres.port, 5432);
    assert.deepEqual(socket.postgres.ssl, { rejectUnauthorized: false });
  }
  for (const bad of ['postgres://u:pw@h/db', 'postgres://u@h', 'postgres:///db', 'postgres://u@h/db?sslmode=maybe', 'postgres://u@h/db?host=relative', 'postgres://u@h/db?x=1', '']) {
    assert.throws(() => parseDatabaseTarget(bad), DatabaseUrlError, bad);
  }
});

test('any --db text parses or fails with DatabaseUrlError, and no password reaches the message or the display form', () => {
  const password = fc.stringMatching(/^[A-Za-z0-9]{6,20}$/);
  const text = fc.oneof(
    fc.string(),
    fc.tuple(fc.constantFrom('postgres://', 'postgresql://', 'POSTGRES://'), fc.string()).map(([a, b]) => a + b),
    fc.tuple(fc.string(), password, fc.string(), fc.string()).map(([u, p, h, d]) => `postgres://${u}:${p}@${h}/${d}`),
  );
  fc.assert(fc.property(text, (t) => {
    try {
      const target = parseDatabaseTarget(t);
      if (target.kind === 'postgres') {
        assert.ok(!new URL(target.postgres.display).password, 'display has no password');
        assert.ok(target.postgres.database.length > 0 && target.postgres.host.length > 0);
        assert.ok(Number.isInteger(target.postgres.port) && target.postgres.port >= 0 && target.postgres.port <= 65535);
      }
    } catch (err) {
      assert.ok(err instanceof DatabaseUrlError, `${JSON.stringify(t)}: ${(err as Error).name}`);
      const pw = /^postgres:\/\/[^:@/]*:([^@/]+)@/i.exec(t)?.[1];
      if (pw && pw.length >= 6) assert.ok(!(err as Error).message.includes(pw), 'the password is not echoed');
    }
  }), { numRuns: 2000 });
});
