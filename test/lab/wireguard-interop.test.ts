// pinhole ↔ wireguard-go (the Debian package, a WireGuard implementation nobody here wrote), in
// network namespaces: each side initiating, with and without a preshared key, a 50 MB TCP
// transfer whose checksum matches, and roaming in both directions.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { startStaticAgent, type StaticAgent } from '../../scripts/tunnels/pinhole-static.js';
import { startWireguardGo, type WireguardGo } from '../../scripts/tunnels/wireguard-go.js';
import { newKeyPair, newPresharedKey, runId } from '../../scripts/tunnels/keys.js';
import { ping, tcpTransfer } from '../helpers/transfer.js';

const MB50 = 50 * 1024 * 1024;
const MB20 = 20 * 1024 * 1024;
const P_IP = '100.64.1.1';
const W_IP = '100.64.1.2';

interface Pair { pinhole: StaticAgent; wg: WireguardGo; stop(): Promise<void> }

async function startPair(
  p: Host, w: Host, id: string,
  opts: { psk?: boolean; initiator: 'pinhole' | 'wireguard-go'; port: number; env?: Record<string, string> },
): Promise<Pair> {
  const pk = newKeyPair();
  const wk = newKeyPair();
  const psk = opts.psk ? newPresharedKey() : undefined;
  const wg = await startWireguardGo(w, {
    iface: `wg${id}${opts.port % 100}`, privateKey: wk.privateKey, address: `${W_IP}/32`, listenPort: opts.port,
    peer: {
      publicKey: pk.publicKey, presharedKey: psk, allowedIps: [`${P_IP}/32`],
      endpoint: opts.initiator === 'wireguard-go' ? `${p.ip}:${opts.port}` : undefined,
    },
  });
  let pinhole: StaticAgent;
  try {
    pinhole = await startStaticAgent(p, {
      tun: `ph${id}${opts.port % 100}`, privateKey: pk.privateKey, addresses: [`${P_IP}/32`], listenPort: opts.port, env: opts.env,
      peers: [{
        publicKey: wk.publicKey, presharedKey: psk, allowedIps: [`${W_IP}/32`],
        endpoint: opts.initiator === 'pinhole' ? `${w.ip}:${opts.port}` : undefined,
      }],
    });
  } catch (err) {
    await wg.stop();
    throw err;
  }
  return { pinhole, wg, stop: async () => { await pinhole.stop(); await wg.stop(); } };
}

