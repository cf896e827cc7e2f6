// Measuring a path: iperf3 TCP throughput between two lab hosts and a process's CPU time from
// /proc (for relay CPU per Gbit/s).
import { readdirSync, readFileSync } from 'node:fs';
import type { Host } from '../natlab/index.js';

const CLK_TCK = 100; // Linux USER_HZ

export interface IperfResult {
  /** Receiver's goodput, Mbit/s. */
  mbps: number;
  /** Payload bytes the receiver got. */
  bytes: number;
  seconds: number;
  /** TCP retransmissions the sender counted. */
  retransmits: number | null;
}

/** CPU seconds (user + system) process `pid` has used so far. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime
}

/** One thread's scheduler times so far (ns): on a CPU, and runnable but waiting for one. */
export interface ThreadSched { run: bigint; wait: bigint }

/**
 * Nanoseconds each thread of process `pid` has run, and has waited runnable for a CPU, so far, from
 * /proc/PID/task/TID/schedstat: the scheduler's exact times. utime and stime (processCpuSeconds)
 * are sampled at the clock tick (CONFIG_TICK_CPU_ACCOUNTING, 10 ms here): a process that wakes a
 * few times a second for well under a tick is charged a whole tick or nothing, so over a minute at
 * idle they measure noise.
 */
export function threadSchedNanos(pid: number): Map<number, ThreadSched> {
  const out = new Map<number, ThreadSched>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ');
      out.set(Number(tid), { run: BigInt(run!), wait: BigInt(wait!) });
    } catch { /* the thread ended between the listing and the read */ }
  }
  return out;
}

/**
 * Seconds process `pid` ran, and waited runnable for a CPU, between two threadSchedNanos readings,
 * summed over its threads (a thread that ended in between is left out: its last reading is gone
 * with it).
 */
export function schedSecondsBetween(before: Map<number, ThreadSched>, after: Map<number, ThreadSched>): { run: number; wait: number } {
  let run = 0n;
  let wait = 0n;
  for (const [tid, t] of after) {
    const b = before.get(tid);
    run += t.run - (b?.run ?? 0n);
    wait += t.wait - (b?.wait ?? 0n);
  }
  return { run: Number(run) / 1e9, wait: Number(wait) / 1e9 };
}

/** Idle CPU seconds of the whole machine so far, all cores together (/proc/stat: idle + iowait). */
export function machineIdleSeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  return (Number(f[4]) + Number(f[5])) / CLK_TCK;
}

/** iperf3 TCP from `client` to a server on `server` bound to `ip`, for `seconds`. */
export async function iperfTcp(client: Host, server: Host, ip: string, seconds: number, port = 5201): Promise<IperfResult> {
  const srv = server.spawn(['iperf3', '-s', '-1', '-B', ip, '-p', String(port), '--forceflush']);
  try {
    await srv.waitForOutput(/Server listening/, 10_000);
    const r = await client.exec(['iperf3', '-c', ip, '-p', String(port), '-t', String(seconds), '-J', '--connect-timeout', '5000'],
      { timeoutMs: (seconds + 30) * 1000 });
    let report: { error?: string; end?: { sum_received?: { bits_per_second?: number; bytes?: number; seconds?: number }; sum_sent?: { retransmits?: number } } };
    try { report = JSON.parse(r.stdout); } catch { throw new Error(`iperf3 printed no JSON (exit ${r.code}): ${r.stderr.trim()}`); }
    const rx = report.end?.sum_received;
    if (report.error || rx?.bits_per_second === undefined) throw new Error(`iperf3: ${report.error ?? 'no sum_received in report'}`);
    return { mbps: rx.bits_per_second / 1e6, bytes: rx.bytes ?? 0, seconds: rx.seconds ?? seconds, retransmits: report.end?.sum_sent?.retransmits ?? null };
  } finally {
    await srv.kill('SIGTERM', 2000);
  }
}
