// The control plane under a hostile network, with real processes in one lab: a coordinator, a relay
// that looks members up, an admin on another host, two agents (one forced onto the relay).
//  1. A capture of the whole session on the internet bridge holds no auth key, no admin token, no
//     hostname and no overlay address in the clear (and does hold the control upgrade, so it saw it).
//  2. An impostor coordinator (a copy of the real database with its own key) behind a DNAT: a fresh
//     agent with a real auth key refuses to enrol and writes nothing; a running agent whose stream is
//     redirected reports the mismatch and keeps its tunnel and netmap.
//  3. After `coordinator-key rotate` and `finish` on the real coordinator, the agents follow it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sqlite3 from 'sqlite3';
import { createLab, type Host, type Lab, type LabProcess } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { newLabRelayKey, relayCoordinatorArgs, startLabRelay, type LabRelay } from '../../scripts/tunnels/pinhole-relay.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';
import { ping } from '../helpers/transfer.js';

const wait = <T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> => waitFor(what, fn, ms, 250);

async function sql(db: string, statement: string): Promise<void> {
  const d = await new Promise<sqlite3.Database>((resolve, reject) => { const x = new sqlite3.Database(db, (err) => (err ? reject(err) : resolve(x))); });
  await new Promise<void>((resolve, reject) => d.run(statement, (err) => (err ? reject(err) : resolve())));
  await new Promise<void>((resolve) => d.close(() => resolve()));
}

