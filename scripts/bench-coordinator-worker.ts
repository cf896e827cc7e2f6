// One worker process of the coordinator benchmark: a few thousand light simulated nodes that
// speak the real protocol (real X25519 node keys, a Noise control channel each, real WebSockets in it), with no TUN and
// no WireGuard. Driven by the parent (bench-coordinator.ts) over IPC.
//
// Receiving is kept cheap on purpose, so the figures measure the coordinator, not these clients:
// the stream is bench-stream-client.ts (fragments handed over as read, not the ws library's
// receive path), every message is read off its socket, the first netmap of every SAMPLE_EVERY-th
// node is assembled, parsed and schema-checked in full, and deltas are searched for markers with
// Buffer.indexOf instead of JSON.parse (10,000 parsers sharing two cores would benchmark the
// parsers).
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Netmap, STREAM_CAPABILITIES, ServerInfo, clientPingsCapability } from '../proto/control/schemas.js';
import type { ClientHttp2Session } from 'node:http2';
import type { NoiseChannel } from '../proto/control/noise-channel.js';
import { openChannel, requestOn } from '../test/helpers/control-client.js';
import { connectControlH2, openChannelOnH2 } from '../test/helpers/control-client-h2.js';
import { LeanStream } from './bench-stream-client.js';
import { KEEPALIVE_INTERVAL_MS } from '../agent/control/stream-client.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../proto/wireguard/keys.js';

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

/** Churn markers are endpoints 10.a.b.c:port where a.b.c is the send time (ms after t0); the
 * same bytes appear in a whole peer record and in a patch. */
const CHURN_PREFIX = Buffer.from('"endpoints":["10.');
const HISTOGRAM_MS = 60_000;
const SAMPLE_EVERY = 100;
/** Each simulated node pings its stream as often as an agent does, from a random phase, and says so in its hello as agents do. */
const PING_EVERY_MS = KEEPALIVE_INTERVAL_MS;

export type WorkerCommand =
  | { cmd: 'init'; urls: string[]; authKeys: string[]; groups: number; total: number; count: number; offset: number; patches: boolean; multiplex: number }
  | { cmd: 'register'; concurrency: number }
  | { cmd: 'connect'; concurrency: number }
  | { cmd: 'arm'; marker: string; sender: number }
  | { cmd: 'change'; index: number; endpoint: string }
  | { cmd: 'collect' }
  | { cmd: 'churn'; t0: number; perSecond: number; durationMs: number }
  | { cmd: 'close' };

export type WorkerEvent =
  | { ev: 'ready' }
  | { ev: 'registered'; ok: number; failed: number; firstError: string | null }
  | { ev: 'connected'; ok: number; failed: number; netmapBytes: number; validated: number; firstError: string | null }
  | { ev: 'armed' }
  | { ev: 'changed'; sentAt: number }
  | { ev: 'arrivals'; times: number[]; missing: number }
  | { ev: 'churned'; sent: number; expected: number; histogram: [number, number][]; samples: number; over: number }
  | { ev: 'error'; message: string };

interface SimNode {
  index: number;
  privateKey: Uint8Array;
  nodeKey: string;
  discoKey: string;
  stream: LeanStream | null;
  gotNetmap: boolean;
  arrival: number;
}

/** The coordinator, or its replicas: node i registers and streams at urls[i mod n]. */
let urls: string[] = [];
const urlOf = (n: SimNode): string => urls[n.index % urls.length]!;
let authKeys: string[] = [];
/** Policy groups (node i in group i mod groups), 0: none, everyone sees everyone. */
let groups = 0;
let total = 0;
const groupOf = (index: number): number => (groups > 0 ? index % groups : 0);
/** How many peers node `index` has: its group's other members (or every other node). */
const peersOf = (index: number): number => (groups > 0 ? Math.floor((total - 1 - groupOf(index)) / groups) : total - 1);
/** The fan-out change's sender's group: only its members count as missing. */
let armedGroup = -1;
let churnExpected = 0;
let capabilities: string[] = [];
let nodes: SimNode[] = [];
let marker: Buffer | null = null;
let churnT0 = 0;
let churnActive = false;
const histogram = new Uint32Array(HISTOGRAM_MS + 1);
let samples = 0;
let over = 0;

function send(e: WorkerEvent): void {
  process.send!(e);
}

