// The local API as a user on the node meets it: real `pinhole agent` processes (started under
// umask 000) and the real CLI run as root and as `nobody` with chosen groups (setpriv). The
// socket is 0600 (0660 with --operator-group), a crashed agent's socket is replaced and a live
// one is not, a loose directory is refused, and only root or the admin group change state.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createLab, type Host, type Lab, type LabProcess } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { localApiCall } from '../../agent/localapi/client.js';
import type { AgentStatus } from '../../agent/static/status.js';

const run = promisify(execFile);
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534'];

interface CliResult { code: number; stdout: string; stderr: string }

/** The one line a failing command printed, asserting it printed exactly one. */
function oneLine(r: CliResult): string {
  assert.notEqual(r.code, 0, `expected a failure, got: ${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
  return lines[0]!;
}

describe('local API: socket permissions and who may change what', { timeout: 180_000 }, () => {
  const id = runId();
  const ops = `phops${id}`;
  const adm = `phadm${id}`;
  const groupsMade: string[] = [];
  const procs: LabProcess[] = [];
  let lab: Lab;
  let host: Host;
  let coord: LabCoordinator;
  let dir: string;
  let sock: string;

  /** `pinhole agent` under umask 000, with its socket at `socket`. */
  function spawnAgent(socket: string, stateDir: string, tun: string, flags: string[] = []): LabProcess {
    const argv = ['node', PINHOLE_BIN, '--socket', socket, 'agent', '--state-dir', stateDir, '--tun', tun,
      '--resolv-conf', join(dir, 'resolv.conf'), ...flags];
    const p = host.spawn(['sh', '-c', 'umask 000; exec "$@"', 'sh', ...argv], { env: { PINHOLE_LOG_LEVEL: 'warn' } });
    procs.push(p);
    return p;
  }

  async function startAgent(flags: string[]): Promise<LabProcess> {
    const p = spawnAgent(sock, join(dir, 'state'), `la${id}`, flags);
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        await localApiCall<AgentStatus>(sock, 'GET', '/v0/status');
        return p;
      } catch (err) {
        if (!p.running || Date.now() > deadline) throw new Error(`agent did not start: ${p.output.trim() || String(err)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** The real CLI against the agent's socket, as root (user null) or as nobody with these groups. */
  async function cli(groups: string[] | null, args: string[]): Promise<CliResult> {
    const as = groups === null ? [] : [...NOBODY, groups.length > 0 ? `--groups=${groups.join(',')}` : '--clear-groups'];
    const r = await host.exec([...as, 'node', PINHOLE_BIN, '--socket', sock, ...args], { timeoutMs: 30_000 });
    return { code: r.code ?? 1, stdout: r.stdout, stderr: r.stderr };
  }

  before(async () => {
    lab = await createLab({ name: 'lapi' });
    host = await lab.addPublicHost('node');
    coord = await startCoordinator(host);
    for (const g of [ops, adm]) {
      await run('groupadd', ['--system', g]);
      groupsMade.push(g);
    }
    dir = await mkdtemp(join(tmpdir(), 'pinhole-lapi-'));
    await chmod(dir, 0o755); // nobody must reach the socket's directory; the socket's own mode decides
    sock = join(dir, 'run', 'agent.sock');
  });

  after(async () => {
    for (const p of procs) await p.kill('SIGTERM', 3000).catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    for (const g of groupsMade) await run('groupdel', [g]).catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
    await lab?.destroy();
  });

  test('under umask 000 the socket is 0600 in a directory created 0755; a user without a group gets one line from the kernel’s refusal', async () => {
    await startAgent([]);
    const s = await stat(sock);
    assert.equal(s.mode & 0o7777, 0o600);
    assert.deepEqual([s.uid, s.gid], [0, 0]);
    assert.equal((await stat(join(dir, 'run'))).mode & 0o7777, 0o755);

    const key = await coord.createAuthKey();
    const up = await cli(null, ['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', 'node']);
    assert.equal(up.code, 0, up.stderr);

    for (const args of [['up', '--coordinator', coord.url, '--auth-key', key], ['up', '--exit-node', 'node'], ['down'], ['status']]) {
      const line = oneLine(await cli([], args));
      assert.equal(line, `pinhole: cannot reach the pinhole agent at ${sock}: permission denied: the socket admits root only (the agent was started without --operator-group or --admin-group)`);
    }
    assert.equal((await localApiCall<AgentStatus>(sock, 'GET', '/v0/status')).self?.state, 'up', 'the refused calls changed nothing');
  });

  test('a crashed agent’s socket is replaced, a live agent’s is not, and a loose directory is refused', async () => {
    await procs[0]!.kill('SIGKILL');
    assert.ok((await lstat(sock)).isSocket(), 'SIGKILL leaves the socket file behind');
    await startAgent(['--operator-group', ops, '--admin-group', adm]);
    const s = await stat(sock);
    assert.equal(s.mode & 0o7777, 0o660, 'still no umask window: 0660 with the operator group');
    assert.equal(s.gid, Number((await run('getent', ['group', ops])).stdout.split(':')[2]));

    const second = spawnAgent(sock, join(dir, 'state2'), `lb${id}`);
    const exit = await second.wait(15_000);
    assert.notEqual(exit.code, 0);
    assert.equal(second.stderr.trim(), `pinhole: another pinhole agent is already listening on ${sock}`);
    assert.equal((await cli(null, ['status', '--json'])).code, 0, 'the live agent still answers on its socket');

    const loose = join(dir, 'loose');
    await mkdir(loose);
    await chmod(loose, 0o777);
    const third = spawnAgent(join(loose, 'agent.sock'), join(dir, 'state3'), `lc${id}`);
    assert.notEqual((await third.wait(15_000)).code, 0);
    assert.equal(third.stderr.trim(),
      `pinhole: refusing to put the local API socket in ${loose}: ${loose} is writable by its group without the sticky bit (chmod go-w ${loose})`);
  });

  test('an operator reads status but cannot up, change the exit node, down or log out; others are refused by the kernel', async () => {
    const status = await cli([ops], ['status', '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal((JSON.parse(status.stdout) as AgentStatus).self?.name, 'node');
    assert.equal((await cli([ops], ['ip', '-4'])).code, 0);

    for (const args of [['up'], ['up', '--exit-node', 'node'], ['up', '--coordinator', coord.url, '--auth-key', 'x'], ['down'], ['logout']]) {
      const verb = args[0]!;
      assert.equal(oneLine(await cli([ops], args)), `pinhole: ${verb} needs root or membership in group ${adm}`, args.join(' '));
    }
    assert.equal(oneLine(await cli([], ['status'])),
      `pinhole: cannot reach the pinhole agent at ${sock}: permission denied: the socket admits root and members of group ${ops}`);
    const after = await localApiCall<AgentStatus>(sock, 'GET', '/v0/status');
    assert.equal(after.self?.state, 'up', 'nothing the operator tried changed the node');
  });

  test('a member of the admin group takes the node down and brings it back up', async () => {
    const down = await cli([ops, adm], ['down']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /^down: tunnel removed, still registered$/m);
    assert.notEqual((await localApiCall<AgentStatus>(sock, 'GET', '/v0/status')).self?.state, 'up');
    const up = await cli([ops, adm], ['up']);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, new RegExp(`^up: la${id} is `, 'm'));
    assert.equal((await localApiCall<AgentStatus>(sock, 'GET', '/v0/status')).self?.state, 'up');
  });
});
