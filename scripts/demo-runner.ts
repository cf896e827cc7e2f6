// What every demo shares: printing for a person, and a lab whose teardown runs on success,
// failure and SIGINT/SIGTERM alike, with the exit code set from the outcome.
import { createLab, type Lab } from './natlab/index.js';

export const say = (s = ''): void => { process.stdout.write(`${s}\n`); };
export const heading = (n: number, s: string): void => say(`\n== ${n}. ${s} ==`);
export const indent = (s: string): string => s.trimEnd().split('\n').map((l) => (l ? `  ${l}` : '')).join('\n');

export interface DemoSpec {
  /** natlab run name, and the title printed first. */
  labName: string;
  title: string;
  /** Number of the final "Tearing down" heading. */
  teardownStep: number;
  /** The demo itself; true when everything it shows worked. */
  run(lab: Lab): Promise<boolean>;
  /** Stops what run() started; returns the line that says what was removed. */
  teardown(lab: Lab): Promise<string>;
  okText: string;
  failText: string;
}

export async function runDemo(spec: DemoSpec): Promise<number> {
  const t0 = Date.now();
  const lab = await createLab({ name: spec.labName });
  say(`${spec.title} (natlab ${lab.prefix})`);
  let interrupted = false;
  // natlab's own handler kills the lab's processes on a signal; ours waits for the unwind below.
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return;
    interrupted = true;
    process.stderr.write(`\ndemo: ${sig}, tearing down\n`);
    void lab.destroy();
    setTimeout(() => process.exit(130), 10_000).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let ok = false;
  try {
    ok = await spec.run(lab);
  } catch (err) {
    if (!interrupted) process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  } finally {
    heading(spec.teardownStep, 'Tearing down');
    const removed = await spec.teardown(lab);
    await lab.destroy();
    say(`  ${removed}`);
  }
  if (interrupted) return 130;
  say(`\n${ok ? `OK: ${spec.okText}` : `FAILED: ${spec.failText}`} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return ok ? 0 : 1;
}

/** Runs a demo as the program's main: exit code from the outcome, one line on a crash. */
export function demoMain(spec: DemoSpec): void {
  runDemo(spec).then((code) => { process.exitCode = code; }, (err) => {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