async function pool<T>(items: T[], concurrency: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

let serverKey: Uint8Array | null = null;

async function coordinatorKey(): Promise<Uint8Array> {
  serverKey ??= decodeKey(ServerInfo.parse(await (await fetch(`${urls[0]}/api/v1/server`)).json()).serverKey);
  return serverKey;
}

/**
 * Each simulated node connects from its own loopback address (127.0.0.0/8 is all on lo): from
 * 127.0.0.1 alone, 28,000 ephemeral ports (minus TIME_WAIT) would cap a run well below 50,000.
 */
const sourceOf = (n: SimNode): string => `127.${1 + (n.index >> 14)}.${(n.index >> 6) & 255}.${1 + (n.index & 63)}`;

/** 0: a TCP connection per channel; K: channels as streams of HTTP/2 connections, nodes K·j … K·j+K-1 on one per coordinator. */
let multiplex = 0;
const h2Sessions = new Map<string, Promise<ClientHttp2Session>>();

async function channelOf(n: SimNode): Promise<NoiseChannel> {
  const key = await coordinatorKey();
  if (multiplex === 0) return (await openChannel(urlOf(n), n.privateKey, key, sourceOf(n))).channel;
  const name = `${urlOf(n)} ${Math.floor(n.index / multiplex)}`;
  let session = h2Sessions.get(name);
  if (!session) {
    // The coordinator closes a connection left without channels (between registering and streaming).
    session = connectControlH2(urlOf(n), sourceOf(n));
    session.then((s) => s.once('close', () => { if (h2Sessions.get(name) === session) h2Sessions.delete(name); }), () => h2Sessions.delete(name));
    h2Sessions.set(name, session);
  }
  const open = await session;
  try {
    return (await openChannelOnH2(open, n.privateKey, key)).channel;
  } catch (err) {
    // Closing as this channel was asked for (idle): once more, on a new connection.
    if (!open.closed && !open.destroyed) throw err;
    if (h2Sessions.get(name) === session) h2Sessions.delete(name);
    return channelOf(n);
  }
}

async function register(n: SimNode): Promise<void> {
  const channel = await channelOf(n);
  const r = await requestOn(channel, 'POST', '/api/v1/register', { body: { nodeKey: n.nodeKey, discoKey: n.discoKey, hostname: `bench-${n.index}`, authKey: authKeys[groupOf(n.index)] } });
  if (r.status !== 200) throw new Error(`register ${r.status}: ${JSON.stringify(r.body)}`);
}

/** Reads the i-th decimal number after `at`; returns [value, index after it]. */
function readNumber(buf: Buffer, at: number): [number, number] {
  let v = 0;
  let i = at;
  for (; i < buf.length; i++) {
    const c = buf[i]!;
    if (c < 0x30 || c > 0x39) break;
    v = v * 10 + (c - 0x30);
  }
  return [v, i];
}

function onDelta(n: SimNode, data: Buffer): void {
  const now = wallNow();
  if (marker && Number.isNaN(n.arrival) && data.indexOf(marker) >= 0) n.arrival = now;
  if (!churnActive) return;
  let at = data.indexOf(CHURN_PREFIX);
  while (at >= 0) {
    let i = at + CHURN_PREFIX.length;
    const [a, i1] = readNumber(data, i);
    const [b, i2] = readNumber(data, i1 + 1);
    const [c, i3] = readNumber(data, i2 + 1);
    i = i3;
    const sentAt = churnT0 + ((a << 16) | (b << 8) | c);
    const latency = Math.max(0, Math.round(now - sentAt));
    if (latency > HISTOGRAM_MS) over++;
    else histogram[latency]!++;
    samples++;
    at = data.indexOf(CHURN_PREFIX, i);
  }
}

async function connect(n: SimNode): Promise<{ bytes: number; validated: boolean }> {
  const channel = await channelOf(n);
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => { if (!n.gotNetmap) reject(err); };
    // The netmap may come in fragments: only the sampled nodes keep them to parse the whole.
    let parts: Buffer[] | null = n.index % SAMPLE_EVERY === 0 ? [] : null;
    let bytes = 0;
    const onFirst = (data: Buffer, first: boolean, fin: boolean): void => {
      if (first && data.subarray(0, 25).toString() !== '{"type":"netmap","seq":0,') return fail(new Error(`expected a netmap, got ${data.subarray(0, 80).toString()}`));
      bytes += data.length;
      parts?.push(data);
      if (!fin) return;
      let validated = false;
      if (parts) {
        const m = Netmap.parse(JSON.parse(Buffer.concat(parts).toString()));
        parts = null;
        if (m.peers.length !== peersOf(n.index)) return fail(new Error(`netmap of node ${n.index} has ${m.peers.length} peers, expected ${peersOf(n.index)}`));
        validated = true;
      }
      n.gotNetmap = true;
      const ping = (): void => { n.stream?.sendText(JSON.stringify({ type: 'ping', t: Date.now() })); };
      let timer = setTimeout(() => {
        ping();
        timer = setInterval(ping, PING_EVERY_MS);
        timer.unref();
      }, Math.random() * PING_EVERY_MS);
      timer.unref();
      closers.push(() => clearTimeout(timer));
      resolve({ bytes, validated });
    };
    const closers: (() => void)[] = [];
    LeanStream.open(channel, '/api/v1/stream', {
      onFragment: (data, first, fin) => (n.gotNetmap ? onDelta(n, data) : onFirst(data, first, fin)),
      onClose: (reason) => { for (const c of closers) c(); fail(new Error(`stream closed: ${reason}`)); },
    }).then((stream) => {
      n.stream = stream;
      stream.sendText(JSON.stringify({ type: 'hello', nodeKey: n.nodeKey, capabilities: [...capabilities, clientPingsCapability(PING_EVERY_MS)] }));
    }, fail);
  });
}

