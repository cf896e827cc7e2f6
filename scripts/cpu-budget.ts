// A CPU budget for one benchmark process: a cgroup of its own with a CFS quota, so that on this
// shared machine the process gets at most `cores` of CPU time, as if it ran on a machine of its
// own that size. Benchmarks use it to emulate one machine per relay: with every process on the
// same two cores, an extra hop takes its CPU from the hops beside it, which is not what a second
// machine does. cgroup v1 (the `cpu` controller at /sys/fs/cgroup/cpu, as on these machines) or
// v2 (cpu.max); a budget set to null is unlimited. remove() moves nothing: end the process first.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const V2_ROOT = '/sys/fs/cgroup';
const V1_ROOT = '/sys/fs/cgroup/cpu';
const PERIOD_US = 10_000;

export interface CpuBudget {
  readonly dir: string;
  /** Moves the process (all its threads) into the budget. */
  add(pid: number): void;
  /** At most `cores` of CPU from now on; null: unlimited. */
  limit(cores: number | null): void;
  /** How often, and for how long in all, the quota has held the budget's processes back so far. */
  usage(): { throttled: number; throttledSeconds: number };
  remove(): void;
}

function v2(): boolean {
  return existsSync(join(V2_ROOT, 'cgroup.controllers'));
}

/** A new budget named `name` (unique per run: the caller adds its own suffix); unlimited until limit(). */
export function createCpuBudget(name: string): CpuBudget {
  if (!/^[a-z0-9-]{1,64}$/.test(name)) throw new Error(`cpu budget: bad name ${JSON.stringify(name)}`);
  const unified = v2();
  const root = unified ? V2_ROOT : V1_ROOT;
  if (!existsSync(root)) throw new Error(`cpu budget: no cpu cgroup controller at ${root}`);
  if (unified) {
    const enabled = readFileSync(join(root, 'cgroup.subtree_control'), 'utf8');
    if (!/\bcpu\b/.test(enabled)) writeFileSync(join(root, 'cgroup.subtree_control'), '+cpu');
  }
  const dir = join(root, name);
  mkdirSync(dir);
  const stat = (): Map<string, number> => {
    const m = new Map<string, number>();
    for (const line of readFileSync(join(dir, 'cpu.stat'), 'utf8').split('\n')) {
      const [k, v] = line.split(' ');
      if (k && v) m.set(k, Number(v));
    }
    return m;
  };
  return {
    dir,
    add(pid) { writeFileSync(join(dir, 'cgroup.procs'), String(pid)); },
    limit(cores) {
      if (cores !== null && !(cores > 0)) throw new Error(`cpu budget: bad core count ${cores}`);
      const quota = cores === null ? null : Math.round(cores * PERIOD_US);
      if (unified) writeFileSync(join(dir, 'cpu.max'), `${quota ?? 'max'} ${PERIOD_US}`);
      else {
        writeFileSync(join(dir, 'cpu.cfs_period_us'), String(PERIOD_US));
        writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quota ?? -1));
      }
    },
    usage() {
      const s = stat();
      return unified
        ? { throttled: s.get('nr_throttled') ?? 0, throttledSeconds: (s.get('throttled_usec') ?? 0) / 1e6 }
        : { throttled: s.get('nr_throttled') ?? 0, throttledSeconds: (s.get('throttled_time') ?? 0) / 1e9 };
    },
    remove() {
      // A cgroup whose last process just exited can take a moment to be empty.
      for (let i = 0; ; i++) {
        try { rmdirSync(dir); return; } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
          if (i >= 50) throw err;
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
        }
      }
    },
  };
}

/**
 * Removes budgets named `prefix`* that a run killed before its cleanup left behind. Only empty
 * ones go: the kernel refuses to remove a cgroup that still holds a process (a run going on now).
 */
export function removeStaleCpuBudgets(prefix: string): number {
  const root = v2() ? V2_ROOT : V1_ROOT;
  let removed = 0;
  for (const name of existsSync(root) ? readdirSync(root) : []) {
    if (!name.startsWith(prefix)) continue;
    try { rmdirSync(join(root, name)); removed++; } catch { /* busy: in use */ }
  }
  return removed;
}
