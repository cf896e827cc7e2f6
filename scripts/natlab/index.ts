/**
 * natlab — network topologies in Linux network namespaces for pinhole's lab tests (root needed).
 *
 *   import { createLab } from '../../scripts/natlab/index.js';
 *
 *   const lab = await createLab({ name?: 'wgtest' });        // internet namespace + bridge
 *   after(() => lab.destroy());                              // idempotent; also runs on exit/SIGINT/SIGTERM
 *   const relay = await lab.addPublicHost('relay', { ips?: 2, netem? });   // 203.0.113.10 (+ 192.0.2.10)
 *   const a = await lab.addSite('a', {
 *     nat: 'symmetric',            // 'none' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric'
 *     doubleNat?: true,            // router behind a CGN (segment 198.18.(100+N).0/24, cgnNat default port-restricted-cone)
 *     udpBlocked?: true,           // router drops outbound UDP, TCP works
 *     netem?: { lossPct: 10, delayMs: 20 },   // on the WAN link, each direction (RTT grows by 2 x delayMs)
 *     forwards?: [{ proto: 'udp', port: 51820, to?: '198.18.1.2' | host, toPort? }],  // WAN port → inside host (default .2)
 *   });
 *   const h1 = await a.addHost('h1');        // 198.18.N.2, then .3, ...; default route via 198.18.N.1
 *   await h1.exec(['ping', '-c1', relay.ip]);  // → { code, stdout, stderr }, never throws on exit code
 *   await h1.run(['ip', 'addr']);              // → stdout, throws CommandFailedError on non-zero exit
 *   const p = h1.spawn(['iperf3', '-s']);      // LabProcess: pid, stdout/stderr/output, waitForOutput(re),
 *   await p.waitForOutput(/listening/);        //   wait(ms?), kill(sig?, graceMs?), signal(sig), exited
 *   await a.setNetem({ delayMs: 50 }); await a.setNetem(null);   // change/remove impairment later
 *   await a.flushConntrack();                  // conntrack -F on the router (and CGN): mappings lost
 *   await a.addForward({ proto: 'tcp', port: 8080, to: h1 });
 *   await lab.destroy();                       // kills spawned processes (and strays in lab namespaces), deletes namespaces
 *
 *   // coturn as the reference classifier (host needs { ips: 2 }):
 *   const stun = await startCoturn(relay);     // { ips, port, proc, stop() }
 *   const d = await discoverNat(h1, stun);     // { mapping, filtering: 'endpoint-independent' | 'address-dependent'
 *                                              //   | 'address-and-port-dependent' | null, reflexive: ['ip:port'], raw }
 *
 * Hosts: `ns` (namespace name, for `ip netns exec NS` / `ip -n NS`), `ip`, `ips`, `name`, `role`.
 * Sites: `router` (a Host; ip = its WAN address), `cgn` (Host | null), `wanIp` (the site's address on
 * the internet), `lan` (198.18.N.0/24), `gateway`, `hosts`, `nat`.
 * Interfaces: public hosts and inside hosts `eth0`; routers `wan0` (internet/CGN side) and `lan0`
 * (LAN bridge). Every namespace is `nl-<runid>-...` (lab.id, lab.prefix); nothing is created in the
 * caller's namespace, so link names only need to be unique inside their own namespace.
 * Addresses: internet 203.0.113.0/24 (public hosts), 198.51.100.0/24 (site WANs), 192.0.2.0/24
 * (extra public addresses); the internet namespace is the gateway (.1 of each) and routes un-NATed
 * LANs. Nothing outside the lab ranges is reachable: the lab has no link to the machine's network.
 * NAT recipes: nat-rules.ts (restricted cone keys its filter per mapping, see there).
 * netem: this kernel has no sch_netem, so impairment is link-emulator.py (AF_PACKET, needs python3)
 * spliced into the link's bridge port while impaired; ~5 Gbit/s TCP, fine for latency/loss tests.
 * Always `after(() => lab.destroy())` in tests: a live child process keeps node from exiting, and
 * the exit/signal handlers only run once the process ends.
 */
export { createLab, Lab, LabDestroyedError, type LabOptions } from './lab.js';
export { Site, type SiteOptions, type PortForward } from './site.js';
export { PublicHost, type PublicHostOptions } from './public-host.js';
export type { Host, HostRole } from './host.js';
export { LabProcess, OutputTimeoutError, type SpawnOptions, type ExitStatus } from './process.js';
export { CommandFailedError, CommandTimeoutError, type ExecOptions, type ExecResult } from './command.js';
export { NAT_BEHAVIOURS, isNatBehaviour, type NatBehaviour } from './nat-rules.js';
export type { NetemOptions } from './netem.js';
export { listNamespaces } from './namespace.js';
export { startCoturn, discoverNat, parseNatDiscovery, StunServerStartError, type StunServer, type NatDiscovery, type RfcBehaviour } from './coturn.js';
export { runNatSelftest, formatSelftestTable, EXPECTED_CLASSIFICATION, type SelftestRow } from './selftest.js';
