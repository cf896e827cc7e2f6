// `pinhole agent --config-file agent.yaml` as a service runs it: the agent's flags and the `up`
// preferences in one file, the auth key in its own 0600 file. The agent joins on start with a
// single-use key, pings a peer, comes back on its registration after a restart (the spent key is
// not used again), refuses a second agent on its state dir naming the pid, and forgets the routes
// it accepted when it logs out.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, type Host, type Lab, type LabProcess } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';
import { localApiCall } from '../../agent/localapi/client.js';
import type { AgentStatus } from '../../agent/static/status.js';
import { ping } from '../helpers/transfer.js';

describe('agent --config-file: a service\'s settings in YAML', { timeout: 180_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let hostA: Host;
  let b: ManagedAgent;
  let work: string;
  let configFile: string;
  let keyFile: string;
  let socket: string;
  let daemon: LabProcess | undefined;
  const route = '198.18.77.0/24';

  const status = (): Promise<AgentStatus> => localApiCall<AgentStatus>(socket, 'GET', '/v0/status');
  const startDaemon = async (): Promise<LabProcess> => {
    const p = hostA.spawn(['node', PINHOLE_BIN, 'agent', '--config-file', configFile], { env: { PINHOLE_LOG_LEVEL: 'info' }, logFile: join(work, 'agent.log') });
    await waitFor('the config-file agent\'s local API', async () => status().then(() => true, () => {
      if (!p.running) throw new Error(`the agent exited: ${p.output.slice(-400)}`);
      return false;
    }), 15_000);
    return p;
  };
  const readLog = (): Promise<string> => readFile(join(work, 'agent.log'), 'utf8');
  const cliA = (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    hostA.exec(['node', PINHOLE_BIN, '--socket', socket, ...args], { timeoutMs: 30_000 });

  before(async () => {
    lab = await createLab({ name: 'cfgfile' });
    coord = await startCoordinator(await lab.addPublicHost('coord'));
    hostA = await lab.addPublicHost('a');
    b = await startManagedAgent(await lab.addPublicHost('b'), { tun: `cfb${id}`.slice(0, 15) });
    const bKey = await coord.createAuthKey();
    const ub = await b.cli(['up', '--coordinator', coord.url, '--auth-key', bKey, '--hostname', 'bee', '--advertise-routes', route]);
    assert.equal(ub.code, 0, ub.stderr);
    const approve = await coord.adminCli(['routes', 'approve', 'bee', route]);
    assert.equal(approve.code, 0, approve.stderr);

    work = await mkdtemp(join(tmpdir(), 'pinhole-cfg-'));
    socket = join(work, 'agent.sock');
    keyFile = join(work, 'auth.key');
    configFile = join(work, 'agent.yaml');
    await writeFile(keyFile, `${await coord.createAuthKey()}\n`, { mode: 0o644 }); // single-use
    await writeFile(configFile, [
      '# as /etc/pinhole/agent.yaml would be',
      `state-dir: ${join(work, 'state')}`,
      `socket: ${socket}`,
      `tun: ${`cfa${id}`.slice(0, 15)}`,
      `resolv-conf: ${join(work, 'resolv.conf')}`,
      'up:',
      `  coordinator: ${coord.url}`,
      `  auth-key-file: ${keyFile}`,
      '  hostname: ay',
      '  accept-routes: true',
      '',
    ].join('\n'));
  });

  after(async () => {
    if (daemon?.running) await daemon.kill('SIGTERM', 3000).catch(() => undefined);
    await b?.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
    if (work) await rm(work, { recursive: true, force: true });
  });

  test('an auth key file others can read is refused in one line, before anything starts', async () => {
    const r = await hostA.exec(['node', PINHOLE_BIN, 'agent', '--config-file', configFile], { timeoutMs: 20_000 });
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /auth-key-file .* is readable by others \(mode 644\): chmod 600 it/);
    assert.equal(existsSync(join(work, 'state')), false, 'no state dir was created');
    assert.equal(existsSync(socket), false, 'no local API socket');
  });

  test('with the key file 0600 the agent joins on start, accepts the approved route and reaches its peer', async () => {
    await chmod(keyFile, 0o600);
    daemon = await startDaemon();
    await waitFor('a to join from its config file', async () => (await status()).self?.ipv4 != null, 30_000);
    await waitFor('a to see bee', async () => (await status()).peers.some((p) => p.name === 'bee'), 20_000);
    const s = await status();
    assert.equal(s.self!.name, 'ay');
    await waitFor('a to accept bee\'s route', async () => (await status()).routing?.acceptedRoutes.includes(route) === true, 20_000);
    const r = await ping(hostA, (await b.status()).self!.ipv4!, 3, 5);
    assert.ok(r.ok, r.output);
  });

  test('a second agent on the same state dir is refused in one line naming the first one\'s pid', async () => {
    const r = await hostA.exec(['node', PINHOLE_BIN, '--socket', join(work, 'second.sock'), 'agent', '--config-file', configFile], { timeoutMs: 20_000 });
    assert.notEqual(r.code, 0);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`in use by pinhole agent pid ${daemon!.pid}\\b`));
    assert.equal(daemon!.running, true, 'the first agent is untouched');
    assert.ok((await status()).self?.ipv4, 'and still answers');
  });

  test('after a restart it comes back on its registration: the spent single-use key is not used again', async () => {
    const before = (await status()).self!.ipv4;
    await daemon!.kill('SIGTERM', 5000);
    daemon = await startDaemon();
    await waitFor('a up again', async () => (await status()).self?.ipv4 === before && (await status()).peers.some((p) => p.name === 'bee'), 30_000);
    assert.doesNotMatch(await readLog(), /joining from the config file failed/);
  });

  test('logout forgets the routes accepted from the old netmap', async () => {
    assert.ok((await status()).routing?.acceptedRoutes.includes(route));
    const r = await cliA(['logout']);
    assert.equal(r.code, 0, r.stderr);
    const s = await status();
    assert.deepEqual(s.routing?.acceptedRoutes ?? [], []);
    assert.equal(s.peers.length, 0);
  });
});