describe('pinhole ↔ wireguard-go', { timeout: 240_000 }, () => {
  let lab: Lab;
  let p: Host;
  let w: Host;
  const id = runId();

  before(async () => {
    lab = await createLab({ name: 'wgi' });
    p = await lab.addPublicHost('p', { ips: 2 });
    w = await lab.addPublicHost('w', { ips: 2 });
  });
  after(async () => { await lab?.destroy(); });

  test('pinhole initiates, no PSK: ping and a 50 MB transfer with matching checksum', async () => {
    const pair = await startPair(p, w, id, { initiator: 'pinhole', port: 51001 });
    try {
      const r = await ping(p, W_IP);
      assert.ok(r.ok, r.output);
      const st = await pair.pinhole.status();
      assert.ok(st.handshakes.initiationsSent >= 1, 'pinhole sent the initiation');
      assert.equal(st.handshakes.responsesReceived, 1);
      const t = await tcpTransfer(w, p, W_IP, 5201, MB50);
      assert.equal(t.received.bytes, MB50);
      assert.equal(t.received.sha256, t.sent.sha256);
      const after = await pair.pinhole.status();
      assert.ok(after.peers[0]!.txBytes > MB50, 'the transfer went through the tunnel');
      // TUN offloads (on by default): the kernel handed pinhole super packets, which it cut up.
      assert.match(after.dataPath.tunOffloads, /tso4/);
      const gso = after.dataPath.tunGso;
      assert.ok(gso.superIn > 100 && gso.segmentsIn > gso.superIn && gso.badSuper === 0, `super packets cut: ${JSON.stringify(gso)}`);
    } finally { await pair.stop(); }
  });

  test('wireguard-go initiates, with PSK: ping and a 50 MB transfer the other way', async () => {
    const pair = await startPair(p, w, id, { initiator: 'wireguard-go', port: 51002, psk: true });
    try {
      const r = await ping(w, P_IP);
      assert.ok(r.ok, r.output);
      const st = await pair.pinhole.status();
      assert.ok(st.handshakes.initiationsReceived >= 1, 'wireguard-go sent the initiation');
      assert.equal(st.handshakes.initiationsSent, 0);
      assert.equal(st.peers[0]!.endpoint, `${w.ip}:51002`, 'pinhole learned the endpoint from the handshake');
      const t = await tcpTransfer(p, w, P_IP, 5202, MB50);
      assert.equal(t.received.bytes, MB50);
      assert.equal(t.received.sha256, t.sent.sha256);
      // GRO: wireguard-go's segments reached pinhole's TUN glued together.
      const gso = (await pair.pinhole.status()).dataPath.tunGso;
      assert.ok(gso.groWrites > 100 && gso.groPackets > 2 * gso.groWrites, `segments glued: ${JSON.stringify(gso)}`);
    } finally { await pair.stop(); }
  });

  test('with TUN offloads off (PINHOLE_TUN_OFFLOAD=0): a 20 MB transfer each way', async () => {
    const pair = await startPair(p, w, id, { initiator: 'pinhole', port: 51009, env: { PINHOLE_TUN_OFFLOAD: '0' } });
    try {
      assert.ok((await ping(p, W_IP)).ok);
      for (const [server, client, ip, port] of [[w, p, W_IP, 5203], [p, w, P_IP, 5204]] as const) {
        const t = await tcpTransfer(server, client, ip, port, MB20);
        assert.equal(t.received.bytes, MB20);
        assert.equal(t.received.sha256, t.sent.sha256);
      }
      const st = await pair.pinhole.status();
      assert.equal(st.dataPath.tunOffloads, '');
      assert.equal(st.dataPath.tunGso.superIn + st.dataPath.tunGso.groWrites, 0);
    } finally { await pair.stop(); }
  });

  test('a PSK mismatch never completes a handshake', async () => {
    const pair = await startPair(p, w, id, { initiator: 'pinhole', port: 51003, psk: true });
    try {
      // Replace wireguard-go's PSK for pinhole with another one.
      const other = newPresharedKey();
      await w.run(['sh', '-c', `echo ${other} > /tmp/psk-${id} && wg set wg${id}3 peer $(wg show wg${id}3 peers) preshared-key /tmp/psk-${id}; rm -f /tmp/psk-${id}`]);
      const r = await ping(p, W_IP, 2, 3);
      assert.equal(r.ok, false, 'no traffic without the right PSK');
      const st = await pair.pinhole.status();
      assert.equal(st.peers[0]!.lastHandshake, null);
    } finally { await pair.stop(); }
  });

  test('roaming: wireguard-go\'s source address changes mid-transfer and pinhole follows', async () => {
    const pair = await startPair(p, w, id, { initiator: 'wireguard-go', port: 51004 });
    try {
      assert.ok((await ping(w, P_IP)).ok);
      assert.equal((await pair.pinhole.status()).peers[0]!.endpoint, `${w.ip}:51004`);
      const [oldIp, newIp] = w.ips as [string, string];
      const t = await tcpTransfer(p, w, P_IP, 5204, MB50, async () => {
        await new Promise((r) => setTimeout(r, 150));
        // The old address disappears: wireguard-go's packets now leave from the second one.
        await w.run(['ip', 'addr', 'del', `${oldIp}/24`, 'dev', 'eth0']);
      });
      assert.equal(t.received.sha256, t.sent.sha256);
      assert.equal((await pair.pinhole.status()).peers[0]!.endpoint, `${newIp}:51004`);
      await w.run(['ip', 'addr', 'add', `${oldIp}/24`, 'dev', 'eth0']);
    } finally { await pair.stop(); }
  });

  test('roaming: pinhole\'s source address changes mid-transfer and wireguard-go follows', async () => {
    const pair = await startPair(p, w, id, { initiator: 'pinhole', port: 51005 });
    try {
      assert.ok((await ping(p, W_IP)).ok);
      const [oldIp, newIp] = p.ips as [string, string];
      const t = await tcpTransfer(w, p, W_IP, 5205, MB50, async () => {
        await new Promise((r) => setTimeout(r, 150));
        await p.run(['ip', 'addr', 'del', `${oldIp}/24`, 'dev', 'eth0']);
      });
      assert.equal(t.received.sha256, t.sent.sha256);
      const endpoints = await pair.wg.show('endpoints');
      assert.match(endpoints, new RegExp(`${newIp.replace(/\./g, '\\.')}:51005`));
      await p.run(['ip', 'addr', 'add', `${oldIp}/24`, 'dev', 'eth0']);
    } finally { await pair.stop(); }
  });
});
