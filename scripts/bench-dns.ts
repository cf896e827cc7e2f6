// MagicDNS benchmark: `dig` query times in a lab namespace whose resolv.conf the agent rewrote.
// Three rows of --queries queries each, alternated in rounds so the machine's load hits all alike:
//   local      a peer's name, answered by the agent at 100.100.100.100 (the bar: median <= 5 ms)
//   forwarded  another name through the agent to the host's original resolver
//   reference  the same name asked of that resolver directly (a tiny dns-packet server)
// Then the agent is stopped and the host's own lookups are checked: resolv.conf is the original
// again and a plain `dig NAME` (no @server) answers.
//
//   node dist/scripts/bench-dns.js [--queries 100]      (root; see scripts/bench-dns)
// Prints a table and writes bench/results/dns-<date>.json. dig reports whole milliseconds.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLab, type Host, type Lab, type LabProcess } from './natlab/index.js';
import { startCoordinator, type LabCoordinator } from './tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from './tunnels/pinhole-managed.js';
import { runId } from './tunnels/keys.js';
import { waitFor } from './tunnels/wait-for.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { writeBenchReport, runBench } from './bench-options.js';

const UPSTREAM = join(REPO_ROOT, 'dist', 'test', 'helpers', 'upstream-dns.js');
const MAGIC = '100.100.100.100';
const DOMAIN = 'pinhole.internal';
const OTHER_NAME = 'www.lab.example';
const OTHER_ANSWER = '198.51.100.53';
const BAR_MEDIAN_MS = 5;
const ROUNDS = 5;

type RowName = 'local' | 'forwarded' | 'reference';
interface Row { name: RowName; queries: number; failed: number; medianMs: number; p95Ms: number; maxMs: number }

