// What a fuzz target is: a name, valid messages to mutate (its corpus), and a function that feeds
// one input to the code under test and throws only for a crash. Expected rejections (DecodeError,
// or the few typed errors a component documents) are caught inside `run`; anything else that
// escapes, a broken invariant (FuzzInvariantError), or a hang is a crash.
import { DecodeError } from '../../proto/errors.js';

export interface FuzzTarget {
  name: string;
  /** Valid inputs the mutator starts from (structure-aware fuzzing). */
  corpus: Uint8Array[];
  /** Feeds one input. Throws only for a crash. */
  run(input: Uint8Array): void;
  /** Called every few thousand inputs: lets sockets and timers run (async components). */
  tick?(): Promise<void>;
  /** End-of-run invariants (tables bounded, counters consistent); throws on a broken one. */
  finish?(): Promise<void> | void;
  close?(): Promise<void> | void;
}

export type FuzzTargetFactory = () => Promise<FuzzTarget> | FuzzTarget;

export class FuzzInvariantError extends Error {
  override readonly name = 'FuzzInvariantError';
}

export function invariant(ok: unknown, what: string): asserts ok {
  if (!ok) throw new FuzzInvariantError(what);
}

/** Runs f; a DecodeError (or one of `also`) is an expected rejection, returned as false. */
export function rejects(f: () => unknown, also: ReadonlyArray<new (...a: never[]) => Error> = []): boolean {
  try {
    f();
    return true;
  } catch (err) {
    if (err instanceof DecodeError || also.some((c) => err instanceof c)) return false;
    throw err;
  }
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
