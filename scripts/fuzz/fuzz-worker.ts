// One fuzz target in a worker thread, so scripts/fuzz.ts can stop a target whose input never
// returns (a hang) and still report that input from the shared buffer.
import { parentPort, workerData } from 'node:worker_threads';
import { FUZZ_TARGETS } from './targets.js';
import { runTarget } from './runner.js';

interface Job { name: string; inputs: number; seed: number; progress: SharedArrayBuffer; current: SharedArrayBuffer }

const job = workerData as Job;
const entry = FUZZ_TARGETS.find((t) => t.name === job.name);
if (!entry) throw new Error(`no fuzz target ${job.name}`);
const result = await runTarget(job.name, entry.make, {
  inputs: job.inputs, seed: job.seed, progress: new Int32Array(job.progress), current: new Uint8Array(job.current),
});
parentPort!.postMessage(result);
