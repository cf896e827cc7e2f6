// pinhole mesh demo: a relay and a coordinator on the lab internet, and five agents each behind a
// different NAT (none, full cone, port-restricted cone, two symmetric). An admin creates an auth
// key, each agent joins with `pinhole up`, every pair pings, and a table shows which pairs went
// direct (hole punching) and which are relayed; then `pinhole status` and `pinhole ping` from one
// node. Then the open node becomes an exit node (advertised, approved by the admin) and a node
// behind a symmetric NAT fetches a page from a web server on the lab internet through it: the
// server sees the exit node's address, and the exit node has no nftables rules and forwarding
// off. Everything is torn down. Exits 0 only if every pair connected on the path the classic NAT
// traversal table predicts and the page arrived intact through the exit node.
//
//   node dist/scripts/demo-mesh.js        (root: it builds network namespaces)
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host, Lab, LabProcess } from './natlab/index.js';
import { demoMain, heading, indent, say } from './demo-runner.js';
import { runId } from './tunnels/keys.js';
import { REPO_ROOT } from './tunnels/paths.js';
import { startCoordinator, type LabCoordinator } from './tunnels/pinhole-coordinator.js';
import { startManagedAgent, type ManagedAgent } from './tunnels/pinhole-managed.js';
import { startLabRelay, type LabRelay } from './tunnels/pinhole-relay.js';
import {
  RELAY_NAME, birthdayPair, formatPairTable, probePair, waitFor, waitMeshReady, type Mesh, type MeshNode, type MeshSiteSpec, type PairResult,
} from './traversal/mesh-lab.js';
import { pingSummary } from './traversal/pair-checks.js';

const SITES: MeshSiteSpec[] = [
  { name: 'open', nat: 'none' },
  { name: 'fullcone', nat: 'full-cone' },
  { name: 'portrestr', nat: 'port-restricted-cone' },
  { name: 'sym-a', nat: 'symmetric' },
  { name: 'sym-b', nat: 'symmetric' },
];
const NAT_TEXT: Record<string, string> = {
  none: 'no NAT', 'full-cone': 'full cone', 'restricted-cone': 'restricted cone', 'port-restricted-cone': 'port-restricted cone', symmetric: 'symmetric',
};
/** The node whose `pinhole status` and `pinhole ping` are shown, and the peers it pings. */
const SHOWN = { node: 'sym-a', relayedPeer: 'sym-b', directPeer: 'open' };
/** The exit node, the node behind a symmetric NAT that uses it, and the page it fetches. */
const EXIT = { node: 'open', client: 'sym-a', port: 8000, bytes: 1024 * 1024 };
const PROBE = join(REPO_ROOT, 'dist', 'scripts', 'tunnels', 'socket-probe.js');
/** How long a pair may take to go direct before it counts as relayed. */
const SETTLE_MS = 3000;

interface Started { relay?: LabRelay; coord?: LabCoordinator; agents: ManagedAgent[]; web?: LabProcess }

