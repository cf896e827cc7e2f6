// pinhole ↔ pinhole protocol behaviour with real agents in network namespaces: rekeying on
// shortened timers loses no packets, replayed and tampered data packets are dropped silently,
// and an initiation flood is answered with cookie replies while a real peer still gets in.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createLab, type Host, type Lab } from '../../scripts/natlab/index.js';
import { runId } from '../../scripts/tunnels/keys.js';
import { startStaticPair } from '../helpers/static-pair.js';
import { REPO_ROOT } from '../../scripts/tunnels/paths.js';
import { ping } from '../helpers/transfer.js';
import { captureTransportMessages } from '../helpers/pcap.js';

const A_IP = '100.64.2.1';
const B_IP = '100.64.2.2';

function startPair(a: Host, b: Host, id: string, port: number, env?: Record<string, string>) {
  return startStaticPair(a, b, { tunA: `pa${id}${port % 100}`, tunB: `pb${id}${port % 100}`, ipA: A_IP, ipB: B_IP, port, envA: env, envB: env });
}

/** Sends raw datagrams from host `m` and reports how many answers came back within 1 s. */
async function sendRaw(m: Host, to: string, port: number, packets: Buffer[]): Promise<number> {
  const script = `
    const s = require('dgram').createSocket('udp4'); let n = 0;
    s.on('message', () => n++);
    s.bind(0, () => {
      for (const h of ${JSON.stringify(packets.map((p) => p.toString('hex')))}) s.send(Buffer.from(h, 'hex'), ${port}, '${to}');
      setTimeout(() => { console.log('answers ' + n); s.close(); }, 1000);
    });`;
  const out = await m.run(['node', '-e', script]);
  return Number(/answers (\d+)/.exec(out)![1]);
}

describe('pinhole ↔ pinhole protocol', { timeout: 240_000 }, () => {
  let lab: Lab;
  let a: Host;
  let b: Host;
  let m: Host;
  const id = runId();

  before(async () => {
    lab = await createLab({ name: 'wgp' });
    a = await lab.addPublicHost('a');
    b = await lab.addPublicHost('b');
    m = await lab.addPublicHost('m');
  });
  after(async () => { await lab?.destroy(); });

  test('rekeying every second on shortened timers loses no packets', async () => {
    const pair = await startPair(a, b, id, 52001, {
      PINHOLE_WG_TIMERS: 'REKEY_AFTER_TIME=1000,REJECT_AFTER_TIME=3000,REKEY_TIMEOUT=400,KEEPALIVE_TIMEOUT=1000,REKEY_ATTEMPT_TIME=9000',
    });
    try {
      assert.ok((await ping(a, B_IP, 1)).ok);
      // 600 echo requests over 6 s (both directions of traffic), across several rotations.
      const r = await a.exec(['ping', '-q', '-c', '600', '-i', '0.01', '-W', '2', B_IP]);
      assert.match(r.stdout, /600 packets transmitted, 600 received, 0% packet loss/, r.stdout);
      const st = await pair.a.status();
      assert.ok(st.handshakes.completed >= 4, `only ${st.handshakes.completed} handshakes in 6 s`);
      assert.equal(st.drops.expiredKey, 0);
      assert.equal((await pair.b.status()).drops.unknownIndex, 0, 'no packet arrived for a key already dropped');
    } finally { await pair.stop(); }
  });

  test('a replayed data packet and one with a bad tag are dropped silently', async () => {
    const pair = await startPair(a, b, id, 52002);
    try {
      assert.ok((await ping(a, B_IP, 1)).ok);
      const data = await captureTransportMessages(b, 52002, 2, async () => { assert.ok((await ping(a, B_IP, 2)).ok); });
      assert.ok(data.length >= 1, 'captured a data packet');
      const before = await pair.b.status();

      const answersReplay = await sendRaw(m, b.ip, 52002, [data[0]!]);
      const tampered = Buffer.from(data[0]!);
      tampered[tampered.length - 1]! ^= 0x01;
      const answersTamper = await sendRaw(m, b.ip, 52002, [tampered]);

      const st = await pair.b.status();
      assert.equal(st.drops.replay, before.drops.replay + 1, 'the replay was counted');
      assert.equal(st.drops.badTag, before.drops.badTag + 1, 'the bad tag was counted');
      assert.equal(answersReplay + answersTamper, 0, 'nothing is sent back to the attacker');
      assert.equal(st.peers[0]!.endpoint, `${a.ip}:52002`, 'the peer endpoint did not move to the attacker');
      assert.ok((await ping(a, B_IP, 2)).ok, 'the tunnel still works');
    } finally { await pair.stop(); }
  });

  test('an initiation flood gets cookie replies and a legitimate handshake still completes', async () => {
    const pair = await startPair(a, b, id, 52003);
    try {
      const flood = m.spawn(['node', join(REPO_ROOT, 'dist', 'test', 'helpers', 'initiation-flood.js'),
        b.ip, '52003', pair.kb.publicKey, '14', '800']);
      await new Promise((r) => setTimeout(r, 1000));
      // The first initiation meets a responder under load and gets a cookie; the retransmission
      // (REKEY_TIMEOUT later) carries mac2 and is accepted.
      const r = await a.exec(['ping', '-c', '1', '-W', '12', B_IP]);
      const [, sent, cookies] = /sent (\d+) cookie-replies (\d+)/.exec((await flood.waitForOutput(/sent \d+ cookie-replies \d+/, 30_000))[0])!;
      assert.equal(r.code, 0, `legitimate ping failed under flood: ${r.stdout}`);
      const sa = await pair.a.status();
      const sb = await pair.b.status();
      assert.ok(sa.handshakes.cookieRepliesReceived >= 1, 'the real peer was challenged with a cookie');
      assert.ok(sb.handshakes.cookieRepliesSent >= 100, `cookie replies sent: ${sb.handshakes.cookieRepliesSent}`);
      assert.ok(Number(cookies) >= 100, `the flooder got ${cookies} cookie replies for ${sent} initiations`);
      assert.ok(sa.peers[0]!.lastHandshake !== null);
    } finally { await pair.stop(); }
  });
});
