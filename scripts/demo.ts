// pinhole demo: two sites, each behind its own NAT router with a UDP port forward, joined by a
// static pinhole tunnel. Builds the lab, starts the agents, pings across, shows `pinhole status`,
// tears everything down. Exits 0 only if the pings went through in both directions.
//
//   node dist/scripts/demo.js        (root; see scripts/demo.sh)
import type { Host, Lab, Site } from './natlab/index.js';
import { demoMain, heading, indent, say } from './demo-runner.js';
import { newKeyPair, runId } from './tunnels/keys.js';
import { startStaticAgent, wgQuickConfig, type StaticAgent, type StaticAgentSpec } from './tunnels/pinhole-static.js';

const PORT = 51820; // each host's pinhole port, forwarded 1:1 on its router
const OVERLAY = { home: '100.64.0.1', office: '100.64.0.2' } as const;


/** The wg-quick file of one side; its peer is the other site's router, WAN address:forwarded port. */
function specFor(tun: string, self: { privateKey: string }, ip: string, peer: { publicKey: string }, peerIp: string, peerSite: Site): StaticAgentSpec {
  return {
    tun, privateKey: self.privateKey, addresses: [`${ip}/24`], listenPort: PORT,
    peers: [{ publicKey: peer.publicKey, allowedIps: [`${peerIp}/32`], endpoint: `${peerSite.wanIp}:${PORT}`, persistentKeepalive: 25 }],
  };
}

async function ping(from: Host, to: string): Promise<boolean> {
  const r = await from.exec(['ping', '-n', '-c', '3', '-i', '0.3', '-W', '2', to], { timeoutMs: 15_000 });
  say(indent(r.stdout || r.stderr));
  return r.code === 0;
}

async function run(lab: Lab, agents: StaticAgent[]): Promise<boolean> {
  heading(1, 'Lab: two sites, each behind a NAT router');
  const home = await lab.addSite('home', { nat: 'port-restricted-cone', forwards: [{ proto: 'udp', port: PORT }] });
  const office = await lab.addSite('office', { nat: 'full-cone', forwards: [{ proto: 'udp', port: PORT }] });
  const h1 = await home.addHost('laptop');
  const h2 = await office.addHost('server');
  say(indent(lab.describe()));

  heading(2, 'Keys and wg-quick configs (private keys hidden)');
  const id = runId();
  const [k1, k2] = [newKeyPair(), newKeyPair()];
  const spec1 = specFor(`ph${id}h`, k1, OVERLAY.home, k2, OVERLAY.office, office);
  const spec2 = specFor(`ph${id}o`, k2, OVERLAY.office, k1, OVERLAY.home, home);
  for (const [name, spec] of [['home/laptop', spec1], ['office/server', spec2]] as const) {
    say(`  # ${name}: ${spec.tun}.conf`);
    say(indent(wgQuickConfig(spec).replace(/^PrivateKey = .*$/m, 'PrivateKey = (hidden)')));
    if (spec === spec1) say();
  }

  heading(3, 'Starting the pinhole agents');
  for (const [host, spec] of [[h1, spec1], [h2, spec2]] as const) {
    const agent = await startStaticAgent(host, spec);
    agents.push(agent);
    say(`  ${host.name}: pinhole agent running (pid ${agent.proc.pid}, tun ${spec.tun}, ${spec.addresses[0]}, UDP ${PORT})`);
  }

  heading(4, `Ping across the tunnel: laptop ${OVERLAY.home} -> server ${OVERLAY.office}`);
  const there = await ping(h1, OVERLAY.office);
  heading(5, `Ping back: server ${OVERLAY.office} -> laptop ${OVERLAY.home}`);
  const back = await ping(h2, OVERLAY.home);

  heading(6, 'pinhole status (the real CLI) on both agents');
  for (const [i, agent] of agents.entries()) {
    const r = await agent.cli(['status']);
    if (i > 0) say();
    say(`  # ${agent.host.name}$ pinhole status`);
    say(indent(r.code === 0 ? r.stdout : `exit ${r.code}: ${r.stderr}`));
  }
  return there && back;
}

const agents: StaticAgent[] = [];
demoMain({
  labName: 'demo',
  title: 'pinhole demo',
  teardownStep: 7,
  run: (lab) => run(lab, agents),
  teardown: async (lab) => {
    await Promise.all(agents.map((a) => a.stop()));
    return `removed ${lab.namespaces.length} namespaces, stopped ${agents.length} agents`;
  },
  okText: 'the two sites reached each other through pinhole',
  failText: 'pings did not go through',
});