async function run(lab: Lab, started: Started): Promise<boolean> {
  heading(1, 'Lab: a relay, a coordinator and a web server on the internet, five agents behind different NATs');
  const relayHost = await lab.addPublicHost('relay', { ips: 2 });
  const coordHost = await lab.addPublicHost('coordinator');
  const webHost = await lab.addPublicHost('www', { ips: 2 });
  const sites = [];
  for (const spec of SITES) {
    const site = await lab.addSite(spec.name, { nat: spec.nat });
    sites.push({ spec, site, host: await site.addHost('h') });
  }
  say(indent(lab.describe()));

  heading(2, 'Relay (DERP-style over WebSocket, plus STUN on both addresses)');
  const relay = await startLabRelay(relayHost);
  started.relay = relay;
  say(`  $ pinhole relay --open --key-file relay.key --listen ${relay.url.replace(/^ws:\/\/|\/relay$/g, '')} ${relay.stun.map((s) => `--stun ${s}`).join(' ')}`);
  say(`  relay started: ${relay.url} (pid ${relay.proc.pid}), key ${relay.key.publicKey}`);

  heading(3, 'Coordinator, publishing the relay');
  const coord = await startCoordinator(coordHost, { extraArgs: relay.coordinatorArgs(RELAY_NAME) });
  started.coord = coord;
  say(`  $ pinhole coordinator --listen ${coordHost.ip}:8080 --db coordinator.db --admin-token-file admin.token ${relay.coordinatorArgs(RELAY_NAME).join(' ')}`);
  say(`  coordinator started: ${coord.url} (pid ${coord.proc.pid}, database ${coord.db})`);

  heading(4, 'Auth key, created by the admin');
  say(`  $ pinhole admin --coordinator ${coord.url} --token (admin token) authkey create --reusable`);
  const created = await coord.adminCli(['authkey', 'create', '--reusable']);
  if (created.code !== 0) throw new Error(`authkey create: ${created.stderr.trim()}`);
  const key = created.stdout.trim().split('\n')[0]!;
  say(indent(created.stdout.replace(key, `${key.slice(0, 20)}… (hidden here)`)));
  say(`  auth key created: ${key.slice(0, 20)}…`);

  heading(5, 'Agents join with `pinhole up`');
  const id = runId();
  const nodes: MeshNode[] = [];
  for (const [i, { spec, site, host }] of sites.entries()) {
    const agent = await startManagedAgent(host, { tun: `pm${id}${i}` });
    started.agents.push(agent);
    say(`  # ${spec.name} (${host.ip}, behind ${NAT_TEXT[spec.nat]}): pinhole agent --state-dir … --tun ${agent.tun}   (pid ${agent.proc.pid})`);
    say(`  ${spec.name}$ pinhole up --coordinator ${coord.url} --auth-key ${key.slice(0, 20)}… --hostname ${spec.name}`);
    const r = await agent.cli(['up', '--coordinator', coord.url, '--auth-key', key, '--hostname', spec.name]);
    say(indent(r.stdout + r.stderr));
    if (r.code !== 0) return false;
    nodes.push({ spec, site, host, agent, ip: (await agent.status()).self!.ipv4! });
  }
  const mesh: Mesh = {
    coord, relay, nodes,
    node: (name) => nodes.find((n) => n.spec.name === name)!,
    stop: async () => {},
  };
  // The first agents learn about the later ones from netmap deltas; each picks the relay as home.
  await waitMeshReady(mesh, 30_000);
  say(`  overlay addresses: ${nodes.map((n) => `${n.spec.name} ${n.ip}`).join(', ')}`);

  heading(6, 'Every pair pings: which pairs went direct, which are relayed');
  say(`  Each pair's first packets go through relay "${RELAY_NAME}" while disco probes for a direct path`);
  say('  (hole punching); a symmetric NAT facing a port-restricted one goes direct by birthday probing,');
  say('  two symmetric NATs stay relayed.');
  const rows: PairResult[] = [];
  for (const [i, a] of nodes.entries()) {
    // A symmetric NAT facing a port-restricted one goes direct by birthday probing: seconds, not ms.
    for (const b of nodes.slice(i + 1)) rows.push(await probePair(a, b, birthdayPair(a.spec, b.spec) ? 20_000 : SETTLE_MS));
  }
  say();
  say(indent(formatPairTable(rows)));
  const direct = rows.filter((r) => r.path === 'direct').length;
  const relayed = rows.filter((r) => r.path === 'relay').length;
  const asExpected = rows.every((r) => r.firstReplyMs !== null && r.path === r.expected);
  say(`\n  ${direct} pairs direct, ${relayed} relayed; ${asExpected ? 'every pair on its expected path' : 'NOT every pair on its expected path'}`);

  say('\n  Pings both ways over the settled paths:');
  let pingsOk = true;
  for (const [i, a] of nodes.entries()) {
    for (const b of nodes.slice(i + 1)) {
      for (const [from, to] of [[a, b], [b, a]] as const) {
        const r = await pingSummary(from, to, 3, 0.2, 2);
        say(`  ${from.spec.name} (${from.ip}) -> ${to.spec.name} (${to.ip}): ${r.received}/${r.sent} replies${r.avgMs !== null ? `, avg ${r.avgMs} ms` : ''}`);
        pingsOk &&= r.received === r.sent;
      }
    }
  }

  const shown = mesh.node(SHOWN.node);
  heading(7, `pinhole status and pinhole ping on ${shown.spec.name}`);
  const st = await shown.agent.cli(['status']);
  say(`  ${shown.spec.name}$ pinhole status`);
  say(indent(st.code === 0 ? st.stdout : `exit ${st.code}: ${st.stderr}`));
  let pingCliOk = true;
  for (const [peer, want] of [[SHOWN.relayedPeer, /via relay /], [SHOWN.directPeer, /via \d+\.\d+\.\d+\.\d+:\d+ /]] as const) {
    const r = await shown.agent.cli(['ping', peer, '-c', '3']);
    say(`\n  ${shown.spec.name}$ pinhole ping ${peer} -c 3`);
    say(indent(r.stdout + r.stderr));
    pingCliOk &&= r.code === 0 && want.test(r.stdout);
  }
  const exitOk = await exitNodeStep(mesh, webHost, started);
  return asExpected && pingsOk && pingCliOk && st.code === 0 && exitOk;
}

