// The native data path (agent/tun/src/fastpath.c, agent/wireguard/fast-path.ts) with real agents
// in network namespaces: ordinary traffic never enters JS, and the checks it runs instead of
// transport.ts (replay window, tag, allowed IPs) drop and count exactly as JS does. A peer that
// keeps everything in JS (PINHOLE_FASTPATH=0) interoperates with one that does not.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { startStaticPair } from '../helpers/static-pair.js';
import { ping } from '../helpers/transfer.js';
import { captureTransportMessages } from '../helpers/pcap.js';

const A_IP = '100.64.3.1';
const B_IP = '100.64.3.2';

async function startPair(a: Host, b: Host, tag: string, port: number, envB?: Record<string, string>) {
  const pair = await startStaticPair(a, b, { tunA: `na${tag}`, tunB: `nb${tag}`, ipA: A_IP, ipB: B_IP, port, envB });
  return { ...pair, tunA: `na${tag}` };
}

/**
 * Sends datagrams from `from` with source address `src:sport` (the peer's own endpoint, whose
 * port its agent holds) through a raw socket, as an on-path attacker replaying traffic would.
 */
async function sendSpoofed(from: Host, src: string, sport: number, dst: string, dport: number, payloads: Buffer[]): Promise<void> {
  const script = `
import socket, struct, sys
src, sport, dst, dport = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
for h in sys.argv[5:]:
    p = bytes.fromhex(h)
    s.sendto(struct.pack('!HHHH', sport, dport, 8 + len(p), 0) + p, (dst, 0))
`;
  await from.run(['python3', '-c', script, src, String(sport), dst, String(dport), ...payloads.map((p) => p.toString('hex'))]);
}