describe('a trusted control plane on a hostile network', { timeout: 300_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coord: LabCoordinator;
  let relay: LabRelay;
  let coordHost: Host;
  let evilHost: Host;
  let adminHost: Host;
  let evil: LabProcess | null = null;
  let evilDir: string;
  const agents: Record<string, ManagedAgent> = {};
  let authKey = '';
  const names = { alpha: `trust-alpha-${id}`, beta: `trust-beta-${id}`, gamma: `trust-gamma-${id}` };

  const admin = async (args: string[], fingerprint = coord.fingerprint) => adminHost.exec(['node', PINHOLE_BIN, 'admin', '--coordinator', coord.url,
    '--coordinator-key', fingerprint, '--token-file', join(coord.dir, 'admin.token'), ...args]);
  const dnat = (h: Host, on: boolean) => on
    ? h.run(['nft', '-f', '-'], { input: `table ip trustdnat {\n  chain out {\n    type nat hook output priority -100;\n    ip daddr ${coordHost.ip} tcp dport 8080 dnat to ${evilHost.ip}:8080\n  }\n}\n` })
    : h.run(['nft', 'delete', 'table', 'ip', 'trustdnat']);

  before(async () => {
    lab = await createLab({ name: 'trust' });
    coordHost = await lab.addPublicHost('coord');
    evilHost = await lab.addPublicHost('evil');
    adminHost = await lab.addPublicHost('admin');
    const relayHost = await lab.addPublicHost('relay');
    const relayKey = newLabRelayKey();
    coord = await startCoordinator(coordHost, { extraArgs: relayCoordinatorArgs('lab', `ws://${relayHost.ip}:3340/relay`, relayKey) });
    relay = await startLabRelay(relayHost, { coordinator: { url: coord.url, fingerprint: coord.fingerprint }, key: relayKey });
    evilDir = await mkdtemp(join(tmpdir(), 'pinhole-evil-'));
  });

  after(async () => {
    for (const a of Object.values(agents)) await a.stop().catch(() => undefined);
    await evil?.kill('SIGKILL', 100).catch(() => undefined);
    await relay?.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await lab?.destroy();
    if (evilDir) await rm(evilDir, { recursive: true, force: true });
  });

  test('a whole session on the wire: no auth key, admin token, hostname or overlay address in the clear', async () => {
    const pcap = join(evilDir, 'session.pcap');
    const cap = lab.internet.host.spawn(['tcpdump', '-i', lab.internet.bridge, '-U', '-s', '0', '-w', pcap]);
    await new Promise((r) => setTimeout(r, 800));

    const created = await admin(['authkey', 'create', '--reusable']);
    assert.equal(created.code, 0, created.stderr);
    authKey = created.stdout.split('\n')[0]!.trim();
    assert.match(authKey, /^phk_[0-9a-f]{12}_[0-9a-f]{64}_[0-9a-f]{32}$/);
    assert.equal(authKey.split('_')[3], coord.fingerprint, 'the auth key names the coordinator key');

    for (const [name, env] of [['alpha', { PINHOLE_FORCE_RELAY: '1' }], ['beta', {}]] as const) {
      const a = await startManagedAgent(await lab.addPublicHost(name), { tun: `tr${id}${name[0]}`, env });
      agents[name] = a;
      const r = await a.cli(['up', '--coordinator', coord.url, '--auth-key', authKey, '--hostname', names[name]]);
      assert.equal(r.code, 0, r.stderr);
    }
    const ips = { alpha: (await agents.alpha!.status()).self!.ipv4!, beta: (await agents.beta!.status()).self!.ipv4! };
    const p = await ping(agents.alpha!.host, ips.beta, 3, 5);
    assert.ok(p.ok, p.output);
    const path = await wait('alpha sees beta over the relay', async () => (await agents.alpha!.status()).peers.find((x) => x.name === names.beta)?.path === 'relay');
    assert.ok(path);
    const listed = await admin(['nodes', 'list']);
    assert.equal(listed.code, 0, listed.stderr);
    await new Promise((r) => setTimeout(r, 500));
    await cap.kill('SIGTERM', 2000);

    const wire = await readFile(pcap);
    assert.ok(wire.length > 10_000, `captured ${wire.length} bytes`);
    assert.ok(wire.includes('pinhole-control-v1'), 'the capture holds the control channel upgrades');
    const token = (await readFile(join(coord.dir, 'admin.token'), 'utf8')).trim();
    const secrets: Record<string, string> = {
      'auth key': authKey, 'auth key secret': authKey.split('_')[2]!, 'admin token': token,
      'alpha hostname': names.alpha, 'beta hostname': names.beta, 'alpha overlay address': ips.alpha, 'beta overlay address': ips.beta,
    };
    for (const [what, text] of Object.entries(secrets)) assert.equal(wire.includes(text), false, `${what} (${text}) crossed the wire in the clear`);
  });

  test('an impostor coordinator behind a DNAT: a fresh agent refuses to enrol, a running one keeps its tunnel', async () => {
    // The impostor: a copy of the real database, with its own coordinator key.
    const db = join(evilDir, 'copy.db');
    await copyFile(coord.db, db);
    await copyFile(`${coord.db}-wal`, `${db}-wal`).catch(() => undefined);
    await sql(db, "DELETE FROM meta WHERE key IN ('server_private_key', 'next_server_private_key')");
    await writeFile(join(evilDir, 'token'), 'impostor-admin-token-0123456789\n', { mode: 0o600 });
    evil = evilHost.spawn(['node', PINHOLE_BIN, 'coordinator', '--listen', `${evilHost.ip}:8080`, '--db', db, '--admin-token-file', join(evilDir, 'token')],
      { env: { PINHOLE_LOG_LEVEL: 'warn' } });
    await evil.waitForOutput(/pinhole coordinator key [0-9a-f]{32}/, 20_000);

    const gammaHost = await lab.addPublicHost('gamma');
    const gamma = await startManagedAgent(gammaHost, { tun: `tr${id}g` });
    agents.gamma = gamma;
    await dnat(gammaHost, true);
    const before = (await readdir(gamma.stateDir)).sort();
    const r = await gamma.cli(['up', '--coordinator', coord.url, '--auth-key', authKey, '--hostname', names.gamma]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /coordinator key mismatch/);
    assert.deepEqual((await readdir(gamma.stateDir)).sort(), before, 'nothing written to the state dir');
    assert.equal((await gamma.status()).self?.state ?? 'logged-out', 'logged-out');

    // beta's stream is redirected: restart the real coordinator so beta has to reconnect.
    const beta = agents.beta!;
    await dnat(beta.host, true);
    await coord.kill9();
    await coord.start();
    const st = await wait('beta reports the key mismatch', async () => { const s = await beta.status(); return s.self?.coordinatorKeyMismatch ? s : false; });
    assert.match(st.self!.lastError ?? '', /coordinator key mismatch/);
    assert.ok(st.peers.some((x) => x.name === names.alpha), 'beta keeps its netmap');
    const text = await beta.cli(['status']);
    assert.match(text.stdout, /KEY MISMATCH/);
    const p = await ping(beta.host, (await agents.alpha!.status()).self!.ipv4!, 3, 5);
    assert.ok(p.ok, `the tunnel keeps working:\n${p.output}`);
    await dnat(beta.host, false);
    const up = await beta.cli(['up']);
    assert.equal(up.code, 0, up.stderr);
    await wait('beta back on the real coordinator', async () => { const s = await beta.status(); return s.self?.connected && !s.self.coordinatorKeyMismatch; });
  });

  test('after a key rotation on the real coordinator, the agents follow it', async () => {
    const old = coord.fingerprint;
    const rotated = await admin(['coordinator-key', 'rotate', '--json']);
    assert.equal(rotated.code, 0, rotated.stderr);
    const next = JSON.parse(rotated.stdout).next.fingerprint as string;
    assert.notEqual(next, old);
    for (const name of ['alpha', 'beta']) {
      await wait(`${name} pins the next key`, async () => (await agents[name]!.status()).self?.coordinatorKey === next, 45_000);
    }
    const finished = await admin(['coordinator-key', 'finish']);
    assert.equal(finished.code, 0, finished.stderr);
    assert.equal((await admin(['nodes', 'list'], old)).code !== 0, true, 'the old key is gone');
    assert.equal((await admin(['nodes', 'list'], next)).code, 0);
    for (const name of ['alpha', 'beta']) {
      await wait(`${name} connected under the new key`, async () => { const s = await agents[name]!.status(); return s.self?.connected && s.self.coordinatorKey === next; }, 45_000);
    }
  });
});
