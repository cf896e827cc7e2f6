// Coordinator replicas (docs/postgres.md): one real PostgreSQL, three coordinator processes on it
// (A, B, C, one key), two real agents that know all three URLs. A node registered through A
// reaches a peer streaming from B within a second; the NAT kind a node reports to B reaches its
// peer on A; a policy set on C (and a rename) reaches the agents on A and
// B; after kill -9 of A its agent streams from another replica within 5 s while a ping across
// never stops, and its status names the replica in use; after a PostgreSQL restart under a
// registration burst every replica applies every change id, without a gap, and holds exactly the
// database's nodes; a coordinator key rotation started on B and finished on C reaches every
// replica, and the agents follow it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { startCoordinator, type LabCoordinator } from '../../scripts/tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from '../../scripts/tunnels/pinhole-managed.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { waitFor } from '../../scripts/tunnels/wait-for.js';
import { join } from 'node:path';
import type { CoordinatorStats } from '../../proto/control/schemas.js';
import { keyFingerprint } from '../../proto/control/coordinator-key.js';
import { ping } from '../helpers/transfer.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres-server.js';
import { natTypeOf } from '../../agent/netcheck/nat-type.js';
import type { NetcheckReport } from '../../agent/netcheck/report.js';

const BURST = join(REPO_ROOT, 'dist', 'test', 'helpers', 'register-burst.js');
// The burst comes from one address: lift the per-address limits that would refuse it.
const UNLIMITED = ['--max-register-rate', '100000', '--max-handshake-rate', '100000', '--max-unauthenticated-per-address', '10000'];
const ACCEPT_ALL = { acls: [{ action: 'accept', src: ['*'], dst: ['*:*'] }] };

