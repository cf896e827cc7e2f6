// Relay benchmark on loopback: throughput (MB/s of packet payload, frames/s) and relay process CPU
// per Gbit/s, two relay clients (agent/relay) in this process and `pinhole relay` as a real process.
// The reference, measured in the same run: a bare Node TCP forwarder process (socket.pipe) moving
// the same bytes — the floor for "a Node process copying a stream between two sockets".
// Two relay paths: 'pinhole relay' keeps a window of frames in flight below the relay's queue;
// 'pinhole relay flood' sends as fast as the sender's client takes frames (like one TCP flow that
// does not know the relay's queue): the relay must hold the sender back, not drop (relay drops).
//
//   node dist/scripts/bench-relay.js [--seconds 5] [--sizes 64,1400,8000]
// Prints a table and writes bench/results/relay-<date>.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRelayClient, type RelayClient } from '../agent/relay/relay-client.js';
import { generatePrivateKey } from '../proto/wireguard/keys.js';
import { PINHOLE_BIN, REPO_ROOT } from './tunnels/paths.js';

const CLK_TCK = 100; // Linux USER_HZ
/** Payload bytes kept in flight between sender and receiver: below the relay's queue, so nothing is dropped. */
const WINDOW_BYTES = 1024 * 1024;
const WINDOW_FRAMES = 900;
const WARMUP_MS = 500;

interface Run {
  path: 'pinhole relay' | 'pinhole relay flood' | 'tcp pipe (reference)';
  size: number;
  seconds: number;
  bytes: number;
  frames: number;
  mbytesPerSec: number;
  framesPerSec: number;
  gbitPerSec: number;
  /** CPU seconds the relay (or forwarder) process used per Gbit moved = cores busy at 1 Gbit/s. */
  relayCpuSecPerGbit: number;
  relayCpuUtil: number;
  /** CPU of this process (both clients), for judging who the bottleneck was. */
  clientCpuUtil: number;
  /** Data frames the relay dropped during the run (queue overflow); null for the pipe. */
  relayDrops: number | null;
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}

const selfCpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

async function startRelay(): Promise<{ proc: ChildProcess; url: string; key: Uint8Array }> {
  const proc = spawn(process.execPath, [PINHOLE_BIN, 'relay', '--open', '--listen', '127.0.0.1:0', '--stun', '127.0.0.1:0', '--rate-limit', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PINHOLE_LOG_LEVEL: 'warn' },
  });
  let out = '';
  for await (const chunk of proc.stdout!) {
    out += String(chunk);
    const m = /listening (ws:\/\/\S+).*\npinhole relay key (\S+)\n/.exec(out);
    if (m) return { proc, url: m[1]!, key: new Uint8Array(Buffer.from(m[2]!, 'base64')) };
  }
  throw new Error(`relay did not start: ${out}`);
}

/** Keeps a window of frames in flight from a to b for the given time; counts what b receives. */
async function relayDrops(url: string): Promise<number> {
  const h = await (await fetch(url.replace('ws://', 'http://').replace('/relay', '/healthz'))).json() as { counters: { drops: Record<string, number> } };
  return (h.counters.drops.queueOverflow ?? 0) + (h.counters.drops.globalBudget ?? 0);
}

/** Keeps a window of frames in flight from a to b (or floods, window = Infinity) for the given time; counts what b receives. */
async function measureRelay(pid: number, url: string, a: RelayClient, b: RelayClient, size: number, seconds: number, flood: boolean): Promise<Run> {
  const payload = randomBytes(size);
  const window = flood ? Infinity : Math.min(WINDOW_FRAMES, Math.floor(WINDOW_BYTES / size));
  const d0 = await relayDrops(url);
  let sent = 0;
  let received = 0;
  let wake: (() => void) | null = null;
  const off = b.onRecv(() => { received++; if (wake && sent - received < window / 2) { const w = wake; wake = null; w(); } });
  let running = true;
  const pump = (async () => {
    while (running) {
      while (running && sent - received < window) {
        sent++;
        if (!a.send(b.nodeKey, payload)) await once(a, 'drain');
      }
      if (running) await new Promise<void>((r) => { wake = r; setTimeout(r, 50); });
    }
  })();
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const r0 = received, c0 = cpuSeconds(pid), s0 = selfCpu(), t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const r1 = received, c1 = cpuSeconds(pid), s1 = selfCpu(), t1 = performance.now();
  running = false;
  await pump;
  await new Promise((r) => setTimeout(r, 200));
  off();
  return { ...result(flood ? 'pinhole relay flood' : 'pinhole relay', size, (t1 - t0) / 1000, (r1 - r0) * size, r1 - r0, c1 - c0, s1 - s0), relayDrops: (await relayDrops(url)) - d0 };
}

function result(path: Run['path'], size: number, secs: number, bytes: number, frames: number, relayCpu: number, selfCpuSecs: number): Run {
  const gbit = (bytes * 8) / 1e9;
  return {
    path, size, seconds: secs, bytes, frames,
    mbytesPerSec: bytes / secs / 1e6, framesPerSec: frames / secs, gbitPerSec: gbit / secs,
    relayCpuSecPerGbit: relayCpu / gbit, relayCpuUtil: relayCpu / secs, clientCpuUtil: selfCpuSecs / secs, relayDrops: null,
  };
}

