// Runs one fuzz target for a number of inputs from a seed, in this thread. A crash (an escaped
// error, a broken invariant, or one input taking longer than SLOW_INPUT_MS) stops the target and
// is returned with what reproduces it: target, seed, input index and the input as hex. The
// optional shared buffers let a watching thread see progress and the input in flight, to report
// an input that never returns (fuzz-worker.ts, scripts/fuzz.ts).
import { MAX_INPUT, Prng, nextInput } from './mutator.js';
import type { FuzzTargetFactory } from './target.js';

export const SLOW_INPUT_MS = 2000;
const TICK_EVERY = 2000;

export interface FuzzCrash {
  kind: 'error' | 'invariant' | 'slow' | 'hang';
  /** The seed of the target's run and the index of the input in it (0-based; -1: setup or finish). */
  seed: number;
  index: number;
  hex: string;
  error: string;
}

export interface FuzzTargetResult {
  name: string;
  inputs: number;
  ms: number;
  inputsPerSec: number;
  crash: FuzzCrash | null;
}

export interface RunOptions {
  inputs: number;
  seed: number;
  /** [0] = inputs done, [1] = length of the input in flight (its bytes in `current`). */
  progress?: Int32Array;
  current?: Uint8Array;
}

/** The per-target seed: the run's seed mixed with the target's name, so targets differ. */
export function targetSeed(seed: number, name: string): number {
  let h = seed >>> 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export async function runTarget(name: string, make: FuzzTargetFactory, o: RunOptions): Promise<FuzzTargetResult> {
  const seed = targetSeed(o.seed, name);
  const rng = new Prng(seed);
  const target = await make();
  const started = performance.now();
  let done = 0;
  let crash: FuzzCrash | null = null;
  const fail = (index: number, input: Uint8Array, err: unknown, kind?: FuzzCrash['kind']): FuzzCrash => ({
    kind: kind ?? (err instanceof Error && err.name === 'FuzzInvariantError' ? 'invariant' : 'error'),
    seed, index, hex: Buffer.from(input).toString('hex'),
    error: err instanceof Error ? `${err.name}: ${err.message}\n${err.stack?.split('\n').slice(1, 6).join('\n') ?? ''}` : String(err),
  });
  try {
    for (; done < o.inputs; done++) {
      const input = nextInput(rng, target.corpus);
      const copy = Uint8Array.from(input); // the target may change its input in place
      if (o.progress && o.current) {
        o.current.set(copy.subarray(0, Math.min(copy.length, MAX_INPUT)));
        Atomics.store(o.progress, 1, copy.length);
      }
      const t0 = performance.now();
      try {
        target.run(input);
      } catch (err) {
        crash = fail(done, copy, err);
        break;
      }
      const took = performance.now() - t0;
      if (took > SLOW_INPUT_MS) { crash = fail(done, copy, new Error(`one input took ${took.toFixed(0)} ms`), 'slow'); break; }
      if (o.progress) Atomics.store(o.progress, 0, done + 1);
      if (target.tick && done % TICK_EVERY === TICK_EVERY - 1) await target.tick();
    }
    if (!crash && target.finish) {
      try { await target.finish(); } catch (err) { crash = fail(-1, new Uint8Array(0), err); }
    }
  } finally {
    await target.close?.();
  }
  const ms = performance.now() - started;
  return { name, inputs: done, ms, inputsPerSec: done / (ms / 1000), crash };
}
