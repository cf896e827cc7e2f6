// The relay's limits, with real `pinhole relay` processes on loopback: with receivers that never
// read, everything queued stays under --global-queue-bytes (against a relay with only per-client
// caps, under the same load in the same run), and a receiver that reads nothing is closed at
// --write-timeout, giving its bytes back; --max-conns-per-ip refuses the N+1th connection from one
// address while another address still connects; oversized priority frames are demoted and counted.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRelayClient, type RelayClient } from '../../agent/relay/relay-client.js';
import { NOTICE, type RelayFrame } from '../../proto/relay/frames.js';
import { generatePrivateKey } from '../../proto/wireguard/keys.js';
import { RawRelayClient } from '../helpers/raw-relay-client.js';
import { eventually, startRelayProcess, type RelayProcess } from '../helpers/relay-process.js';

const MiB = 1024 * 1024;
const relays: RelayProcess[] = [];
const clients: RelayClient[] = [];
const raws: RawRelayClient[] = [];

after(async () => {
  for (const r of raws) r.close();
  await Promise.all(clients.map((c) => c.close()));
  for (const r of relays) await r.stop('SIGKILL');
});

async function relay(args: string[]): Promise<RelayProcess> {
  const r = await startRelayProcess(['--open', '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--rate-limit', '0', ...args]);
  relays.push(r);
  return r;
}

function client(r: RelayProcess): RelayClient {
  const c = createRelayClient({ url: r.url, relayKey: r.keyBytes, nodePrivateKey: generatePrivateKey(), reconnect: false });
  clients.push(c);
  return c;
}

