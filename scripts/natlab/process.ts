// A long-lived process inside a lab namespace: output capture, readiness wait, kill by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

export interface SpawnOptions {
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
  cwd?: string;
  /** 'pipe' exposes proc.stdin; default 'ignore'. */
  stdin?: 'ignore' | 'pipe';
  /** Also append stdout+stderr to this file (handy to keep a daemon's log after a failure). */
  logFile?: string;
}

export interface ExitStatus {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** waitForOutput() gave up: the text never appeared (or the process exited first). */
export class OutputTimeoutError extends Error {
  constructor(readonly pattern: RegExp | string, readonly timeoutMs: number, readonly tail: string) {
    super(`output ${String(pattern)} did not appear within ${timeoutMs} ms; last output: ${tail.slice(-400)}`);
    this.name = 'OutputTimeoutError';
  }
}

const MAX_KEEP = 1024 * 1024; // keep the last 1 MiB per stream

/** A process started with Host.spawn(). Runs in its own process group (pgid = pid). */
export class LabProcess {
  readonly pid: number;
  readonly stdin: Writable | null;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  private out = '';
  private err = '';
  private status: ExitStatus | null = null;
  private readonly child: ChildProcess;
  private readonly listeners = new Set<() => void>();
  private log: WriteStream | null = null;

  constructor(readonly ns: string, readonly argv: readonly string[], opts: SpawnOptions = {}) {
    // `ip netns exec` setns()es and then execs the command itself, so the pid is the command's.
    this.child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
      detached: true,
    });
    if (this.child.pid === undefined) {
      // spawn failures are reported asynchronously; 'ip' missing is the only realistic cause here
      throw new Error(`could not start ip netns exec for ${argv.join(' ')}`);
    }
    this.pid = this.child.pid;
    this.stdin = this.child.stdin;
    if (opts.logFile) this.log = createWriteStream(opts.logFile, { flags: 'a' });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => this.append('out', s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => this.append('err', s));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (e) => { this.append('err', `spawn error: ${e.message}\n`); });
      this.child.on('close', (code, signal) => {
        this.status = { code, signal };
        this.log?.end();
        this.notify();
        resolve(this.status);
      });
    });
  }

  /** Everything written to stdout so far (last 1 MiB). */
  get stdout(): string { return this.out; }
  /** Everything written to stderr so far (last 1 MiB). */
  get stderr(): string { return this.err; }
  /** stdout followed by stderr. */
  get output(): string { return this.out + this.err; }
  /** The exit status, or null while running. */
  get exitStatus(): ExitStatus | null { return this.status; }
  get running(): boolean { return this.status === null; }

  /** Sends a signal to the process group; no-op once exited. */
  signal(sig: NodeJS.Signals = 'SIGTERM'): void {
    if (this.status) return;
    try { process.kill(-this.pid, sig); } catch {
      try { process.kill(this.pid, sig); } catch { /* already gone */ }
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
  async kill(sig: NodeJS.Signals = 'SIGTERM', graceMs = 2000): Promise<ExitStatus> {
    if (this.status) return this.status;
    this.signal(sig);
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }

  /** Waits for exit; with timeoutMs, rejects if it is still running by then (the process keeps running). */
  async wait(timeoutMs?: number): Promise<ExitStatus> {
    if (timeoutMs === undefined) return this.exited;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`process ${this.pid} (${this.argv[0]}) still running after ${timeoutMs} ms`)), timeoutMs);
    });
    try { return await Promise.race([this.exited, timeout]); } finally { clearTimeout(timer); }
  }

  /** Resolves with the first match of pattern in stdout+stderr; rejects on timeout or exit without a match. */
  waitForOutput(pattern: RegExp | string, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    const re = typeof pattern === 'string' ? new RegExp(escapeRegExp(pattern)) : pattern;
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = this.out.match(re) ?? this.err.match(re);
        if (m) { done(); resolve(m); return true; }
        if (this.status) { done(); reject(new OutputTimeoutError(pattern, timeoutMs, `(exited ${JSON.stringify(this.status)}) ${this.output}`)); return true; }
        return false;
      };
      const timer = setTimeout(() => { done(); reject(new OutputTimeoutError(pattern, timeoutMs, this.output)); }, timeoutMs);
      const done = () => { clearTimeout(timer); this.listeners.delete(listener); };
      const listener = () => { check(); };
      if (!check()) this.listeners.add(listener);
    });
  }

  private append(which: 'out' | 'err', s: string): void {
    if (which === 'out') this.out = trim(this.out + s);
    else this.err = trim(this.err + s);
    this.log?.write(s);
    this.notify();
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }
}

function trim(s: string): string {
  return s.length > MAX_KEEP ? s.slice(s.length - MAX_KEEP) : s;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