function sendEndpoints(n: SimNode, endpoint: string): void {
  n.stream!.sendText(JSON.stringify({ type: 'endpoints', endpoints: [endpoint], homeRelay: null }));
}

async function churn(perSecond: number, durationMs: number): Promise<number> {
  churnActive = true;
  const order = nodes.map((n) => n.index).sort(() => Math.random() - 0.5);
  const byIndex = new Map(nodes.map((n) => [n.index, n]));
  const start = wallNow();
  let sent = 0;
  while (wallNow() - start < durationMs) {
    const due = Math.floor(((wallNow() - start) / 1000) * perSecond);
    while (sent < due) {
      const n = byIndex.get(order[sent % order.length]!)!;
      const elapsed = Math.round(wallNow() - churnT0);
      churnExpected += peersOf(n.index);
      sendEndpoints(n, `10.${(elapsed >> 16) & 255}.${(elapsed >> 8) & 255}.${elapsed & 255}:${1 + (sent % 65535)}`);
      sent++;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  return sent;
}

async function handle(m: WorkerCommand): Promise<void> {
  switch (m.cmd) {
    case 'init': {
      urls = m.urls;
      authKeys = m.authKeys;
      groups = m.groups;
      total = m.total;
      capabilities = m.patches ? [STREAM_CAPABILITIES.peerPatches] : [];
      multiplex = m.multiplex;
      nodes = Array.from({ length: m.count }, (_, i) => {
        const privateKey = generatePrivateKey();
        return {
          index: m.offset + i, privateKey, nodeKey: encodeKey(publicKeyFromPrivate(privateKey)),
          discoKey: encodeKey(randomBytes(32)), stream: null, gotNetmap: false, arrival: NaN,
        };
      });
      return send({ ev: 'ready' });
    }
    case 'register': {
      let ok = 0;
      let failed = 0;
      let firstError: string | null = null;
      await pool(nodes, m.concurrency, async (n) => {
        try {
          await register(n);
          ok++;
        } catch (err) {
          failed++;
          firstError ??= (err as Error).message;
        }
      });
      return send({ ev: 'registered', ok, failed, firstError });
    }
    case 'connect': {
      let ok = 0;
      let failed = 0;
      let netmapBytes = 0;
      let validated = 0;
      let firstError: string | null = null;
      await pool(nodes, m.concurrency, async (n) => {
        try {
          const r = await connect(n);
          ok++;
          netmapBytes += r.bytes;
          if (r.validated) validated++;
        } catch (err) {
          failed++;
          firstError ??= (err as Error).message;
        }
      });
      return send({ ev: 'connected', ok, failed, netmapBytes, validated, firstError });
    }
    case 'arm':
      marker = Buffer.from(`"${m.marker}"`);
      armedGroup = groupOf(m.sender);
      for (const n of nodes) n.arrival = NaN;
      return send({ ev: 'armed' });
    case 'change': {
      const n = nodes.find((x) => x.index === m.index)!;
      const sentAt = wallNow();
      sendEndpoints(n, m.endpoint);
      return send({ ev: 'changed', sentAt });
    }
    case 'collect': {
      const group = nodes.filter((n) => groupOf(n.index) === armedGroup);
      const times = group.filter((n) => !Number.isNaN(n.arrival)).map((n) => n.arrival);
      return send({ ev: 'arrivals', times, missing: group.length - times.length });
    }
    case 'churn': {
      churnT0 = m.t0;
      histogram.fill(0);
      samples = 0;
      over = 0;
      churnExpected = 0;
      const sent = await churn(m.perSecond, m.durationMs);
      await new Promise((r) => setTimeout(r, 3000)); // let the last batches arrive
      churnActive = false;
      const hist: [number, number][] = [];
      histogram.forEach((count, ms) => { if (count > 0) hist.push([ms, count]); });
      return send({ ev: 'churned', sent, expected: churnExpected, histogram: hist, samples, over });
    }
    case 'close':
      for (const n of nodes) n.stream?.destroy();
      process.exit(0);
  }
}

process.on('message', (m: WorkerCommand) => {
  handle(m).catch((err: Error) => send({ ev: 'error', message: err.stack ?? err.message }));
});