async function raw(r: RelayProcess, localAddress?: string): Promise<RawRelayClient> {
  const c = await RawRelayClient.connect(r.url, localAddress ? { localAddress } : {});
  raws.push(c);
  return c;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/**
 * RECEIVERS raw clients that authenticate and never read again; SENDERS real clients that send
 * FRAMES frames of FRAME_BYTES round-robin to them. Resolves once the relay has accounted for
 * every frame (forwarded or dropped at the global budget), with its health and RSS growth.
 */
async function floodNeverReading(r: RelayProcess): Promise<{ peak: number; cap: number; globalDrops: number; queueDrops: number; rssGrowth: number }> {
  const RECEIVERS = 8;
  const SENDERS = 4;
  const FRAMES = 2400;
  const FRAME_BYTES = 16 * 1024;
  const receivers: RawRelayClient[] = [];
  for (let i = 0; i < RECEIVERS; i++) {
    const rc = await raw(r);
    await rc.authenticate();
    rc.ws.pause(); // never read again: the kernel buffers fill, then the relay's queues
    receivers.push(rc);
  }
  const senders = Array.from({ length: SENDERS }, () => client(r));
  await Promise.all(senders.map((s) => s.ready()));
  const rss0 = rssBytes(r.pid);
  const base = (await r.healthz()).counters;
  const payload = Buffer.alloc(FRAME_BYTES, 7);
  for (let i = 0; i < FRAMES; i++) {
    const s = senders[i % SENDERS]!;
    if (!s.send(receivers[i % RECEIVERS]!.keys.publicKey, payload)) await new Promise<void>((res) => s.once('drain', () => res()));
  }
  let rssPeak = rssBytes(r.pid);
  const h = await eventually(async () => {
    rssPeak = Math.max(rssPeak, rssBytes(r.pid));
    const x = await r.healthz();
    const handled = (x.counters.packetsForwarded - base.packetsForwarded) + (x.counters.drops.globalBudget - base.drops.globalBudget);
    assert.equal(handled, FRAMES);
    return x;
  }, 30_000, 100);
  for (const rc of receivers) rc.close();
  return {
    peak: h.queue.peakBytes, cap: h.queue.capBytes, globalDrops: h.counters.drops.globalBudget - base.drops.globalBudget,
    queueDrops: h.counters.drops.queueOverflow - base.drops.queueOverflow, rssGrowth: rssPeak - rss0,
  };
}

describe('relay memory limits', () => {
  test('receivers that never read: queued bytes stay under --global-queue-bytes (reference: per-client caps only)', async (t) => {
    // A full per-client queue pauses its senders (backpressure) instead of growing: with the budget
    // (4 MiB) at one client's queue limit, the eight receivers together reach the budget long
    // before any one of them pauses a sender; --max-pause 10ms keeps any pause short all the same.
    const perClient = ['--queue-bytes', '4Mi', '--queue-frames', '100000', '--write-timeout', '5m', '--max-pause', '10ms'];
    const capped = await relay([...perClient, '--global-queue-bytes', '4Mi']);
    const reference = await relay([...perClient, '--global-queue-bytes', '1Gi']);
    const c = await floodNeverReading(capped);
    const ref = await floodNeverReading(reference);
    t.diagnostic(`capped: peak ${(c.peak / MiB).toFixed(1)} MiB of ${(c.cap / MiB).toFixed(0)} MiB cap, ${c.globalDrops} frames refused at the budget, RSS +${(c.rssGrowth / MiB).toFixed(1)} MiB`);
    t.diagnostic(`reference (per-client caps only): peak ${(ref.peak / MiB).toFixed(1)} MiB, RSS +${(ref.rssGrowth / MiB).toFixed(1)} MiB; capped/reference peak ${(c.peak / ref.peak).toFixed(2)}`);
    assert.equal(c.cap, 4 * MiB);
    assert.ok(c.peak <= c.cap, `peak ${c.peak} over the cap ${c.cap}`);
    assert.ok(c.globalDrops > 0, 'the budget refused frames');
    assert.ok(ref.peak > c.cap, `the reference relay held more than the cap (${ref.peak}): the load exercises it`);
    assert.equal(ref.globalDrops, 0);
    // The receivers are gone: their bytes went back to the budget.
    await eventually(async () => assert.equal((await capped.healthz()).queue.usedBytes, 0));
  });

  test('a receiver that reads nothing is closed at --write-timeout and its bytes are given back', async () => {
    const r = await relay(['--write-timeout', '1s', '--keepalive', '200ms', '--idle-timeout', '10s']);
    const stuck = await raw(r);
    await stuck.authenticate();
    stuck.ws.pause();
    const s = client(r);
    await s.ready();
    const payload = Buffer.alloc(32 * 1024);
    for (let i = 0; i < 600; i++) if (!s.send(stuck.keys.publicKey, payload)) await new Promise<void>((res) => s.once('drain', () => res()));
    await eventually(async () => {
      const h = await r.healthz();
      assert.equal(h.counters.writeTimeouts, 1);
      assert.equal(h.queue.usedBytes, 0);
      assert.equal(h.counters.clients, 1, 'only the sender is left');
    }, 10_000, 100);
    assert.ok(s.connected, 'the sender is not affected');
  });
});

describe('relay connection and priority limits', () => {
  test('--max-conns-per-ip: the N+1th connection from 127.0.0.2 is refused while 127.0.0.1 still connects', async () => {
    const N = 4;
    const r = await relay(['--max-conns-per-ip', String(N)]);
    const fromTwo: RawRelayClient[] = [];
    for (let i = 0; i < N; i++) {
      const c = await raw(r, '127.0.0.2');
      await c.next('server-key');
      fromTwo.push(c);
    }
    await assert.rejects(raw(r, '127.0.0.2'), 'the N+1th connection from one address');
    const other = await raw(r, '127.0.0.1');
    assert.ok(await other.authenticate(), 'another address connects, and the relay proves its key');
    const h = await r.healthz();
    assert.equal(h.counters.refused.perAddress, 1);
    assert.equal(h.connections.maxPerAddress, N);
    // One leaves: its address may connect again.
    fromTwo[0]!.close();
    await eventually(async () => {
      const again = await raw(r, '127.0.0.2');
      await again.next('server-key');
    }, 5000, 100);
  });

  test('priority frames over 1 KiB are demoted to the data lane and counted; small ones stay priority', async () => {
    const r = await relay([]);
    const receiver = await raw(r);
    await receiver.authenticate();
    const s = client(r);
    await s.ready();
    const BIG = 20;
    const SMALL = 30;
    for (let i = 0; i < BIG; i++) s.send(receiver.keys.publicKey, Buffer.alloc(2000, 1), { priority: true });
    for (let i = 0; i < SMALL; i++) s.send(receiver.keys.publicKey, Buffer.alloc(200, 2), { priority: true });
    await eventually(() => {
      assert.equal(receiver.frames.filter((f: RelayFrame) => f.type === 'recv').length, BIG + SMALL, 'every frame still arrives');
    });
    const h = await r.healthz();
    assert.equal(h.counters.priorityDemoted, BIG);
    assert.equal(h.counters.drops.badFrame, 0);
    assert.equal(NOTICE['write-timeout'], 9);
  });
});

describe('relay backpressure', () => {
  const recvCount = (c: RawRelayClient): number => c.frames.filter((f) => f.type === 'recv').length;
  async function sendAll(s: RelayClient, dst: Uint8Array, n: number, size: number): Promise<void> {
    const payload = Buffer.alloc(size, 3);
    for (let i = 0; i < n; i++) if (!s.send(dst, payload)) await new Promise<void>((res) => s.once('drain', () => res()));
  }

  test('one flow into a receiver that stops reading for a while: the sender is held back, nothing is dropped', async (t) => {
    const r = await relay(['--queue-frames', '64', '--max-pause', '10s']);
    const rx = await raw(r);
    await rx.authenticate();
    const s = client(r);
    await s.ready();
    const base = (await r.healthz()).counters;
    rx.ws.pause();
    const FRAMES = 8000;
    const sending = sendAll(s, rx.keys.publicKey, FRAMES, 1200); // 9.6 MB: more than the kernel buffers and the queue hold
    await new Promise((res) => setTimeout(res, 1500));
    rx.ws.resume();
    await sending;
    await eventually(async () => assert.equal(recvCount(rx), FRAMES), 20_000, 100);
    const h = (await r.healthz()).counters;
    t.diagnostic(`pauses ${h.backpressurePauses! - base.backpressurePauses!} for ${h.backpressurePausedMs! - base.backpressurePausedMs!} ms`);
    assert.equal(h.drops.queueOverflow - base.drops.queueOverflow, 0, 'no frame dropped');
    assert.equal(s.stats.sendDrops, 0, 'nor by the sender');
    assert.ok(h.backpressurePauses! - base.backpressurePauses! >= 1, 'the relay paused the sender');
    assert.equal(h.backpressureTimeouts! - base.backpressureTimeouts!, 0);
  });

  test('a receiver that never reads holds its sender back at most --max-pause: the sender\'s other peer still gets through', async () => {
    const r = await relay(['--queue-frames', '64', '--max-pause', '300ms']);
    const stuck = await raw(r);
    await stuck.authenticate();
    stuck.ws.pause();
    const good = await raw(r);
    await good.authenticate();
    const s = client(r);
    await s.ready();
    await sendAll(s, stuck.keys.publicKey, 8000, 1200);
    await sendAll(s, good.keys.publicKey, 20, 100);
    await eventually(async () => assert.equal(recvCount(good), 20), 10_000, 100);
    const h = (await r.healthz()).counters;
    assert.ok(h.backpressureTimeouts! >= 1, 'the pause hit --max-pause');
    assert.ok(h.drops.queueOverflow > 0, 'then the stuck receiver\'s queue dropped instead');
  });
});
