// Our schemas are on zod/mini, which loads no locale by itself: without proto/zod-locale.ts every
// refusal would read "Invalid input". These are the texts zod's classic API gave, which the
// coordinator's 400s, the local API and the config and policy file errors show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Endpoint, Hostname, NodeId, RegisterRequest, describeZodError } from '../../proto/control/schemas.js';
import { DnsConfig } from '../../proto/dns/dns-config.js';

function firstProblem(schema: { safeParse(v: unknown): { success: boolean; error?: Parameters<typeof describeZodError>[0] } }, value: unknown): string {
  const r = schema.safeParse(value);
  assert.equal(r.success, false, `${JSON.stringify(value)} should be refused`);
  return describeZodError(r.error!);
}

test('schema refusals carry zod\'s English messages and our own rule texts', () => {
  assert.equal(firstProblem(Endpoint, 'x'.repeat(65)), 'Too big: expected string to have <=64 characters');
  assert.equal(firstProblem(Endpoint, 42), 'Invalid input: expected string, received number');
  assert.equal(firstProblem(Hostname, 'no spaces'), 'a hostname of letters, digits and "-"');
  assert.equal(firstProblem(NodeId, 1.5), 'Invalid input: expected int, received number');
  assert.equal(firstProblem(NodeId, 0), 'Too small: expected number to be >0');
  assert.equal(firstProblem(DnsConfig, { domain: 'pinhole.internal', routes: 'x' }), 'routes: Invalid input: expected array, received string');
});

test('strict messages name the unknown key', () => {
  const key = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
  const ok = { nodeKey: key, discoKey: key, hostname: 'laptop' };
  assert.equal(RegisterRequest.safeParse(ok).success, true);
  assert.equal(firstProblem(RegisterRequest, { ...ok, admin: true }), 'Unrecognized key: "admin"');
});
