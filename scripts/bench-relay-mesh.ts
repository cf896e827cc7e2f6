// Relay mesh benchmark on loopback: throughput of relay clients (agent/relay, in this process)
// through one `pinhole relay` process, and through two meshed ones (sender on relay 1, receiver
// on relay 2: every frame crosses the mesh link), in the same run. Bar: meshed ≥ 0.8 × one relay.
// Same window-of-frames pump as scripts/bench-relay.ts (below the relay queues: nothing dropped).
// A third path is the reference for what any extra hop costs on this machine: one relay, with the
// receiver connected to it through a TCP forwarder process that does nothing but copy bytes
// (node's socket.pipe, both ways). Every process shares the same cores, so an extra hop costs
// CPU (two more kernel copies of each byte, and a process to wake) even where it does no work.
//
//   node dist/scripts/bench-relay-mesh.js [--seconds 5] [--size 1400] [--rounds 2]
// Prints the figures and writes bench/results/relay-mesh-<date>.json.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createRelayClient, type RelayClient } from '../agent/relay/relay-client.js';
import { generatePrivateKey } from '../proto/wireguard/keys.js';
import { PINHOLE_BIN, REPO_ROOT } from './tunnels/paths.js';

const WINDOW_BYTES = 1024 * 1024;
const WINDOW_FRAMES = 900;
const WARMUP_MS = 500;

interface Relay { proc: ChildProcess; url: string; key: Uint8Array; port: number }

async function startRelay(port: number, extra: string[]): Promise<Relay> {
  const proc = spawn(process.execPath, [PINHOLE_BIN, 'relay', '--open', '--listen', `127.0.0.1:${port}`, '--stun', '127.0.0.1:0', '--rate-limit', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PINHOLE_LOG_LEVEL: 'warn' },
  });
  let out = '';
  for await (const chunk of proc.stdout!) {
    out += String(chunk);
    const m = /listening (ws:\/\/\S+:(\d+)\/relay).*\npinhole relay key (\S+)\n/.exec(out);
    if (m) return { proc, url: m[1]!, port: Number(m[2]), key: new Uint8Array(Buffer.from(m[3]!, 'base64')) };
  }
  proc.kill('SIGTERM');
  throw new Error(`relay did not start: ${out}`);
}

/** A process that accepts on a port and pipes each connection to 127.0.0.1:target, both ways. */
async function startForwarder(target: number): Promise<{ proc: ChildProcess; port: number }> {
  const script = `const net = require('node:net');
const s = net.createServer((c) => { const u = net.connect(${target}, '127.0.0.1'); c.pipe(u); u.pipe(c); c.on('error', () => u.destroy()); u.on('error', () => c.destroy()); });
s.listen(0, '127.0.0.1', () => console.log('port ' + s.address().port));`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of proc.stdout!) {
    out += String(chunk);
    const m = /port (\d+)\n/.exec(out);
    if (m) return { proc, port: Number(m[1]) };
  }
  proc.kill('SIGTERM');
  throw new Error(`forwarder did not start: ${out}`);
}

async function healthz(r: Relay): Promise<any> {
  return (await fetch(`http://127.0.0.1:${r.port}/healthz`)).json();
}

/** MB/s of packet payload b receives while a keeps a window of frames in flight. */
async function measure(a: RelayClient, b: RelayClient, size: number, seconds: number): Promise<{ mbytesPerSec: number; frames: number }> {
  const payload = randomBytes(size);
  const window = Math.min(WINDOW_FRAMES, Math.floor(WINDOW_BYTES / size));
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
  const r0 = received, t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const r1 = received, t1 = performance.now();
  running = false;
  await pump;
  await new Promise((r) => setTimeout(r, 200));
  off();
  return { mbytesPerSec: ((r1 - r0) * size) / ((t1 - t0) / 1000) / 1e6, frames: r1 - r0 };
}

