// Runs one program (argv, never a shell string) and collects its exit code and output.
import { spawn, execFileSync } from 'node:child_process';
import { constants } from 'node:os';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Kill the command (its whole process group) after this many ms. Default 30 000. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** Extra environment variables (merged over process.env). */
  env?: Record<string, string>;
  cwd?: string;
  signal?: AbortSignal;
}

/** A command exited non-zero (or was killed) where success was required. */
export class CommandFailedError extends Error {
  constructor(readonly argv: readonly string[], readonly result: ExecResult) {
    const detail = (result.stderr || result.stdout).trim().split('\n').slice(-3).join(' | ');
    super(`command failed (exit ${result.code}): ${argv.join(' ')}${detail ? `: ${detail}` : ''}`);
    this.name = 'CommandFailedError';
  }
}

/** A command ran longer than its timeout and was killed. */
export class CommandTimeoutError extends Error {
  constructor(readonly argv: readonly string[], readonly timeoutMs: number, readonly result: ExecResult) {
    super(`command timed out after ${timeoutMs} ms: ${argv.join(' ')}`);
    this.name = 'CommandTimeoutError';
  }
}

const MAX_CAPTURE = 4 * 1024 * 1024;

/** Runs argv; resolves with the exit code (128+signal when killed); rejects only on timeout/abort/spawn failure. */
export function execArgv(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      cwd: opts.cwd,
      detached: true, // own process group, so a timeout kills the command and its children
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout!.on('data', (b: Buffer) => { if (outLen < MAX_CAPTURE) { out.push(b); outLen += b.length; } });
    child.stderr!.on('data', (b: Buffer) => { if (errLen < MAX_CAPTURE) { err.push(b); errLen += b.length; } });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => { /* command exited before reading its input */ });
      child.stdin!.end(opts.input);
    }
    let failure: Error | undefined;
    const killGroup = () => {
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ }
    };
    const timer = setTimeout(() => {
      failure = new CommandTimeoutError(argv, timeoutMs, collect(-1));
      killGroup();
    }, timeoutMs);
    const onAbort = () => {
      failure = opts.signal?.reason instanceof Error ? opts.signal.reason : new Error('aborted');
      killGroup();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();
    const collect = (code: number): ExecResult => ({
      code,
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure) return reject(failure);
      resolve(collect(code ?? 128 + signalNumber(signal)));
    });
  });
}

/** Runs argv and returns its stdout; throws CommandFailedError on a non-zero exit. */
export async function runArgv(argv: readonly string[], opts: ExecOptions = {}): Promise<string> {
  const result = await execArgv(argv, opts);
  if (result.code !== 0) throw new CommandFailedError(argv, result);
  return result.stdout;
}

/** Synchronous best-effort run for exit handlers, where nothing asynchronous can happen any more. */
export function runArgvSync(argv: readonly string[]): string {
  try {
    return execFileSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).toString();
  } catch {
    return '';
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  return signal ? (constants.signals[signal] ?? 0) : 0;
}
