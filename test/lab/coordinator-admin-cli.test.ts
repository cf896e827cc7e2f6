// `pinhole admin ...` against a real coordinator process: every subcommand in human and --json
// form, the token from --token or PINHOLE_ADMIN_TOKEN, and one-line errors with a non-zero exit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CoordinatorProcess } from '../helpers/coordinator-process.js';
import { SimulatedNode } from '../helpers/coordinator-node.js';
import { AuthKeyCreated, AuthKeyInfo, NodeInfo, RouteInfo } from '../../proto/control/schemas.js';

const CLI = fileURLToPath(new URL('../helpers/coordinator-admin-cli.js', import.meta.url));

describe('pinhole admin', () => {
  let coord: CoordinatorProcess;
  const admin = (args: string[], env: Record<string, string> = {}, withTarget = true): Promise<{ code: number; stdout: string; stderr: string }> => {
    const full = withTarget ? ['admin', '--coordinator', coord.url, '--coordinator-key', coord.fingerprint, '--token', coord.token, ...args] : ['admin', ...args];
    return new Promise((resolve) => {
      execFile(process.execPath, [CLI, ...full], { timeout: 20_000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
    });
  };
  const ok = async (args: string[]): Promise<string> => {
    const r = await admin(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.equal(r.stderr, '');
    return r.stdout;
  };
  const fails = async (args: string[], reason: RegExp, env?: Record<string, string>, withTarget = true): Promise<void> => {
    const r = await admin(args, env, withTarget);
    assert.notEqual(r.code, 0, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trim(), reason);
  };

  before(async () => { coord = await CoordinatorProcess.start(); });
  after(async () => { await coord.destroy(); });

  test('authkey create / list / revoke', async () => {
    const human = await ok(['authkey', 'create']);
    const [key, note] = human.trim().split('\n');
    assert.match(key!, /^phk_[0-9a-f]{12}_[0-9a-f]{64}_[0-9a-f]{32}$/);
    assert.match(note!, /single-use.*shown only this once/);
    const created = AuthKeyCreated.parse(JSON.parse(await ok(['authkey', 'create', '--reusable', '--ephemeral', '--expiry', '1h', '--tag', 'tag:ci', '--tag', 'tag:web', '--json'])));
    assert.deepEqual([created.reusable, created.ephemeral, created.tags], [true, true, ['tag:ci', 'tag:web']]);
    assert.ok(Math.abs(Date.parse(created.expiresAt!) - Date.now() - 3600_000) < 60_000);

    await new SimulatedNode().join(coord.url, { authKey: key!, hostname: 'cli-one' });
    const table = await ok(['authkey', 'list']);
    assert.match(table.split('\n')[0]!, /^ID\s+PREFIX\s+USE\s+EPHEMERAL\s+USER\s+TAGS\s+USED\s+EXPIRES\s+STATE$/);
    assert.match(table, new RegExp(`${key!.slice(0, 16)}\\s+single\\s+no\\s+-\\s+-\\s+1\\s+-\\s+used`));
    assert.ok(!table.includes(key!.slice(17)), 'no secret in the list');
    assert.match(await ok(['authkey', 'revoke', String(created.id)]), new RegExp(`revoked auth key ${created.id}`));
    const listed = (JSON.parse(await ok(['authkey', 'list', '--json'])) as unknown[]).map((k) => AuthKeyInfo.parse(k));
    assert.equal(listed.find((k) => k.id === created.id)!.revoked, true);
    await fails(['authkey', 'revoke', '999'], /^pinhole: no auth key with id 999$/);
    await fails(['authkey', 'create', '--expiry', 'soon'], /^pinhole: --expiry: not a duration/);
    await fails(['authkey', 'create', '--tag', 'server'], /^pinhole: --tag server: a tag is tag:NAME \(NAME: letters, digits and -, up to 60\), e\.g\. tag:web$/);
    await fails(['authkey', 'create', '--user', 'bad name'], /^pinhole: user: a user name of letters/);
  });

  test('authkey create --user: the owner is on the key and on every node it registers', async () => {
    const created = AuthKeyCreated.parse(JSON.parse(await ok(['authkey', 'create', '--reusable', '--user', 'Alice@Example.com', '--json'])));
    assert.equal(created.user, 'alice@example.com');
    assert.match(await ok(['authkey', 'create', '--user', 'bob']), /user bob, tags -; the key is shown only this once/);
    assert.match(await ok(['authkey', 'list']), new RegExp(`${created.prefix}\\s+reusable\\s+no\\s+alice@example\\.com\\s+-\\s+0`));
    const n = await new SimulatedNode().join(coord.url, { authKey: created.key, hostname: 'cli-owned' });
    assert.match(await ok(['nodes', 'list']), new RegExp(`${n.id}\\s+cli-owned\\s+alice@example\\.com\\s+`));
    const nodes = (JSON.parse(await ok(['nodes', 'list', '--json'])) as unknown[]).map((x) => NodeInfo.parse(x));
    assert.equal(nodes.find((x) => x.id === n.id)!.user, 'alice@example.com');
  });

  test('nodes list / expire / delete, by name or id', async () => {
    const key = await coord.createAuthKey({ reusable: true });
    const a = await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'cli-a' });
    const b = await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'cli-b' });
    const table = await ok(['nodes', 'list']);
    assert.match(table.split('\n')[0]!, /^ID\s+NAME\s+USER\s+IPV4\s+IPV6\s+STATUS\s+LAST SEEN\s+KEY EXPIRES\s+OS\s+VERSION\s+TAGS$/);
    assert.match(table, new RegExp(`${a.id}\\s+cli-a\\s+-\\s+${a.ipv4.replace(/\./g, '\\.')}\\s+${a.ipv6}\\s+offline`));
    const nodes = (JSON.parse(await ok(['nodes', 'list', '--json'])) as unknown[]).map((n) => NodeInfo.parse(n));
    assert.ok(nodes.some((n) => n.id === b.id && n.ipv4 === b.ipv4));

    assert.match(await ok(['nodes', 'expire', 'cli-a']), /expired node \d+ \(cli-a\)/);
    assert.match(await ok(['nodes', 'list']), /cli-a\s+-\s+\S+\s+\S+\s+expired/);
    const deleted = NodeInfo.parse(JSON.parse(await ok(['nodes', 'delete', String(b.id), '--json'])));
    assert.equal(deleted.name, 'cli-b');
    assert.ok(!(await ok(['nodes', 'list'])).includes('cli-b'));
    await fails(['nodes', 'delete', 'nobody'], /^pinhole: no node named nobody$/);
  });

  test('routes list / approve', async () => {
    const key = await coord.createAuthKey();
    const r = await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'cli-router', advertiseRoutes: ['172.16.5.0/24'] });
    assert.match(await ok(['routes', 'list']), /cli-router\s+\d+\s+172\.16\.5\.0\/24\s+no/);
    assert.match(await ok(['routes', 'approve', 'cli-router', '172.16.5.0/24']), /node cli-router: serving 172\.16\.5\.0\/24/);
    const routes = (JSON.parse(await ok(['routes', 'list', '--json'])) as unknown[]).map((x) => RouteInfo.parse(x));
    assert.deepEqual(routes.filter((x) => x.nodeId === r.id).map((x) => [x.route, x.approved]), [['172.16.5.0/24', true]]);
    await fails(['routes', 'approve', 'cli-router', '172.16.6.0/24'], /^pinhole: node cli-router does not advertise 172\.16\.6\.0\/24$/);
    assert.match(await ok(['routes', 'unapprove', 'cli-router', '172.16.5.0/24']), /^node cli-router: serving -$/m);
    const after = (JSON.parse(await ok(['routes', 'list', '--json'])) as unknown[]).map((x) => RouteInfo.parse(x));
    assert.deepEqual(after.filter((x) => x.nodeId === r.id).map((x) => [x.route, x.approved]), [['172.16.5.0/24', false]]);
    await fails(['routes', 'unapprove', 'cli-router', '172.16.5.0/24'], /^pinhole: node cli-router has no approved route 172\.16\.5\.0\/24$/);
    await fails(['routes', 'unapprove', 'cli-router', '172.16.5.1/24'], /^pinhole: .*host bits/);
  });

  test('nodes rename: unique, validated, sent to peers, kept across re-registration; OS and version in nodes list', async () => {
    const key = await coord.createAuthKey({ reusable: true });
    const mover = new SimulatedNode();
    const m = await mover.join(coord.url, { authKey: key, hostname: 'cli-mover', os: 'linux debian 12', version: '0.1.0' });
    const watcher = new SimulatedNode();
    await watcher.join(coord.url, { authKey: key, hostname: 'cli-watcher' });
    const stream = await watcher.connect(coord.url);
    try {
      await stream.waitFor('the mover in the netmap', () => stream.peers.get(m.id)?.name === 'cli-mover');
      // OS and version: shown in text and JSON; an older agent that says nothing shows '-'.
      const table = await ok(['nodes', 'list']);
      assert.match(table, new RegExp(`${m.id}\\s+cli-mover\\s.*\\s+linux debian 12\\s+0\\.1\\.0\\s+-$`, 'm'));
      assert.match(table, /cli-watcher\s.*\s+-\s+-\s+-$/m);
      const listed = (JSON.parse(await ok(['nodes', 'list', '--json'])) as unknown[]).map((x) => NodeInfo.parse(x));
      assert.deepEqual([listed.find((x) => x.id === m.id)?.os, listed.find((x) => x.id === m.id)?.version], ['linux debian 12', '0.1.0']);
      assert.equal(listed.find((x) => x.name === 'cli-watcher')?.os, null);
      // Bad OS or version: a one-line 400 and nothing registered.
      const bad = new SimulatedNode();
      const ctl = await bad.register(coord.url, { authKey: key, hostname: 'cli-bad', os: 'linux\u001b[31m' });
      assert.equal(ctl.status, 400);
      assert.match(ctl.body.error, /^os: printable text without control characters or surrounding spaces$/);
      const long = await bad.register(coord.url, { authKey: key, hostname: 'cli-bad', version: 'x'.repeat(33) });
      assert.equal(long.status, 400);
      assert.match(long.body.error, /^version: /);
      assert.ok(!(await ok(['nodes', 'list'])).includes('cli-bad'));

      // Rename: acknowledged after the commit, in the peers' netmaps at once.
      assert.match(await ok(['nodes', 'rename', 'cli-mover', 'DB-Primary']), new RegExp(`^renamed node ${m.id}: cli-mover → db-primary$`, 'm'));
      await stream.waitFor('the new name in the watcher\'s netmap', () => stream.peers.get(m.id)?.name === 'db-primary');
      assert.deepEqual(stream.violations, []);
      await fails(['nodes', 'rename', 'db-primary', 'cli-watcher'], /^pinhole: name cli-watcher is taken by node \d+$/);
      await fails(['nodes', 'rename', 'db-primary', 'bad_name'], /^pinhole: new name "bad_name": a hostname of letters, digits and "-"$/);
      const api = await coord.call('POST', `/api/v1/admin/nodes/${m.id}/rename`, { name: '-x' });
      assert.equal(api.status, 400);
      assert.match(api.body.error, /^name: a hostname of letters, digits and "-"$/);
      const renamed = NodeInfo.parse(JSON.parse(await ok(['nodes', 'rename', String(m.id), 'db-main', '--json'])));
      assert.equal(renamed.name, 'db-main');
      // The agent re-registers with its own hostname (as at every start): the admin's name stays.
      await mover.join(coord.url, { hostname: 'cli-mover', os: 'linux debian 13', version: '0.2.0' });
      const again = (JSON.parse(await ok(['nodes', 'list', '--json'])) as unknown[]).map((x) => NodeInfo.parse(x)).find((x) => x.id === m.id);
      assert.deepEqual([again?.name, again?.os, again?.version], ['db-main', 'linux debian 13', '0.2.0']);
      // The old name is free again.
      await new SimulatedNode().join(coord.url, { authKey: key, hostname: 'cli-mover' }).then((n) => assert.equal(n.name, 'cli-mover'));
    } finally {
      stream.ws.close();
    }
  });

  test('policy set / get', async () => {
    assert.match(await ok(['policy', 'get']), /no policy: every node sees every node/);
    const policy = { tags: { 'tag:ci': [] }, acls: [{ action: 'accept', src: ['tag:ci'], dst: ['*:22'] }] };
    const file = join(coord.dir, 'policy.json');
    await writeFile(file, JSON.stringify(policy));
    assert.match(await ok(['policy', 'set', file]), /policy updated: 1 ACL rule/);
    assert.deepEqual(JSON.parse(await ok(['policy', 'get'])), policy);
    assert.deepEqual(JSON.parse(await ok(['policy', 'get', '--json'])).policy, policy);
    const bad = join(coord.dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ acls: [{ action: 'accept', src: ['tag:nope'], dst: ['*:*'] }] }));
    await fails(['policy', 'set', bad], /^pinhole: \S*bad\.json:1: acls\.0\.src\.0: tag:nope is not declared under "tags"$/);
    // A hostname: refused with the hint, naming the node that holds the name now; nothing sent.
    const router = (await coord.call('GET', '/api/v1/admin/nodes')).body.nodes.find((n: { name: string }) => n.name === 'cli-router');
    await writeFile(bad, JSON.stringify({ acls: [{ action: 'accept', src: ['cli-router'], dst: ['*:*'] }] }));
    await fails(['policy', 'set', bad], new RegExp(`^pinhole: \\S*bad\\.json:1: acls\\.0\\.src\\.0: "cli-router" is a hostname; hostnames can be chosen by anyone — use user:NAME, tag:NAME or node:ID \\(cli-router is node:${router.id}\\)$`));
    await writeFile(bad, '{oops');
    await fails(['policy', 'set', bad], /not valid JSON/);
    await fails(['policy', 'set', join(coord.dir, 'missing.json')], /cannot read .*ENOENT/);
    assert.deepEqual(JSON.parse(await ok(['policy', 'get'])), policy);
  });

  test('the token from PINHOLE_ADMIN_TOKEN; errors for a bad token, no token, no coordinator', async () => {
    const viaEnv = await admin(['--coordinator', coord.url, '--coordinator-key', coord.fingerprint, 'nodes', 'list', '--json'], { PINHOLE_ADMIN_TOKEN: coord.token }, false);
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.ok(Array.isArray(JSON.parse(viaEnv.stdout)));
    await fails(['--coordinator', coord.url, '--coordinator-key', coord.fingerprint, '--token', 'wrong-token', 'nodes', 'list'], /^pinhole: bad admin token$/, {}, false);
    await fails(['--coordinator', coord.url, '--coordinator-key', coord.fingerprint, 'nodes', 'list'], /^pinhole: admin: no token/, { PINHOLE_ADMIN_TOKEN: '' }, false);
    const closedPort = await new Promise<number>((resolve) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const { port } = srv.address() as AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    const gone = `http://127.0.0.1:${closedPort}`;
    await fails(['--coordinator', gone, '--coordinator-key', coord.fingerprint, '--token', 't', 'nodes', 'list'], new RegExp(`^pinhole: cannot reach the coordinator at ${gone}: ECONNREFUSED$`), {}, false);
  });
});
