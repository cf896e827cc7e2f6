// pinhole mesh demo: a coordinator and three agents on one network segment. An admin creates an
// auth key, each agent joins with `pinhole up`, every pair pings over the overlay, one agent
// shows `pinhole status`, everything is torn down. Exits 0 only if every pair could ping.
//
//   node dist/scripts/demo-mesh.js        (root: it builds network namespaces)
import type { Host, Lab } from './natlab/index.js';
import { demoMain, heading, indent, say } from './demo-runner.js';
import { runId } from './tunnels/keys.js';
import { startCoordinator, type LabCoordinator } from './tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from './tunnels/pinhole-managed.js';

const NAMES = ['alpha', 'beta', 'gamma'] as const;


interface Node { name: string; host: Host; agent: ManagedAgent; ip: string }

async function pingPair(from: Node, to: Node): Promise<boolean> {
  const r = await from.host.exec(['ping', '-n', '-c', '3', '-i', '0.3', '-W', '2', to.ip], { timeoutMs: 15_000 });
  const summary = r.stdout.match(/(\d+) packets transmitted, (\d+) received.*\n.*= [\d.]+\/([\d.]+)\//);
  say(`  ${from.name} (${from.ip}) -> ${to.name} (${to.ip}): ${summary ? `${summary[2]}/${summary[1]} replies, avg ${summary[3]} ms` : (r.stdout || r.stderr).trim().split('\n').pop()}`);
  return r.code === 0;
}

async function run(lab: Lab, started: { coord?: LabCoordinator; agents: ManagedAgent[] }): Promise<boolean> {
  heading(1, 'Lab: a coordinator host and three agent hosts on one segment');
  const coordHost = await lab.addPublicHost('coordinator');
  const hosts = await Promise.all(NAMES.map((n) => lab.addPublicHost(n)));
  say(indent(lab.describe()));

  heading(2, 'Coordinator');
  const coord = await startCoordinator(coordHost);
  started.coord = coord;
  say(`  coordinator started: ${coord.url} (pid ${coord.proc.pid}, database ${coord.db})`);
  say(`  $ pinhole coordinator --listen ${coordHost.ip}:8080 --db coordinator.db --admin-token-file admin.token`);

  heading(3, 'Auth key, created by the admin');
  say(`  $ pinhole admin --coordinator ${coord.url} --token (admin token) authkey create --reusable`);
  const created = await coord.adminCli(['authkey', 'create', '--reusable']);
  if (created.code !== 0) throw new Error(`authkey create: ${created.stderr.trim()}`);
  const key = created.stdout.trim().split('\n')[0]!;
  say(indent(created.stdout.replace(key, `${key.slice(0, 20)}… (hidden here)`)));
  say(`  auth key created: ${key.slice(0, 20)}…`);

  heading(4, 'Agents join with `pinhole up`');
  const id = runId();
  const nodes: Node[] = [];
  for (const [i, name] of NAMES.entries()) {
    const agent = await startManagedAgent(hosts[i]!, { tun: `pm${id}${name[0]}` });
    started.agents.push(agent);
    say(`  # ${name} (${hosts[i]!.ip}): pinhole agent --state-dir … --tun ${agent.tun}   (pid ${agent.proc.pid})`);
    say(`  ${name}$ pinhole up --coordinator ${coord.url} --auth-key ${key.slice(0, 20)}… --hostname ${name}`);
    const r = await agent.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', name]);
    say(indent(r.stdout + r.stderr));
    if (r.code !== 0) return false;
    nodes.push({ name, host: hosts[i]!, agent, ip: (await agent.status()).self!.ipv4! });
  }
  // The first agents learn about the later ones from netmap deltas.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const counts = await Promise.all(nodes.map(async (n) => (await n.agent.status()).peers.length));
    if (counts.every((c) => c === nodes.length - 1)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  say(`  overlay addresses: ${nodes.map((n) => `${n.name} ${n.ip}`).join(', ')}`);

  heading(5, 'Pings between every pair, over the overlay');
  let ok = true;
  for (const from of nodes) {
    for (const to of nodes) if (from !== to) ok = (await pingPair(from, to)) && ok;
  }

  heading(6, `pinhole status on ${nodes[0]!.name}`);
  const st = await nodes[0]!.agent.cli(['status']);
  say(`  ${nodes[0]!.name}$ pinhole status`);
  say(indent(st.code === 0 ? st.stdout : `exit ${st.code}: ${st.stderr}`));
  return ok;
}

const started: { coord?: LabCoordinator; agents: ManagedAgent[] } = { agents: [] };
demoMain({
  labName: 'mesh',
  title: 'pinhole mesh demo',
  teardownStep: 7,
  run: (lab) => run(lab, started),
  teardown: async (lab) => {
    await Promise.all(started.agents.map((a) => a.stop().catch(() => undefined)));
    await started.coord?.stop().catch(() => undefined);
    return `stopped ${started.agents.length} agents and the coordinator, removed ${lab.namespaces.length} namespaces`;
  },
  okText: 'three nodes joined with one auth key and reached each other through pinhole',
  failText: 'not every pair could ping',
});