// The reference: a forwarder that pipes the first connection into the second.
const PIPE_FORWARDER = `
const net = require('node:net'); let first = null;
const srv = net.createServer((s) => { s.on('error', () => {}); s.setNoDelay(true); if (!first) { first = s; return; } first.pipe(s); s.resume(); });
srv.listen(0, '127.0.0.1', () => console.log('port ' + srv.address().port));`;

async function measurePipe(size: number, seconds: number): Promise<Run> {
  const proc = spawn(process.execPath, ['-e', PIPE_FORWARDER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    let out = '';
    let port = 0;
    for await (const chunk of proc.stdout!) {
      out += String(chunk);
      const m = /port (\d+)/.exec(out);
      if (m) { port = Number(m[1]); break; }
    }
    const open = async (): Promise<Socket> => { const s = connect(port, '127.0.0.1'); await once(s, 'connect'); s.setNoDelay(true); return s; };
    const src = await open();
    await new Promise((r) => setTimeout(r, 50));
    const dst = await open();
    let received = 0;
    dst.on('data', (d: Buffer) => { received += d.length; });
    // Writes of the relay client's batch size (64 KiB), with backpressure.
    const chunk = randomBytes(64 * 1024);
    let running = true;
    src.on('error', () => undefined);
    dst.on('error', () => undefined);
    const drainedOrClosed = () => new Promise<void>((resolve) => {
      const done = () => { src.off('drain', done); src.off('close', done); resolve(); };
      src.on('drain', done);
      src.on('close', done);
    });
    const pump = (async () => { while (running && !src.destroyed) if (!src.write(chunk)) await drainedOrClosed(); })();
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    const r0 = received, c0 = cpuSeconds(proc.pid!), s0 = selfCpu(), t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    const r1 = received, c1 = cpuSeconds(proc.pid!), s1 = selfCpu(), t1 = performance.now();
    running = false;
    src.destroy();
    dst.destroy();
    await pump.catch(() => undefined);
    const bytes = r1 - r0;
    return result('tcp pipe (reference)', size, (t1 - t0) / 1000, bytes, Math.round(bytes / size), c1 - c0, s1 - s0);
  } finally {
    proc.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, sizes: { type: 'string', default: '64,1400,8000' } } });
  const seconds = Number(values.seconds);
  const sizes = values.sizes!.split(',').map(Number);
  if (!(seconds > 0) || sizes.some((s) => !(s > 0 && s <= 65_000))) throw new Error('usage: bench-relay [--seconds N] [--sizes 64,1400]');

  const { proc, url, key } = await startRelay();
  const runs: Run[] = [];
  try {
    const a = createRelayClient({ url, relayKey: key, nodePrivateKey: generatePrivateKey(), reconnect: false });
    const b = createRelayClient({ url, relayKey: key, nodePrivateKey: generatePrivateKey(), reconnect: false });
    await Promise.all([a.ready(), b.ready()]);
    for (const size of sizes) {
      for (const run of [await measureRelay(proc.pid!, url, a, b, size, seconds, false), await measureRelay(proc.pid!, url, a, b, size, seconds, true), await measurePipe(size, seconds)]) {
        runs.push(run);
        process.stderr.write(`${run.path} ${size} B: ${run.mbytesPerSec.toFixed(1)} MB/s\n`);
      }
    }
    await Promise.all([a.close(), b.close()]);
    const h = await (await fetch(url.replace('ws://', 'http://').replace('/relay', '/healthz'))).json() as { counters: { drops: Record<string, number> } };
    const drops = h.counters.drops;
    if (drops.queueOverflow || drops.unknownDestination) process.stderr.write(`warning: relay dropped frames: ${JSON.stringify(drops)}\n`);
  } finally {
    proc.kill('SIGTERM');
  }

  const head = ['path', 'size', 'MB/s', 'frames/s', 'Gbit/s', 'relay CPU s/Gbit', 'relay CPU', 'clients CPU', 'relay drops', 'vs pipe'];
  const rows = runs.map((r) => {
    const ref = r.path === 'tcp pipe (reference)' ? undefined : runs.find((x) => x.size === r.size && x.path === 'tcp pipe (reference)');
    return [r.path, String(r.size), r.mbytesPerSec.toFixed(1), Math.round(r.framesPerSec).toString(), r.gbitPerSec.toFixed(3),
      r.relayCpuSecPerGbit.toFixed(3), `${(r.relayCpuUtil * 100).toFixed(0)}%`, `${(r.clientCpuUtil * 100).toFixed(0)}%`, r.relayDrops === null ? '-' : String(r.relayDrops),
      ref ? `${(r.mbytesPerSec / ref.mbytesPerSec).toFixed(2)}x` : ''];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`${[line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n')}\n`);

  const dir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const date = new Date().toISOString();
  const file = join(dir, `relay-${date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
  writeFileSync(file, `${JSON.stringify({ date, node: process.version, seconds, note: 'two relay clients in one process, relay in its own; loopback; 2 shared cores', runs }, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench-relay: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
