// The agent's bundle does not keep function names, so a logged error's `type` comes from err.name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serializeError } from '../../agent/log.js';
import { DecodeError } from '../../proto/errors.js';

test('a logged error is typed by its name, whatever its class is called after minification', () => {
  const Kt = class extends Error { override readonly name = 'CoordinatorRefusedError'; };
  const out = serializeError(new Kt('refused: bad auth key')) as { type: string; message: string; stack: string };
  assert.equal(out.type, 'CoordinatorRefusedError');
  assert.equal(out.message, 'refused: bad auth key');
  assert.match(out.stack, /refused: bad auth key/);
  assert.equal((serializeError(new DecodeError('short', 'x')) as { type: string }).type, 'DecodeError');
  assert.equal(serializeError('not an error'), 'not an error', 'anything else is left to pino');
});