const routeDev = async (host: Host, ip: string): Promise<string> => /\bdev (\S+)/.exec(await host.run(['ip', 'route', 'get', ip]))?.[1] ?? '?';

/** `curl` from a lab host: "STATUS BYTES SHA256", or the error. */
async function fetchPage(host: Host, url: string): Promise<{ ok: boolean; status: string; bytes: number; sha: string; error: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-demo-'));
  try {
    const file = join(dir, 'page.bin');
    const r = await host.exec(['sh', '-c', 'curl -sS --max-time 20 -o "$1" -w "%{http_code} %{size_download}\\n" "$2" && sha256sum "$1"', 'sh', file, url], { timeoutMs: 30_000 });
    const m = /^(\d{3}) (\d+)\n([0-9a-f]{64}) /.exec(r.stdout);
    return { ok: r.code === 0 && m !== null, status: m?.[1] ?? '-', bytes: Number(m?.[2] ?? 0), sha: m?.[3] ?? '-', error: (r.stderr || r.stdout).trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The server's log line for the latest request: "peer IP:PORT". */
const lastPeer = (web: LabProcess): string => [...web.stdout.matchAll(/^peer (?:::ffff:)?(\S+)$/gm)].pop()?.[1] ?? 'none';

async function exitNodeStep(mesh: Mesh, webHost: Host, started: Started): Promise<boolean> {
  const exit = mesh.node(EXIT.node);
  const client = mesh.node(EXIT.client);
  const coord = mesh.coord;
  const webIp = webHost.ips[1]!; // 192.0.2.x
  const url = `http://${webIp}:${EXIT.port}/`;
  heading(8, `Exit node: ${client.spec.name} (behind a symmetric NAT) reaches the internet through ${exit.spec.name}`);
  const web = webHost.spawn(['node', PROBE, 'serve-http', webIp, String(EXIT.port), String(EXIT.bytes)]);
  started.web = web;
  const served = (await web.waitForOutput(/^listening ([0-9a-f]{64})$/m, 10_000))![1]!;
  say(`  a web server on the internet: ${url} serves ${EXIT.bytes} bytes, sha256 ${served}`);

  say(`\n  ${client.spec.name}$ curl ${url}          # without an exit node`);
  const before = await fetchPage(client.host, url);
  say(`  HTTP ${before.status}, ${before.bytes} bytes; the server saw ${lastPeer(web)} (${client.spec.name}'s NAT, ${client.site.wanIp})`);

  say(`\n  ${exit.spec.name}$ pinhole up --advertise-exit-node`);
  const adv = await exit.agent.cli(['up', '--advertise-exit-node']);
  say(indent(adv.stdout + adv.stderr));
  say(`  $ pinhole admin ... routes approve ${exit.spec.name} 0.0.0.0/0 ::/0`);
  const approve = await coord.adminCli(['routes', 'approve', exit.spec.name, '0.0.0.0/0', '::/0']);
  say(indent(approve.stdout + approve.stderr));
  const list = await coord.adminCli(['routes', 'list']);
  say(`  $ pinhole admin ... routes list`);
  say(indent(list.stdout + list.stderr));
  if (adv.code !== 0 || approve.code !== 0) return false;

  // The approval reaches the client's netmap by a delta; until then `up --exit-node` refuses.
  say(`\n  ${client.spec.name}$ pinhole up --exit-node ${exit.spec.name}`);
  let use = await client.agent.cli(['up', '--exit-node', exit.spec.name]);
  await waitFor('the approval to reach the client', async () => {
    if (use.code !== 0) use = await client.agent.cli(['up', '--exit-node', exit.spec.name]);
    return use.code === 0;
  }, 20_000, 250).catch(() => undefined);
  say(indent(use.stdout + use.stderr));
  if (use.code !== 0) return false;
  const routed = await waitFor('the default route through the tunnel', async () => (await routeDev(client.host, webIp)) === client.agent.tun, 20_000, 100).catch(() => false);
  say(`  ${client.spec.name}$ ip route get ${webIp}   -> dev ${await routeDev(client.host, webIp)}`);

  say(`\n  ${client.spec.name}$ curl ${url}          # through the exit node`);
  const page = await fetchPage(client.host, url);
  const seen = lastPeer(web);
  const intact = page.ok && page.status === '200' && page.bytes === EXIT.bytes && page.sha === served;
  const fromExit = seen.startsWith(`${exit.host.ip}:`);
  say(page.ok ? `  HTTP ${page.status}, ${page.bytes} bytes, sha256 ${page.sha} (${page.sha === served ? 'matches the server\'s' : 'DIFFERS from the server\'s'})` : `  curl failed: ${page.error}`);
  say(`  the server saw the request from ${seen}: ${fromExit ? `${exit.spec.name}'s address (${exit.host.ip}), not ${client.spec.name}'s NAT` : `NOT ${exit.spec.name}'s address ${exit.host.ip}`}`);

  say(`\n  On ${exit.spec.name}, the userspace NAT in the agent did it: no nftables rules, no kernel forwarding`);
  const ruleset = (await exit.host.exec(['nft', 'list', 'ruleset'])).stdout.trim();
  const forward = (await exit.host.run(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim();
  say(`  ${exit.spec.name}$ nft list ruleset          -> ${ruleset === '' ? '(empty)' : `${ruleset.split('\n').length} lines`}`);
  say(`  ${exit.spec.name}$ sysctl net.ipv4.ip_forward -> ${forward}`);

  say(`\n  ${client.spec.name}$ pinhole up --exit-node ""`);
  const off = await client.agent.cli(['up', '--exit-node', '']);
  say(indent(off.stdout + off.stderr));
  const direct = await waitFor('the default route back on eth0', async () => (await routeDev(client.host, webIp)) === 'eth0', 20_000, 100).catch(() => false);
  say(`  ${client.spec.name}$ ip route get ${webIp}   -> dev ${await routeDev(client.host, webIp)}`);
  const ok = routed && intact && fromExit && ruleset === '' && forward === '0' && off.code === 0 && direct;
  say(`\n  exit node: ${ok ? 'page fetched intact through it, the server saw the exit node' : 'NOT everything worked'}`);
  return ok;
}

const started: Started = { agents: [] };
demoMain({
  labName: 'mesh',
  title: 'pinhole mesh demo',
  teardownStep: 9,
  run: (lab) => run(lab, started),
  teardown: async (lab) => {
    if (started.web?.running) await started.web.kill('SIGKILL', 100).catch(() => undefined);
    await Promise.all(started.agents.map((a) => a.stop().catch(() => undefined)));
    await started.coord?.stop().catch(() => undefined);
    await started.relay?.stop().catch(() => undefined);
    return `stopped ${started.agents.length} agents, the coordinator, the relay and the web server, removed ${lab.namespaces.length} namespaces`;
  },
  okText: 'five nodes behind five NATs joined with one auth key; every pair connected, direct or relayed as expected; a page came through the exit node intact',
  failText: 'not every pair connected on its expected path, or the exit node did not carry the page',
});