describe('coordinator replicas on one PostgreSQL', { timeout: 150_000 }, () => {
  const id = runId();
  let lab: Lab;
  let coordHost: Host;
  let alphaHost: Host;
  let pg: PostgresServer;
  let a: LabCoordinator;
  let b: LabCoordinator;
  let c: LabCoordinator;
  let alpha: ManagedAgent;
  let beta: ManagedAgent;
  let betaIp = '';
  let deadReplica = '';
  const stats = async (co: LabCoordinator): Promise<CoordinatorStats> => (await co.request('GET', '/api/v1/admin/stats', undefined, true)).body as CoordinatorStats;
  const peersOf = async (agent: ManagedAgent): Promise<string[]> => (await agent.status()).peers.map((p) => p.name ?? '?');

  before(async () => {
    lab = await createLab({ name: 'rep' });
    const dbHost = await lab.addPublicHost('db');
    coordHost = await lab.addPublicHost('coord');
    pg = await startPostgres(dbHost);
    await pg.psql('CREATE DATABASE replicas');
    const db = pg.url('replicas');
    // One after the other: the first generates the coordinator key, the others load it.
    a = await startCoordinator(coordHost, { port: 8081, db, extraArgs: UNLIMITED });
    [b, c] = await Promise.all([8082, 8083].map((port) => startCoordinator(coordHost, { port, db, extraArgs: UNLIMITED })));
    assert.equal(b.fingerprint, a.fingerprint);
    assert.equal(c.fingerprint, a.fingerprint);
    alphaHost = await lab.addPublicHost('alpha');
    const betaHost = await lab.addPublicHost('beta');
    [alpha, beta] = await Promise.all([
      startManagedAgent(alphaHost, { tun: `rp${id}a` }), startManagedAgent(betaHost, { tun: `rp${id}b` }),
    ]);
  });

  after(async () => {
    for (const agent of [alpha, beta]) await agent?.stop().catch(() => undefined);
    for (const co of [a, b, c]) await co?.stop().catch(() => undefined);
    await pg?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  test('a node registered through A reaches a peer streaming from B within 1 s', async () => {
    // The key is made on A; beta registers through B, which learnt it from the change feed.
    const key = await a.createAuthKey({ reusable: true });
    const upBeta = await beta.cli(['up', '--coordinator', `${b.url},${c.url},${a.url}`, '--auth-key', key, '--hostname', 'beta']);
    assert.equal(upBeta.code, 0, upBeta.stderr);
    betaIp = (await beta.status()).self!.ipv4!;
    const upAlpha = alpha.cli(['up', '--coordinator', `${a.url},${b.url},${c.url}`, '--auth-key', key, '--hostname', 'alpha']);
    let seenAt = 0;
    await waitFor('beta (streaming from B) to see alpha', async () => {
      if ((await peersOf(beta)).includes('alpha')) seenAt = Date.now();
      return seenAt > 0;
    }, 10_000, 20);
    const up = await upAlpha;
    assert.equal(up.code, 0, up.stderr);
    // createdAt is A's clock at the registration: the same clock as this process (one machine).
    const created = Date.parse((await b.nodes()).find((n) => n.name === 'alpha')!.createdAt);
    const latencyMs = seenAt - created;
    assert.ok(latencyMs < 1000, `alpha registered on A reached beta on B after ${latencyMs} ms`);
    process.stderr.write(`# registration on A to netmap of a peer on B: ${latencyMs} ms (20 ms polling)\n`);
    const [sa, sb, sc] = await Promise.all([stats(a), stats(b), stats(c)]);
    assert.deepEqual([sa.streams, sb.streams, sc.streams], [1, 1, 0], 'alpha streams from A, beta from B');
    for (const s of [sa, sb, sc]) assert.equal(s.nodes, 2);
    await waitFor('alpha to see beta online', async () => (await alpha.status()).peers.some((p) => p.name === 'beta' && p.online === true), 5000, 50);
  });

  test('the NAT kind beta reports to B reaches alpha streaming from A (liveness flush, change feed, peer patch)', async () => {
    // This lab has no relay, so no STUN server: netcheck says UDP blocked, which is a kind like any other.
    const nc = await beta.cli(['netcheck', '--json']);
    assert.equal(nc.code, 0, nc.stderr);
    const kind = natTypeOf(JSON.parse(nc.stdout) as NetcheckReport)?.kind ?? null;
    assert.notEqual(kind, null, `netcheck tells a kind: ${nc.stdout}`);
    await waitFor(`alpha to see beta's reported NAT kind (${kind})`, async () => {
      const nat = (await alpha.status()).peers.find((p) => p.name === 'beta')?.nat;
      return nat?.peer === kind && nat.peerSource === 'reported';
    }, 10_000, 50);
    for (const co of [a, b, c]) assert.equal((await co.nodes()).find((n) => n.name === 'beta')!.natKind, kind);
    process.stderr.write(`# beta's NAT kind (${kind}) reported to B reached alpha on A\n`);
  });

  test('a policy set on C reaches the agents on A and B', async () => {
    const t0 = Date.now();
    assert.equal((await c.request('PUT', '/api/v1/admin/policy', { acls: [] }, true)).status, 200);
    await waitFor('both agents to lose each other (empty policy set on C)', async () =>
      (await peersOf(alpha)).length === 0 && (await peersOf(beta)).length === 0, 5000, 20);
    const denyMs = Date.now() - t0;
    assert.equal((await c.request('PUT', '/api/v1/admin/policy', ACCEPT_ALL, true)).status, 200);
    await waitFor('both agents to see each other again', async () =>
      (await peersOf(alpha)).includes('beta') && (await peersOf(beta)).includes('alpha'), 5000, 20);
    process.stderr.write(`# policy on C to agents on A and B: ${denyMs} ms (including the admin call)\n`);
    assert.deepEqual((await a.request('GET', '/api/v1/admin/policy', undefined, true)).body, (await c.request('GET', '/api/v1/admin/policy', undefined, true)).body);
    // A rename on C reaches the peer streaming from A, and every replica's node list.
    const betaId = (await c.nodes()).find((n) => n.name === 'beta')!.id;
    assert.equal((await c.request('POST', `/api/v1/admin/nodes/${betaId}/rename`, { name: 'beta-renamed' }, true)).status, 200);
    await waitFor('alpha (streaming from A) to see beta renamed on C', async () => (await peersOf(alpha)).includes('beta-renamed'), 5000, 20);
    await waitFor('A and B to list beta renamed', async () => {
      const lists = await Promise.all([a, b].map((co) => co.nodes()));
      return lists.every((l) => l.some((n) => n.id === betaId && n.name === 'beta-renamed'));
    }, 5000, 20);
    assert.equal((await c.request('POST', `/api/v1/admin/nodes/${betaId}/rename`, { name: 'beta' }, true)).status, 200);
    await waitFor('alpha to see the old name again', async () => (await peersOf(alpha)).includes('beta'), 5000, 20);
  });

  test('kill -9 of A: alpha streams from another replica within 5 s, a ping across never stops', async () => {
    const warm = await ping(alphaHost, betaIp, 3, 5);
    assert.ok(warm.ok, warm.output);
    const pinging = alphaHost.exec(['ping', '-c', '60', '-i', '0.1', '-W', '1', betaIp], { timeoutMs: 20_000 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    deadReplica = (await stats(a)).replica!.replica;
    const killedAt = Date.now();
    await a.kill9();
    await waitFor('alpha to stream from B or C', async () => {
      const [sb, sc] = await Promise.all([stats(b), stats(c)]);
      return sb.streams + sc.streams === 2;
    }, 10_000, 50);
    const moveMs = Date.now() - killedAt;
    assert.ok(moveMs < 5000, `alpha moved after ${moveMs} ms`);
    process.stderr.write(`# kill -9 of A to alpha's stream on another replica: ${moveMs} ms\n`);
    const r = await pinging;
    const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
    assert.ok(m, r.stdout + r.stderr);
    assert.equal(m[2], m[1], `every ping across answered while A died: ${m[0]}`);
    const self = (await alpha.status()).self!;
    assert.equal(self.connected, true);
    // status names the replica the stream moved to.
    assert.ok(self.coordinatorConnectedUrl && [b.url, c.url].includes(self.coordinatorConnectedUrl), `replica in use: ${self.coordinatorConnectedUrl}`);
    assert.match((await alpha.cli(['status'])).stdout, new RegExp(`\\(connected to ${self.coordinatorConnectedUrl.replace(/[.]/g, '\\.')}\\)`));
    // B holds alpha's stream now: it says so in the database, and beta sees alpha online.
    await waitFor('beta to see alpha online', async () => (await beta.status()).peers.some((p) => p.name === 'alpha' && p.online === true), 5000, 50);
    await a.start();
  });

  test('PostgreSQL restarted under a registration burst: every replica applies every change id, no gap', async () => {
    const key = await b.createAuthKey({ reusable: true });
    const urls = [a.url, b.url, c.url].join(',');
    const burst = coordHost.exec(['node', BURST, urls, key, '150', 'load'], { timeoutMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await pg.restart();
    const first = await burst;
    assert.equal(first.code, 0, first.stderr);
    // After the restart every write works again: all of these land.
    const second = await coordHost.exec(['node', BURST, urls, key, '30', 'after'], { timeoutMs: 60_000 });
    assert.equal(second.code, 0, second.stderr);
    const results = second.stdout.trim().split('\n').map((l) => JSON.parse(l) as { status: number; error?: string });
    assert.deepEqual(results.filter((x) => x.status !== 200), [], 'registrations after the restart');
    const lastId = Number(await pg.psql("SELECT last_id FROM id_high_water WHERE name = 'changes'", 'replicas'));
    const nodes = Number(await pg.psql('SELECT count(*) FROM nodes', 'replicas'));
    await waitFor('every replica to apply up to the last change id', async () => {
      const all = await Promise.all([a, b, c].map(stats));
      return all.every((s) => s.replica!.lastApplied >= lastId && s.nodes === nodes);
    }, 10_000, 100);
    for (const [name, co] of [['A', a], ['B', b], ['C', c]] as const) {
      const s = (await stats(co)).replica!;
      assert.equal(s.gaps, 0, `${name}: no id out of order`);
      assert.equal(s.resyncs, 0, `${name}: nothing pruned before it was read`);
      assert.equal(s.lastApplied, Number(await pg.psql("SELECT last_id FROM id_high_water WHERE name = 'changes'", 'replicas')), `${name}: at the last id`);
      assert.ok(s.connected, `${name}: listening again`);
      assert.ok(s.reconnects >= 1, `${name}: its listening connection was cut and came back`);
    }
    const landed = first.stdout.trim().split('\n').filter((l) => (JSON.parse(l) as { status: number }).status === 200).length;
    process.stderr.write(`# PostgreSQL restart under a burst: ${landed}/150 registrations landed around it, ${nodes} nodes, last change id ${lastId}, no gap on A, B, C\n`);
    assert.equal((await alpha.status()).self?.connected, true);
    const r = await ping(alphaHost, betaIp, 3, 5);
    assert.ok(r.ok, r.output);
    // The replica killed in the previous test fell silent (10 s): declared dead, none of its nodes online.
    await waitFor('the killed replica to be declared dead', async () =>
      (await pg.psql(`SELECT count(*) FROM replicas WHERE id = '${deadReplica}'`, 'replicas')) === '0', 15_000, 250);
    assert.equal(await pg.psql(`SELECT count(*) FROM nodes WHERE online_by = '${deadReplica}'`, 'replicas'), '0');
    assert.equal(await pg.psql('SELECT count(*) FROM replicas', 'replicas'), '3', 'the restarted A and B, C');
    const reaped = (await Promise.all([a, b, c].map(stats))).reduce((n, s) => n + s.replica!.replicasReaped, 0);
    assert.equal(reaped, 1, 'one replica declared the dead one dead');
  });

  test('a key rotation started on B and finished on C reaches every replica, and the agents follow it', async () => {
    const fp = (b64: string | undefined): string | null => (b64 ? keyFingerprint(Buffer.from(b64, 'base64')) : null);
    const keysOf = async (co: LabCoordinator): Promise<[string | null, string | null]> => {
      const info = (await co.request('GET', '/api/v1/server')).body as { serverKey: string; nextServerKey?: string };
      return [fp(info.serverKey), fp(info.nextServerKey)];
    };
    const old = b.fingerprint;
    const rotated = await b.request('POST', '/api/v1/admin/coordinator-key/rotate', undefined, true);
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    const next = (rotated.body as { next: { fingerprint: string } }).next.fingerprint;
    assert.notEqual(next, old);
    await waitFor('A and C to answer with the next key as well', async () =>
      (await Promise.all([a, c].map(keysOf))).every(([cur, nxt]) => cur === old && nxt === next), 10_000, 100);
    // The replicas reopen the channels on the old key, as B does: alpha and beta learn and pin the next one.
    for (const agent of [alpha, beta]) await waitFor('an agent to pin the next key', async () => (await agent.status()).self?.coordinatorKey === next, 45_000, 200);
    const finished = await c.request('POST', '/api/v1/admin/coordinator-key/finish', undefined, true);
    assert.equal(finished.status, 200, JSON.stringify(finished.body));
    await waitFor('every replica to answer with the new key only', async () =>
      (await Promise.all([a, b, c].map(keysOf))).every(([cur, nxt]) => cur === next && nxt === null), 10_000, 100);
    for (const agent of [alpha, beta]) {
      await waitFor('an agent connected under the new key', async () => { const st = (await agent.status()).self; return st?.connected === true && st.coordinatorKey === next; }, 45_000, 200);
    }
  });
});
