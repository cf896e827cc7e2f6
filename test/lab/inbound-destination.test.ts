// A peer cannot use a pinhole node as a router. The hostile member is stock wireguard-go with
// AllowedIPs of its choosing: it routes the victim's LAN (and an IPv6 prefix, and another
// address of the victim's overlay /24) into the tunnel toward a static-mode victim whose
// namespace forwards (ip_forward=1) and has a leg on a LAN with a UDP echo server on it. Nothing
// reaches the LAN host, the victim counts every such packet as drops.notForUs, and the member
// still reaches the victim's own overlay addresses — in the native data path and in JS
// (PINHOLE_FASTPATH=0). The kernel route check shows the LAN would have been reached otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab, type Site } from '../../scripts/natlab/index.js';
import { startStaticAgent, type StaticAgent } from '../../scripts/tunnels/pinhole-static.js';
import { startWireguardGo, type WireguardGo } from '../../scripts/tunnels/wireguard-go.js';
import { newKeyPair, runId } from '../../scripts/tunnels/keys.js';
import { ping } from '../helpers/transfer.js';
import { probe, startProbeServer, waitFor, type ProbeServer } from '../helpers/routing-lab.js';

const VICTIM_IP = '100.64.7.1';
const MEMBER_IP = '100.64.7.2';
const OTHER_OVERLAY = '100.64.7.9'; // inside the victim's Address /24, but not its address
const VICTIM_IP6 = 'fd00:7:7::1';
const MEMBER_IP6 = 'fd00:7:7::2';
const FOREIGN_IP6 = 'fd00:7:8::7';
const PORT = 51207;

describe('inbound destination check: a peer cannot route through a node', { timeout: 180_000 }, () => {
  const id = runId();
  const tun = `dv${id}`;
  const wgIface = `dm${id}`;
  let lab: Lab;
  let office: Site;
  let victimHost: Host;
  let memberHost: Host;
  let lanHost: Host;
  let member: WireguardGo;
  let lanServer: ProbeServer;
  const victimKeys = newKeyPair();
  const memberKeys = newKeyPair();

  const startVictim = (env: Record<string, string>): Promise<StaticAgent> => startStaticAgent(victimHost, {
    tun, privateKey: victimKeys.privateKey, listenPort: PORT, env,
    addresses: [`${VICTIM_IP}/24`, `${VICTIM_IP6}/128`],
    peers: [{ publicKey: memberKeys.publicKey, allowedIps: [`${MEMBER_IP}/32`, `${MEMBER_IP6}/128`], endpoint: `${memberHost.ip}:${PORT}`, persistentKeepalive: 25 }],
  });

  before(async () => {
    lab = await createLab({ name: 'dst' });
    office = await lab.addSite('office', { nat: 'port-restricted-cone' });
    lanHost = await office.addHost('db');
    victimHost = await lab.addPublicHost('victim');
    memberHost = await lab.addPublicHost('member');
    // The victim has a leg on the office LAN and forwards, like a Docker host or a router.
    const port = `v${id}d`;
    await victimHost.run(['ip', 'link', 'add', 'lan1', 'type', 'veth', 'peer', 'name', port, 'netns', office.router.ns]);
    await office.router.run(['ip', 'link', 'set', port, 'master', 'lan0', 'up']);
    await victimHost.run(['ip', 'addr', 'add', `${office.lan.replace(/\.0\/24$/, '.200')}/24`, 'dev', 'lan1']);
    await victimHost.run(['ip', 'link', 'set', 'lan1', 'up']);
    await victimHost.run(['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    member = await startWireguardGo(memberHost, {
      iface: wgIface, privateKey: memberKeys.privateKey, address: `${MEMBER_IP}/32`, listenPort: PORT,
      peer: { publicKey: victimKeys.publicKey, allowedIps: [`${VICTIM_IP}/32`, `${VICTIM_IP6}/128`, office.lan, `${OTHER_OVERLAY}/32`, 'fd00:7:8::/64'] },
    });
    await memberHost.run(['ip', 'addr', 'add', `${MEMBER_IP6}/128`, 'dev', wgIface, 'nodad']);
    lanServer = await startProbeServer(lanHost, 'udp', lanHost.ip, 7300);
  });

  after(async () => {
    await lanServer?.stop().catch(() => undefined);
    await member?.stop().catch(() => undefined);
    await lab?.destroy();
  });

  for (const dataPath of ['native', 'js'] as const) {
    test(`${dataPath} data path: the LAN, another overlay address and a foreign IPv6 prefix are dropped and counted; the victim itself answers`, async () => {
      const victim = await startVictim(dataPath === 'js' ? { PINHOLE_FASTPATH: '0' } : {});
      try {
        // Without the check the kernel would forward the member's packets onto the LAN.
        const get = await victimHost.run(['ip', 'route', 'get', lanHost.ip, 'from', MEMBER_IP, 'iif', tun]);
        assert.match(get, /dev lan1/, get);

        const own = await ping(memberHost, VICTIM_IP, 3, 5);
        assert.ok(own.ok, own.output);
        const own6 = await ping(memberHost, VICTIM_IP6, 2, 5);
        assert.ok(own6.ok, own6.output);
        const before = (await victim.status()).drops.notForUs;

        assert.match(await probe(memberHost, 'udp', lanHost.ip, 7300, 1500), /^fail/);
        const lanPing = await ping(memberHost, lanHost.ip, 3, 1);
        assert.equal(lanPing.ok, false, lanPing.output);
        const other = await ping(memberHost, OTHER_OVERLAY, 2, 1);
        assert.equal(other.ok, false, other.output);
        const foreign6 = await ping(memberHost, FOREIGN_IP6, 2, 1);
        assert.equal(foreign6.ok, false, foreign6.output);

        assert.equal(lanServer.peers().length, 0, `the LAN host saw ${lanServer.peers().join(' ')}`);
        // The UDP probe (≥ 1 datagram), 3 + 2 + 2 pings: all counted.
        const st = await waitFor('the drops to be counted', async () => {
          const s = await victim.status();
          return s.drops.notForUs - before >= 8 ? s : false;
        }, 10_000);
        assert.equal(st.dataPath.native, dataPath === 'native');
        if (dataPath === 'native') assert.ok(st.dataPath.nativeRx > 0, 'the addon decrypted packets itself');
        assert.equal(st.drops.allowedIpsMismatch, 0, 'the member used its own source address');
        const text = await victim.cli(['status']);
        assert.match(text.stdout, /dropped packets: .*notForUs=\d+/);

        // And still: the victim's own address answers after all that.
        assert.ok((await ping(memberHost, VICTIM_IP, 1, 5)).ok);
      } finally {
        await victim.stop();
      }
    });
  }
});
