// The SQLite store commits registrations that arrive together as one group (one fsync for all):
// checked on a real SQLite file with mixed outcomes in one group (test/helpers/store-contract.ts).
import { test } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteStore } from '../../coordinator/store/sqlite.js';
import { checkConcurrentRegistrations } from '../helpers/store-contract.js';

test('registrations committed together keep their own outcomes, and what was acknowledged is on disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-reggroup-'));
  try {
    await checkConcurrentRegistrations(() => SqliteStore.open(join(dir, 'coordinator.db')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
