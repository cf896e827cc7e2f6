// NAT traversal as the classic table says it should go: agents behind every NAT behaviour (two
// sites of each), a double-NAT site and a UDP-blocked site, real coordinator, relay and agents.
// Every pair connects; pairs go direct (symmetric × port-restricted by birthday probing) except symmetric × symmetric and the
// UDP-blocked site, which stay on the relay. The first reply comes through the relay within
// 0.5 s and relay → direct takes ≤ 2 s. Also: `pinhole ping` shows the path, status --json shows
// path/endpoint/relay/latency, junk disco packets are counted, not fatal, and disco packets
// captured on the wire and re-sent from another address are refused as replays, unanswered.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createLab, type Lab } from '../../scripts/natlab/index.js';
import { birthdayPair, formatPairTable, peerOf, waitFor, type PairResult } from '../../scripts/traversal/mesh-lab.js';
import { runMatrix, type MatrixRun } from '../../scripts/traversal/matrix.js';
import { udpPayloads } from '../helpers/pcap.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('NAT traversal matrix', { timeout: 600_000 }, () => {
  let lab: Lab;
  let run: MatrixRun | undefined;
  let rows: PairResult[] = [];

  before(async () => {
    lab = await createLab({ name: 'travmx' });
    run = await runMatrix(lab);
    rows = run.rows;
    process.stdout.write(`${formatPairTable(rows)}\n`);
  });

  after(async () => {
    await run?.mesh.stop();
    await lab?.destroy();
  });

  test('every pair connects, and its first reply comes within 0.5 s', () => {
    assert.equal(rows.length, 26);
    for (const r of rows) {
      assert.ok(r.firstReplyMs !== null, `${r.a} x ${r.b}: no reply`);
      assert.ok(r.firstReplyMs <= 500, `${r.a} x ${r.b}: first reply after ${r.firstReplyMs} ms`);
    }
  });

  test('pairs go direct where the classic table allows it, and stay relayed elsewhere', () => {
    for (const r of rows) assert.equal(r.path, r.expected, `${r.a} x ${r.b}: ${r.path}, expected ${r.expected}`);
    const relayed = rows.filter((r) => r.expected === 'relay').map((r) => `${r.a} x ${r.b}`);
    assert.deepEqual(relayed.filter((p) => !p.includes('noudp')), ['sym1 x sym2']);
  });

  test('relay → direct takes at most 2 s (birthday pairs: at most 20 s, see birthday.test.ts for their bar)', () => {
    const m = run!.mesh;
    for (const r of rows.filter((x) => x.expected === 'direct' && !birthdayPair(m.node(x.a).spec, m.node(x.b).spec))) {
      assert.ok(r.timeToDirectMs !== null && r.timeToDirectMs <= 2000, `${r.a} x ${r.b}: direct after ${r.timeToDirectMs} ms`);
    }
  });

  test('pinhole ping prints the path of every reply', async () => {
    const m = run!.mesh;
    const direct = await m.node('open1').agent.cli(['ping', 'full2', '-c', '3']);
    assert.equal(direct.code, 0, direct.stderr);
    const lines = direct.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    for (const l of lines) assert.match(l, /^pong from full2\S* \(100\.\d+\.\d+\.\d+\) via \d+\.\d+\.\d+\.\d+:\d+ in [\d.]+ ms$/);
    const relayed = await m.node('sym1').agent.cli(['ping', 'sym2', '-c', '2']);
    assert.equal(relayed.code, 0, relayed.stderr);
    for (const l of relayed.stdout.trim().split('\n')) assert.match(l, /^pong from sym2\S* \(100\.\d+\.\d+\.\d+\) via relay lab in [\d.]+ ms$/);
    const unknown = await m.node('sym1').agent.cli(['ping', 'nosuchpeer', '-c', '1']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no peer named "nosuchpeer"/);
  });

  test('status --json shows each peer\'s path, endpoint, relay and latency', async () => {
    const st = await run!.mesh.node('prc1').agent.status();
    const direct = peerOf(st, 'prc2')!;
    assert.equal(direct.path, 'direct');
    assert.match(direct.endpoint ?? '', /^\d+\.\d+\.\d+\.\d+:\d+$/);
    assert.equal(direct.relay, 'lab');
    assert.ok(typeof direct.latencyMs === 'number' && direct.latencyMs >= 0);
    const relayed = peerOf(await run!.mesh.node('sym1').agent.status(), 'sym2')!;
    assert.equal(relayed.path, 'relay');
    assert.equal(relayed.relay, 'lab');
    assert.ok(st.relays?.some((r) => r.name === 'lab' && r.home && r.connected));
  });

  test('disco packets that fail to open are counted and dropped; the agent keeps working', async () => {
    const m = run!.mesh;
    const target = m.node('open1');
    const st0 = await target.agent.status();
    const port = st0.interface.listenPort;
    // 200 datagrams with the disco magic and garbage after it, plus 200 with a known sender key
    // (a peer's disco key) and a box that cannot open, from a host on the lab internet.
    const peerDisco = (await m.node('open2').agent.status()).self!.discoKey;
    const script = `
      const s = require('node:dgram').createSocket('udp4');
      const crypto = require('node:crypto');
      const magic = Buffer.from([0x50, 0x48, 0x64, 0x73, 0x63, 0x01]);
      const key = Buffer.from(${JSON.stringify(peerDisco)}, 'base64');
      let n = 0;
      for (let i = 0; i < 400; i++) {
        const body = i < 200 ? crypto.randomBytes(80 + (i % 50)) : Buffer.concat([key, crypto.randomBytes(24 + 16 + 46)]);
        s.send(Buffer.concat([magic, body]), ${port}, ${JSON.stringify(target.host.ip)}, () => { if (++n === 400) s.close(); });
      }`;
    const r = await m.coord.host.exec(['node', '-e', script]);
    assert.equal(r.code, 0, r.stderr);
    const st = await waitFor('the junk to be counted', async () => {
      const s = await target.agent.status();
      const c = s.magicsock!;
      return c.discoBadPacket! - st0.magicsock!.discoBadPacket! >= 150 && c.discoUnknownSender! - st0.magicsock!.discoUnknownSender! >= 150 ? s : undefined;
    }, 10_000);
    assert.ok(st.magicsock!.discoBadPacket! >= 150);
    assert.equal(target.agent.proc.running, true);
    const again = await target.agent.cli(['ping', 'open2', '-c', '1']);
    assert.equal(again.code, 0, again.stderr);
  });

  test('disco packets captured on the wire and re-sent from another address are refused as replays, and not answered', async () => {
    const m = run!.mesh;
    const target = m.node('open1');
    const port = (await target.agent.status()).interface.listenPort;
    // Capture real disco packets (pings and pongs from its peers, sealed by them) arriving at open1.
    const dir = await mkdtemp(join(tmpdir(), 'pinhole-disco-'));
    let captured: Buffer[];
    try {
      const pcap = join(dir, 'cap.pcap');
      // Inbound only (-Q in): open1's own disco to a peer whose port happens to equal its own
      // matches the filter too, and is not a packet open1 accepted from a peer.
      const cap = target.host.spawn(['tcpdump', '-i', 'eth0', '-Q', 'in', '-U', '-c', '4', '-w', pcap, `udp dst port ${port} and udp[8:4] = 0x50486473`]);
      await new Promise((r) => setTimeout(r, 800));
      await target.agent.cli(['ping', 'open2', '-c', '3']);
      await cap.wait(10_000);
      captured = (await udpPayloads(pcap)).filter((p) => p.subarray(0, 6).equals(Buffer.from('PHdsc\x01', 'latin1')));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    assert.ok(captured.length >= 2, `captured ${captured.length} disco packets`);
    // Who sealed each one (the sender's disco key follows the magic): for the failure message.
    const names = new Map<string, string>();
    for (const n of m.nodes) names.set((await n.agent.status()).self!.discoKey!, n.spec.name);
    const senders = captured.map((p) => names.get(p.subarray(6, 38).toString('base64')) ?? `unknown(${p.length} B)`);
    assert.ok(!senders.includes('open1'), `open1 captured its own packets: ${senders.join(', ')}`);
    const st0 = await target.agent.status();
    // Re-send them from a host on the lab internet (another source address), and listen for answers.
    const script = `
      const s = require('node:dgram').createSocket('udp4');
      let got = 0;
      s.on('message', () => { got++; });
      s.bind(0, () => {
        for (const h of ${JSON.stringify(captured.map((p) => p.toString('hex')))}) s.send(Buffer.from(h, 'hex'), ${port}, ${JSON.stringify(target.host.ip)});
        setTimeout(() => { console.log(got); s.close(); }, 1500);
      });`;
    const r = await m.coord.host.exec(['node', '-e', script]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), '0', 'nothing was sent back to the replaying address');
    const st = await target.agent.status();
    const c0 = st0.magicsock!;
    const c = st.magicsock!;
    assert.equal(c.discoReplayed! - c0.discoReplayed!, captured.length,
      `every replay refused and counted: sealed by ${senders.join(', ')}; before ${JSON.stringify(c0)}; after ${JSON.stringify(c)}`);
    assert.equal(c.discoBadPacket, c0.discoBadPacket, 'the replays opened fine: they were refused for being replays');
    const again = await target.agent.cli(['ping', 'open2', '-c', '1']);
    assert.equal(again.code, 0, again.stderr);
  });
});
