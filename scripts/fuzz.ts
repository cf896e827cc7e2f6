// Fuzzes every decoder and state machine that takes bytes from the network (scripts/fuzz/targets.ts)
// with random bytes and structure-aware mutations of valid messages, from one seed:
//
//   node dist/scripts/fuzz.js [--inputs N] [--seed S] [--target NAME[,NAME]] [--repro HEX] [--hang-seconds N]
//
// --inputs is the total over the chosen targets (default 1,000,000), split evenly. Each target
// runs in a worker thread; one whose input never returns is stopped and reported as a hang.
// A crash prints the target, seed, input index and the input as hex; `--target T --seed S
// --inputs K` replays the run up to it, `--target T --repro HEX` feeds that one input.
// Prints per-target counts and inputs/s and writes JSON under bench/results/. Exit 1 on a crash.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { cpus } from 'node:os';
import { FUZZ_TARGETS } from './fuzz/targets.js';
import { MAX_INPUT } from './fuzz/mutator.js';
import type { FuzzCrash, FuzzTargetResult } from './fuzz/runner.js';

const usage = (msg?: string): never => {
  if (msg) process.stderr.write(`fuzz: ${msg}\n`);
  process.stderr.write(`usage: fuzz [--inputs N] [--seed S] [--target NAME[,NAME]] [--repro HEX] [--hang-seconds N]\n  targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')}\n`);
  process.exit(2);
};

let values;
try {
  ({ values } = parseArgs({ options: {
    inputs: { type: 'string' }, seed: { type: 'string' }, target: { type: 'string', multiple: true }, repro: { type: 'string' },
    'hang-seconds': { type: 'string' }, help: { type: 'boolean', short: 'h' },
  } }));
} catch (err) {
  usage((err as Error).message);
}
if (values!.help) usage();
const total = Number(values!.inputs ?? 1_000_000);
if (!Number.isInteger(total) || total < 1) usage('--inputs: a positive integer');
const seed = values!.seed !== undefined ? Number(values!.seed) : (Date.now() ^ (process.pid << 12)) >>> 0;
if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) usage('--seed: 0..4294967295');
const hangMs = Number(values!['hang-seconds'] ?? 10) * 1000;
const names = (values!.target ?? []).flatMap((t) => t.split(',')).filter(Boolean);
for (const n of names) if (!FUZZ_TARGETS.some((t) => t.name === n)) usage(`unknown target ${n}`);
const chosen = names.length ? FUZZ_TARGETS.filter((t) => names.includes(t.name)) : FUZZ_TARGETS;

if (values!.repro !== undefined) {
  if (chosen.length !== 1) usage('--repro needs exactly one --target');
  const target = await chosen[0]!.make();
  try {
    target.run(Uint8Array.from(Buffer.from(values!.repro, 'hex')));
    process.stdout.write(`${chosen[0]!.name}: the input passed\n`);
  } finally {
    await target.close?.();
  }
  process.exit(0);
}

const here = dirname(fileURLToPath(import.meta.url));
const workerFile = join(here, 'fuzz', 'fuzz-worker.js');

function runInWorker(name: string, inputs: number): Promise<FuzzTargetResult> {
  const progress = new SharedArrayBuffer(8);
  const current = new SharedArrayBuffer(MAX_INPUT);
  const p = new Int32Array(progress);
  const started = performance.now();
  const worker = new Worker(workerFile, { workerData: { name, inputs, seed, progress, current } });
  return new Promise((resolve) => {
    let settled = false;
    let lastDone = -1;
    let lastMove = performance.now();
    const finish = (r: FuzzTargetResult): void => {
      if (settled) return;
      settled = true;
      clearInterval(watch);
      void worker.terminate();
      resolve(r);
    };
    const crashResult = (crash: FuzzCrash): FuzzTargetResult => {
      const ms = performance.now() - started;
      const done = Atomics.load(p, 0);
      return { name, inputs: done, ms, inputsPerSec: done / (ms / 1000), crash };
    };
    const watch = setInterval(() => {
      const done = Atomics.load(p, 0);
      if (done !== lastDone) { lastDone = done; lastMove = performance.now(); return; }
      if (performance.now() - lastMove > hangMs) {
        const len = Atomics.load(p, 1);
        finish(crashResult({
          kind: 'hang', seed: 0, index: done, hex: Buffer.from(new Uint8Array(current, 0, Math.min(len, MAX_INPUT))).toString('hex'),
          error: `no progress for ${hangMs / 1000} s at input ${done}`,
        }));
      }
    }, 250);
    worker.on('message', (r: FuzzTargetResult) => finish(r));
    worker.on('error', (err) => finish(crashResult({ kind: 'error', seed: 0, index: Atomics.load(p, 0), hex: '', error: `worker: ${err.stack ?? err.message}` })));
    worker.on('exit', (code) => finish(crashResult({ kind: 'error', seed: 0, index: Atomics.load(p, 0), hex: '', error: `worker exited (${code}) without a result` })));
  });
}

const per = Math.ceil(total / chosen.length);
process.stdout.write(`fuzz: seed ${seed}, ${per} inputs for each of ${chosen.length} targets\n`);
const results: FuzzTargetResult[] = [];
const t0 = performance.now();
for (const t of chosen) {
  const r = await runInWorker(t.name, per);
  results.push(r);
  const line = `${t.name.padEnd(20)} ${String(r.inputs).padStart(9)} inputs ${(r.ms / 1000).toFixed(1).padStart(6)} s ${Math.round(r.inputsPerSec).toString().padStart(8)} inputs/s  ${r.crash ? `CRASH (${r.crash.kind})` : 'ok'}`;
  process.stdout.write(`${line}\n`);
  if (r.crash) {
    process.stdout.write(`  ${r.crash.error.split('\n').join('\n  ')}\n  reproduce: --target ${t.name} --seed ${seed} --inputs ${r.crash.index + 1} (target seed ${r.crash.seed}, input #${r.crash.index})\n  input (hex, ${r.crash.hex.length / 2} bytes): ${r.crash.hex}\n`);
  }
}
const seconds = (performance.now() - t0) / 1000;
const inputs = results.reduce((s, r) => s + r.inputs, 0);
const crashes = results.filter((r) => r.crash).length;
process.stdout.write(`total: ${inputs} inputs in ${seconds.toFixed(1)} s (${Math.round(inputs / seconds)} inputs/s), ${crashes} crashes\n`);

const outDir = join(here, '..', '..', 'bench', 'results');
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `fuzz-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({
  kind: 'fuzz', date: new Date().toISOString(), seed, node: process.version, cpus: cpus().length,
  totalInputs: inputs, seconds, inputsPerSec: inputs / seconds, crashes, targets: results,
}, null, 2)}\n`);
process.stdout.write(`wrote ${file}\n`);
process.exit(crashes ? 1 : 0);
