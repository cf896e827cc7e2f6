// The command line every benchmark shares: `--seconds N --rounds N [-h]`, with per-script defaults.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { REPO_ROOT } from './tunnels/paths.js';

export interface BenchOptions { seconds: number; rounds: number }

export function parseBenchOptions(name: string, defaults: BenchOptions): BenchOptions {
  const usage = (): never => {
    process.stderr.write(`usage: ${name} [--seconds N] [--rounds N]\n`);
    process.exit(2);
  };
  let values;
  try {
    ({ values } = parseArgs({ options: { seconds: { type: 'string' }, rounds: { type: 'string' }, help: { type: 'boolean', short: 'h' } } }));
  } catch (err) {
    process.stderr.write(`${name}: ${(err as Error).message}\n`);
    return usage();
  }
  if (values.help) usage();
  const seconds = Number(values.seconds ?? defaults.seconds);
  const rounds = Number(values.rounds ?? defaults.rounds);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) usage();
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) usage();
  return { seconds, rounds };
}

/** A tool's version from its output (`re` group 1), or its first line; null if it does not run. */
export function toolVersion(argv: string[], re: RegExp): string | null {
  try {
    const out = execFileSync(argv[0]!, argv.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return out.match(re)?.[1] ?? out.trim().split('\n')[0] ?? null;
  } catch { return null; }
}

/** Median of the measured values (nulls are failed rounds and are left out). */
export function median(xs: ReadonlyArray<number | null>): number | null {
  const v = xs.filter((x): x is number => x !== null).sort((p, q) => p - q);
  if (v.length === 0) return null;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

export const ratio = (x: number | null, y: number | null): number | null => (x !== null && y !== null && y > 0 ? x / y : null);
export const fmt = (x: number | null, digits: number): string => (x === null ? '-' : x.toFixed(digits));

/**
 * SIGINT / SIGTERM while a benchmark runs: says so once and runs `teardown` (destroying the lab
 * kills every process in it, so whatever is in flight fails at once and unwinds through the
 * finally blocks that remove temp dirs); exits 130 if the run has not ended 15 s later. The
 * returned `aborted` tells the run to stop starting work.
 */
export function abortOnSignal(name: string, teardown: () => void): { readonly aborted: boolean } {
  const state = { aborted: false };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (state.aborted) return;
    state.aborted = true;
    process.stderr.write(`\n${name}: ${sig}, tearing down\n`);
    teardown();
    setTimeout(() => process.exit(130), 15_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return state;
}

/** Writes a benchmark's report as bench/results/NAME-<start time, to the second>.json; returns the path. */
export async function writeBenchReport(name: string, startedAt: Date, report: unknown): Promise<string> {
  const dir = join(REPO_ROOT, 'bench', 'results');
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}-${startedAt.toISOString().replace(/\.\d+Z$/, 'Z').replace(/:/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
  return file;
}

/**
 * Runs a benchmark's main: its result is the exit code; an error is one line on stderr, prefixed
 * with the benchmark's name, and exit code 1.
 */
export function runBench(name: string, main: () => Promise<number>): void {
  main().then((code) => { process.exitCode = code; }, (err: unknown) => {
    process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  });
}
