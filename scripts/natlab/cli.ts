// natlab command line: bring a topology up until Ctrl-C, run the coturn self-test, or clean up.
//   node dist/scripts/natlab/cli.js up --site a:symmetric --site b:full-cone,double --public relay:2 [--hosts 2]
//   node dist/scripts/natlab/cli.js selftest
//   node dist/scripts/natlab/cli.js cleanup RUNID     # after a SIGKILLed run left namespaces behind
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createLab } from './lab.js';
import { deleteNamespace, listNamespaces, namespacePids } from './namespace.js';
import { isNatBehaviour } from './nat-rules.js';
import type { SiteOptions } from './site.js';
import { formatSelftestTable, runNatSelftest } from './selftest.js';

const USAGE = `usage:
  natlab up [--site NAME:NAT[,double][,udp-blocked][,loss=PCT][,delay=MS]]... [--public NAME[:IPS]]... [--hosts N]
      NAT: none | full-cone | restricted-cone | port-restricted-cone | symmetric
  natlab selftest          classify every NAT behaviour with coturn's turnutils_natdiscovery
  natlab cleanup RUNID     kill processes in and delete namespaces nl-*RUNID* left by a killed run`;

/** Parses `a:symmetric,double,udp-blocked,loss=10,delay=20`. */
export function parseSiteSpec(spec: string): { name: string; opts: SiteOptions } {
  const m = spec.match(/^([^:]+):([^,]+)((?:,[^,]+)*)$/);
  if (!m || !isNatBehaviour(m[2]!)) throw new Error(`bad --site ${JSON.stringify(spec)}`);
  const opts: SiteOptions = { nat: m[2] };
  for (const flag of m[3]!.split(',').filter(Boolean)) {
    const [k, v] = flag.split('=');
    if (k === 'double') opts.doubleNat = true;
    else if (k === 'udp-blocked') opts.udpBlocked = true;
    else if ((k === 'loss' || k === 'delay') && v !== undefined && Number.isFinite(Number(v))) {
      opts.netem = { ...opts.netem, [k === 'loss' ? 'lossPct' : 'delayMs']: Number(v) };
    } else throw new Error(`bad --site flag ${JSON.stringify(flag)}`);
  }
  return { name: m[1]!, opts };
}

async function up(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { site: { type: 'string', multiple: true }, public: { type: 'string', multiple: true }, hosts: { type: 'string' } },
  });
  const sites = (values.site ?? []).map(parseSiteSpec);
  const hosts = Number(values.hosts ?? 1);
  if (!Number.isInteger(hosts) || hosts < 0 || hosts > 250) throw new Error('--hosts must be 0..250');
  const lab = await createLab();
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  try {
    for (const spec of values.public ?? []) {
      const [name, ips] = spec.split(':');
      await lab.addPublicHost(name!, { ips: ips === undefined ? 1 : Number(ips) });
    }
    for (const { name, opts } of sites) {
      const site = await lab.addSite(name, opts);
      for (let i = 1; i <= hosts; i++) await site.addHost(`h${i}`);
    }
    process.stdout.write(`${lab.describe()}\n\nrun commands with: ip netns exec NAMESPACE COMMAND\nCtrl-C tears the lab down.\n`);
    const keepAlive = setInterval(() => {}, 1 << 30); // signal listeners alone do not keep node running
    await stopped;
    clearInterval(keepAlive);
  } finally {
    await lab.destroy();
  }
  process.stdout.write(`natlab ${lab.id} torn down\n`);
  return 0;
}

async function selftest(): Promise<number> {
  const lab = await createLab({ name: 'selftest' });
  try {
    const rows = await runNatSelftest(lab);
    process.stdout.write(`${formatSelftestTable(rows)}\n`);
    for (const r of rows.filter((x) => !x.pass)) process.stderr.write(`--- ${r.nat}: natdiscovery output ---\n${r.raw}\n`);
    return rows.every((r) => r.pass) ? 0 : 1;
  } finally {
    await lab.destroy();
  }
}

async function cleanup(runId: string | undefined): Promise<number> {
  if (!runId || !/^[a-z0-9]{6}$/.test(runId)) throw new Error('cleanup needs the 6-character run id');
  const mine = (await listNamespaces()).filter((ns) => ns.startsWith('nl-') && ns.split('-').includes(runId));
  let killed = 0;
  for (const ns of mine) {
    for (const pid of await namespacePids(ns)) {
      try { process.kill(pid, 'SIGKILL'); killed++; } catch { /* gone */ }
    }
    await deleteNamespace(ns);
  }
  process.stdout.write(`deleted ${mine.length} namespace(s), killed ${killed} process(es)\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'up') return up(rest);
  if (cmd === 'selftest') return selftest();
  if (cmd === 'cleanup') return cleanup(rest[0]);
  process.stderr.write(`${USAGE}\n`);
  return cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`natlab: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
