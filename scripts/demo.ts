// pinhole demo: two sites, each behind its own NAT router with a UDP port forward, joined by a
// static pinhole tunnel. Builds the lab, starts the agents, pings across, shows `pinhole status`,
// tears everything down. Exits 0 only if the pings went through in both directions.
//
//   node dist/scripts/demo.js        (root; see scripts/demo.sh)
import { createLab, type Host, type Lab, type Site } from './natlab/index.js';
import { newKeyPair, runId } from './tunnels/keys.js';
import { startStaticAgent, wgQuickConfig, type StaticAgent, type StaticAgentSpec } from './tunnels/pinhole-static.js';

const PORT = 51820; // each host's pinhole port, forwarded 1:1 on its router
const OVERLAY = { home: '100.64.0.1', office: '100.64.0.2' } as const;

const say = (s = ''): void => { process.stdout.write(`${s}\n`); };
const heading = (n: number, s: string): void => say(`\n== ${n}. ${s} ==`);
const indent = (s: string): string => s.trimEnd().split('\n').map((l) => (l ? `  ${l}` : '')).join('\n');

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

async function main(): Promise<number> {
  const started = Date.now();
  const lab = await createLab({ name: 'demo' });
  say(`pinhole demo (natlab ${lab.prefix})`);
  const agents: StaticAgent[] = [];
  let interrupted = false;
  // natlab's own handler kills the lab's processes on a signal; ours waits for the unwind below.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\ndemo: ${sig}, tearing down\n`);
    void lab.destroy();
    setTimeout(() => process.exit(130), 10_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let ok = false;
  try {
    ok = await run(lab, agents);
  } catch (err) {
    if (!interrupted) process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  } finally {
    heading(7, 'Tearing down');
    await Promise.all(agents.map((a) => a.stop()));
    await lab.destroy();
    say(`  removed ${lab.namespaces.length} namespaces, stopped ${agents.length} agents`);
  }
  if (interrupted) return 130;
  say(`\n${ok ? 'OK: the two sites reached each other through pinhole' : 'FAILED: pings did not go through'} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return ok ? 0 : 1;
}

main().then((code) => { process.exitCode = code; }, (err) => {
  process.stderr.write(`demo: ${(err as Error).message}\n`);
  process.exitCode = 1;
});
