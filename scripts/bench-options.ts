// The command line every benchmark shares: `--seconds N --rounds N [-h]`, with per-script defaults.
import { execFileSync } from 'node:child_process';
import { parseArgs } from 'node:util';

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