/** Clients a on ra and b on rb (b through the port viaPort instead, when given). */
async function pair(ra: Relay, rb: Relay, viaPort?: number): Promise<[RelayClient, RelayClient]> {
  const via = new URL(rb.url);
  if (viaPort !== undefined) via.port = String(viaPort);
  const bUrl = via.toString();
  const a = createRelayClient({ url: ra.url, relayKey: ra.key, nodePrivateKey: generatePrivateKey(), reconnect: false });
  const b = createRelayClient({ url: bUrl, relayKey: rb.key, nodePrivateKey: generatePrivateKey(), reconnect: false });
  await Promise.all([a.ready(), b.ready()]);
  return [a, b];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, size: { type: 'string', default: '1400' }, rounds: { type: 'string', default: '2' } } });
  const seconds = Number(values.seconds);
  const size = Number(values.size);
  const rounds = Number(values.rounds);
  if (!(seconds > 0) || !(size > 0 && size <= 65_000) || !(rounds >= 1)) throw new Error('usage: bench-relay-mesh [--seconds N] [--size BYTES] [--rounds N]');
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-bench-mesh-'));
  const keyFile = join(dir, 'mesh.key');
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  // Every process started is ended in `finally`, also when a later one fails to start.
  const procs: ChildProcess[] = [];
  const started = <T extends { proc: ChildProcess }>(x: T): T => { procs.push(x.proc); return x; };
  const runs: Array<{ round: number; path: string; mbytesPerSec: number; frames: number }> = [];
  try {
    const single = started(await startRelay(0, []));
    // Two meshed relays: ports picked first so each can name the other.
    const p1 = 20000 + Math.floor(Math.random() * 20000);
    const p2 = p1 + 1;
    const mesh = [`ws://127.0.0.1:${p1}/relay`, `ws://127.0.0.1:${p2}/relay`].join(',');
    const m1 = started(await startRelay(p1, ['--mesh-with', mesh, '--mesh-key-file', keyFile]));
    const m2 = started(await startRelay(p2, ['--mesh-with', mesh, '--mesh-key-file', keyFile]));
    const forwarder = started(await startForwarder(single.port));
    for (let i = 0; i < 50; i++) {
      const [h1, h2] = await Promise.all([healthz(m1), healthz(m2)]);
      if (h1.counters.mesh.linksOut === 1 && h2.counters.mesh.linksOut === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const [sa, sb] = await pair(single, single);
    const [ma, mb] = await pair(m1, m2);
    const [fa, fb] = await pair(single, single, forwarder.port);
    for (let h = 0; h < 50 && (await healthz(m1)).counters.mesh.presence < 1; h++) await new Promise((r) => setTimeout(r, 100));
    for (let round = 1; round <= rounds; round++) {
      for (const [path, a, b] of [['one relay', sa, sb], ['two meshed relays', ma, mb], ['one relay + TCP forwarder', fa, fb]] as const) {
        const r = await measure(a, b, size, seconds);
        runs.push({ round, path, ...r });
        process.stderr.write(`round ${round} ${path}: ${r.mbytesPerSec.toFixed(1)} MB/s\n`);
      }
    }
    await Promise.all([sa, sb, ma, mb, fa, fb].map((c) => c.close()));
    const [h1, h2] = await Promise.all([healthz(m1), healthz(m2)]);
    if (h1.counters.mesh.forwardedOut === 0 || h2.counters.mesh.forwardedIn === 0) throw new Error('the meshed run did not cross the mesh');
    const median = (xs: number[]) => { const s = [...xs].sort((x, y) => x - y); return s[Math.floor(s.length / 2)]!; };
    const one = median(runs.filter((r) => r.path === 'one relay').map((r) => r.mbytesPerSec));
    const two = median(runs.filter((r) => r.path === 'two meshed relays').map((r) => r.mbytesPerSec));
    const hop = median(runs.filter((r) => r.path === 'one relay + TCP forwarder').map((r) => r.mbytesPerSec));
    const ratio = two / one;
    process.stdout.write(`one relay ${one.toFixed(1)} MB/s, two meshed relays ${two.toFixed(1)} MB/s: ratio ${ratio.toFixed(2)} (bar >= 0.8: ${ratio >= 0.8 ? 'met' : 'NOT met'})\n`);
    process.stdout.write(`reference, an extra hop that only copies: one relay + TCP forwarder ${hop.toFixed(1)} MB/s, ${(hop / one).toFixed(2)} of one relay; two meshed relays are ${(two / hop).toFixed(2)} of it\n`);
    const out = join(REPO_ROOT, 'bench', 'results');
    mkdirSync(out, { recursive: true });
    const date = new Date().toISOString();
    const file = join(out, `relay-mesh-${date.replace(/:/g, '-').replace(/\.\d+Z$/, 'Z')}.json`);
    writeFileSync(file, `${JSON.stringify({
      date, node: process.version, seconds, size, rounds, note: 'relay clients in this process, each relay its own process; loopback; 2 shared cores; medians over rounds',
      oneRelayMBps: one, meshedMBps: two, ratio, forwarderHopMBps: hop, forwarderHopRatio: hop / one, bar: 0.8, met: ratio >= 0.8, runs, meshDrops: { r1: h1.counters.mesh.drops, r2: h2.counters.mesh.drops },
    }, null, 2)}\n`);
    process.stdout.write(`wrote ${file}\n`);
  } finally {
    for (const p of procs) p.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench-relay-mesh: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