function options(): { queries: number } {
  let values;
  try {
    ({ values } = parseArgs({ options: { queries: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    process.stderr.write(`bench-dns: ${(err as Error).message}\nusage: bench-dns [--queries 100]\n`);
    process.exit(2);
  }
  if (values.help) { process.stdout.write('usage: bench-dns [--queries 100]\n'); process.exit(0); }
  const queries = Number(values.queries ?? 100);
  if (!Number.isInteger(queries) || queries < ROUNDS || queries > 100_000) {
    process.stderr.write(`bench-dns: --queries: an integer in ${ROUNDS}..100000\n`);
    process.exit(2);
  }
  return { queries };
}

/** `dig -f BATCH`: one process, `count` queries; each query's "Query time" in ms (NaN: no answer). */
async function digBatch(host: Host, dir: string, server: string, name: string, expect: string, count: number): Promise<number[]> {
  const batch = join(dir, `batch-${server}-${name}`);
  await writeFile(batch, `${`@${server} ${name} A`.concat('\n').repeat(count)}`);
  const r = await host.exec(['dig', '+time=2', '+tries=1', '+noall', '+answer', '+stats', '-f', batch], { timeoutMs: 10_000 + count * 3000 });
  const times: number[] = [];
  // Each query prints its answer lines, then its stats block with "Query time".
  for (const block of r.stdout.split(/;; Query time: /).slice(1)) times.push(Number(/^(\d+) msec/.exec(block)?.[1] ?? NaN));
  const answered = r.stdout.split('\n').filter((l) => l.startsWith(name) && l.trim().endsWith(expect)).length;
  while (times.length < count) times.push(NaN);
  // Only count answers that carried the expected address.
  for (let i = answered; i < times.length; i++) times[i] = NaN;
  return times;
}

function summarize(name: RowName, times: number[]): Row {
  const ok = times.filter((t) => Number.isFinite(t)).sort((a, b) => a - b);
  const at = (q: number): number => (ok.length ? ok[Math.min(ok.length - 1, Math.floor(q * ok.length))]! : NaN);
  return { name, queries: times.length, failed: times.length - ok.length, medianMs: at(0.5), p95Ms: at(0.95), maxMs: ok.length ? ok[ok.length - 1]! : NaN };
}

async function main(): Promise<number> {
  const o = options();
  const startedAt = new Date();
  const id = runId();
  let lab: Lab | null = null;
  let coord: LabCoordinator | null = null;
  const agents: ManagedAgent[] = [];
  let upstream: LabProcess | null = null;
  const netnsDirs: string[] = [];
  const onSignal = (): void => { void lab?.destroy(); setTimeout(() => process.exit(130), 10_000).unref(); };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let rows: Row[] = [];
  let afterStop = { resolvConfRestored: false, plainLookupAnswered: false };
  try {
    lab = await createLab({ name: 'bdns' });
    const coordHost = await lab.addPublicHost('coord');
    const up = await lab.addPublicHost('upstream');
    const hostA = await lab.addPublicHost('a');
    const hostB = await lab.addPublicHost('b');
    upstream = up.spawn(['node', UPSTREAM, up.ip, '53', OTHER_ANSWER]);
    await upstream.waitForOutput(/upstream dns on/);
    coord = await startCoordinator(coordHost, {});
    const original = `# the host's own resolver (lab)\nnameserver ${up.ip}\n`;
    for (const h of [hostA, hostB]) {
      const dir = join('/etc/netns', h.ns);
      await mkdir(dir, { recursive: true });
      netnsDirs.push(dir);
      await writeFile(join(dir, 'resolv.conf'), original);
    }
    const a = await startManagedAgent(hostA, { tun: `bda${id}`.slice(0, 15), resolvConf: '/etc/resolv.conf' });
    agents.push(a);
    const b = await startManagedAgent(hostB, { tun: `bdb${id}`.slice(0, 15), resolvConf: '/etc/resolv.conf' });
    agents.push(b);
    const key = await coord.createAuthKey({ reusable: true });
    const hb = `bdnsb${id}`.slice(0, 20);
    for (const [agent, name] of [[a, `bdnsa${id}`.slice(0, 20)], [b, hb]] as const) {
      const r = await agent.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', name]);
      if (r.code !== 0) throw new Error(`up failed: ${r.stderr.trim()}`);
    }
    const bIp = (await b.status()).self!.ipv4!;
    await waitFor('a to see b in its netmap', async () => (await a.status()).peers.some((p) => p.overlayIp === bIp), 20_000);
    await waitFor('a to answer for b', async () => (await digBatch(hostA, a.dir, MAGIC, `${hb}.${DOMAIN}`, bIp, 1)).every(Number.isFinite), 10_000);

    const times: Record<RowName, number[]> = { local: [], forwarded: [], reference: [] };
    const per = Math.ceil(o.queries / ROUNDS);
    for (let round = 0; round < ROUNDS; round++) {
      const n = Math.min(per, o.queries - round * per);
      if (n <= 0) break;
      times.local.push(...await digBatch(hostA, a.dir, MAGIC, `${hb}.${DOMAIN}`, bIp, n));
      times.forwarded.push(...await digBatch(hostA, a.dir, MAGIC, OTHER_NAME, OTHER_ANSWER, n));
      times.reference.push(...await digBatch(hostA, a.dir, up.ip, OTHER_NAME, OTHER_ANSWER, n));
    }
    rows = (['local', 'forwarded', 'reference'] as const).map((k) => summarize(k, times[k]));

    // The agent stopped: the host's resolver is its own again and answers without the agent.
    await a.stop();
    agents.splice(agents.indexOf(a), 1);
    const resolvConfRestored = (await readFile(join('/etc/netns', hostA.ns, 'resolv.conf'), 'utf8')) === original;
    const plain = await hostA.exec(['dig', '+short', '+time=2', '+tries=1', OTHER_NAME, 'A'], { timeoutMs: 10_000 });
    afterStop = { resolvConfRestored, plainLookupAnswered: plain.stdout.trim() === OTHER_ANSWER };
  } finally {
    for (const agent of agents) await agent.stop().catch(() => undefined);
    await coord?.stop().catch(() => undefined);
    await upstream?.kill().catch(() => undefined);
    await lab?.destroy();
    for (const d of netnsDirs) await rm(d, { recursive: true, force: true });
  }

  const ref = rows.find((r) => r.name === 'reference')!;
  process.stdout.write('row         queries  failed  median ms  p95 ms  max ms  median / reference\n');
  for (const r of rows) {
    const ratio = ref.medianMs > 0 ? (r.medianMs / ref.medianMs).toFixed(2) : (r.medianMs === ref.medianMs ? '1.00' : 'n/a (reference 0 ms)');
    process.stdout.write(`${r.name.padEnd(11)} ${String(r.queries).padStart(7)} ${String(r.failed).padStart(7)} ${String(r.medianMs).padStart(10)} ${String(r.p95Ms).padStart(7)} ${String(r.maxMs).padStart(7)}  ${ratio}\n`);
  }
  const local = rows.find((r) => r.name === 'local')!;
  const met = local.failed === 0 && local.medianMs <= BAR_MEDIAN_MS;
  process.stdout.write(`MagicDNS median for a peer's name: ${local.medianMs} ms over ${local.queries} queries (bar <= ${BAR_MEDIAN_MS} ms: ${met ? 'met' : 'NOT met'})\n`);
  process.stdout.write(`agent stopped: resolv.conf restored ${afterStop.resolvConfRestored ? 'yes' : 'NO'}, plain lookup answered ${afterStop.plainLookupAnswered ? 'yes' : 'NO'}\n`);
  const report = {
    benchmark: 'dns',
    startedAt: startedAt.toISOString(),
    machine: { nproc: availableParallelism(), node: process.version },
    settings: {
      queries: o.queries, rounds: ROUNDS,
      topology: 'two managed agents and a coordinator on the lab internet, a dns-packet upstream resolver beside them; queries from agent a\'s namespace with dig -f (one dig process per batch)',
      resolution: 'dig reports whole milliseconds',
    },
    rows,
    afterStop,
    bars: { medianMs: { value: local.medianMs, bar: BAR_MEDIAN_MS, met } },
  };
  const file = await writeBenchReport('dns', startedAt, report);
  process.stdout.write(`wrote ${file}\n`);
  return met && afterStop.resolvConfRestored && afterStop.plainLookupAnswered ? 0 : 1;
}

runBench('bench-dns', main);