describe('native data path', { timeout: 240_000 }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  const id = runId();

  before(async () => {
    lab = await createLab({ name: 'ndp' });
    a = await lab.addPublicHost('a');
    b = await lab.addPublicHost('b');
  });
  after(async () => { await lab?.destroy(); });

  test('ordinary traffic is encrypted and decrypted by the addon, not JS', async () => {
    const pair = await startPair(a, b, `${id}1`, 52101);
    try {
      assert.ok((await ping(a, B_IP, 1)).ok);
      const [a0, b0] = [(await pair.a.status()).dataPath, (await pair.b.status()).dataPath];
      const r = await a.exec(['ping', '-q', '-c', '50', '-i', '0.01', '-W', '2', B_IP]);
      assert.match(r.stdout, /50 packets transmitted, 50 received/, r.stdout);
      const [sa, sb] = [await pair.a.status(), await pair.b.status()];
      assert.equal(sa.dataPath.native, true);
      assert.equal(sb.dataPath.native, true);
      // Each side sent 50 and received 50 (requests one way, replies the other), all natively.
      assert.ok(sa.dataPath.nativeTx - a0.nativeTx >= 50, `A sent natively: ${JSON.stringify(sa.dataPath)}`);
      assert.ok(sb.dataPath.nativeRx - b0.nativeRx >= 50, `B received natively: ${JSON.stringify(sb.dataPath)}`);
      assert.ok(sb.dataPath.nativeTx - b0.nativeTx >= 50 && sa.dataPath.nativeRx - a0.nativeRx >= 50, 'replies too');
      assert.equal(sa.dataPath.leftToJsOut - a0.leftToJsOut, 0, 'no echo request went through JS');
      assert.ok(sa.peers[0]!.txBytes > 50 * 96 && sb.peers[0]!.rxBytes > 50 * 96, 'per-peer byte counts include native traffic');
    } finally { await pair.stop(); }
  });

  test('a replay and a bad tag from the peer\'s own address are dropped and counted natively', async () => {
    const port = 52102;
    const pair = await startPair(a, b, `${id}2`, port);
    try {
      assert.ok((await ping(a, B_IP, 1)).ok);
      const data = await captureTransportMessages(b, port, 2, async () => { assert.ok((await ping(a, B_IP, 2)).ok); });
      assert.ok(data.length >= 1, 'captured a data packet');
      const before = await pair.b.status();
      const tampered = Buffer.from(data[0]!);
      tampered[tampered.length - 1]! ^= 0x01;
      await sendSpoofed(a, a.ip, port, b.ip, port, [data[0]!, tampered]);
      await new Promise((r) => setTimeout(r, 300));
      const st = await pair.b.status();
      assert.equal(st.drops.replay, before.drops.replay + 1, 'the replay was counted');
      assert.equal(st.drops.badTag, before.drops.badTag + 1, 'the bad tag was counted');
      assert.equal(st.dataPath.leftToJsIn, before.dataPath.leftToJsIn, 'both were judged by the native path');
      assert.ok((await ping(a, B_IP, 2)).ok, 'the tunnel still works');
    } finally { await pair.stop(); }
  });

  test('hostile datagrams from the peer\'s own address are dropped and counted, and the tunnel lives on', async () => {
    const port = 52105;
    const pair = await startPair(a, b, `${id}5`, port);
    try {
      assert.ok((await ping(a, B_IP, 1)).ok);
      const [real] = await captureTransportMessages(b, port, 1, async () => { assert.ok((await ping(a, B_IP, 1)).ok); });
      assert.ok(real, 'captured a data packet');
      const before = await pair.b.status();
      // 1000 transport messages under the live receiver index with random 32-bit counters, lengths and
      // bodies, and 1000 datagrams of random bytes (any type), all from A's own ip:port.
      const rnd = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256)));
      const forged: Buffer[] = [];
      for (let i = 0; i < 1000; i++) {
        const f = Buffer.concat([real.subarray(0, 8), rnd(4), Buffer.alloc(4), rnd(16 + Math.floor(Math.random() * 200))]);
        forged.push(f);
        forged.push(rnd(Math.floor(Math.random() * 300)));
      }
      for (let i = 0; i < forged.length; i += 250) await sendSpoofed(a, a.ip, port, b.ip, port, forged.slice(i, i + 250));
      await new Promise((r) => setTimeout(r, 500));
      const st = await pair.b.status();
      assert.equal(st.drops.badTag - before.drops.badTag, 1000, `forged transport messages counted as bad tags: ${JSON.stringify(st.drops)}`);
      assert.equal(st.drops.malformed - before.drops.malformed, 1000, 'the random datagrams were left to JS and counted there');
      assert.equal(st.peers[0]!.endpoint, `${a.ip}:${port}`, 'the endpoint did not move');
      assert.ok((await ping(a, B_IP, 3)).ok, 'the tunnel still works');
    } finally { await pair.stop(); }
  });

  test('an inner source outside the peer\'s allowed IPs is dropped natively', async () => {
    const pair = await startPair(a, b, `${id}3`, 52103);
    try {
      assert.ok((await ping(a, B_IP, 1)).ok);
      await a.run(['ip', 'addr', 'add', '100.64.3.9/32', 'dev', pair.tunA]);
      const before = await pair.b.status();
      await a.exec(['ping', '-c', '5', '-i', '0.05', '-W', '1', '-I', '100.64.3.9', B_IP]);
      const st = await pair.b.status();
      assert.equal(st.drops.allowedIpsMismatch, before.drops.allowedIpsMismatch + 5, JSON.stringify(st.drops));
      assert.equal(st.dataPath.leftToJsIn, before.dataPath.leftToJsIn, 'judged natively');
      assert.ok((await ping(a, B_IP, 1)).ok, 'allowed traffic still flows');
    } finally { await pair.stop(); }
  });

  test('an agent with PINHOLE_FASTPATH=0 keeps everything in JS and interoperates', async () => {
    const pair = await startPair(a, b, `${id}4`, 52104, { PINHOLE_FASTPATH: '0' });
    try {
      assert.ok((await ping(a, B_IP, 1)).ok);
      const r = await a.exec(['ping', '-q', '-c', '30', '-i', '0.01', '-W', '2', B_IP]);
      assert.match(r.stdout, /30 packets transmitted, 30 received/, r.stdout);
      const [sa, sb] = [await pair.a.status(), await pair.b.status()];
      assert.equal(sb.dataPath.native, false);
      assert.equal(sb.dataPath.nativeRx, 0);
      assert.ok(sb.peers[0]!.rxBytes > 30 * 96, 'JS counted what it received');
      assert.ok(sa.dataPath.native && sa.dataPath.nativeTx >= 30, 'the other side still ran natively');
    } finally { await pair.stop(); }
  });
});
