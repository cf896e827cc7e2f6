// Many `ip` commands in one process: `ip -4|-6 -force -batch -` with the commands on stdin. -force
// runs every line even after one fails; the failures come back as one-line reasons.
import { spawn } from 'node:child_process';

const IP_TIMEOUT_MS = 15_000;

export interface BatchResult {
  /** stderr lines of the commands that failed (empty when all succeeded). */
  errors: string[];
}

export class IpCommandError extends Error {
  override readonly name = 'IpCommandError';
}

/** Runs the lines (e.g. "route replace 198.18.5.0/24 dev ph0 table 5270") for one address family. */
export function runIpBatch(family: 4 | 6, lines: readonly string[]): Promise<BatchResult> {
  if (lines.length === 0) return Promise.resolve({ errors: [] });
  const argv = [`-${family}`, '-force', '-batch', '-'];
  return new Promise((resolve, reject) => {
    const child = spawn('ip', argv, { stdio: ['pipe', 'ignore', 'pipe'], timeout: IP_TIMEOUT_MS });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(new IpCommandError(err.code === 'ENOENT' ? 'the ip command (iproute2) is not installed' : `ip -batch: ${err.message}`));
    });
    child.on('close', (code) => {
      if (code === 0) return resolve({ errors: [] });
      // iproute2 prints the kernel's complaint, then "Command failed -:N" naming the line.
      const errors: string[] = [];
      let reason = '';
      for (const l of stderr.split('\n')) {
        const m = /^Command failed -:(\d+)/.exec(l);
        if (m) {
          errors.push(`ip ${lines[Number(m[1]) - 1] ?? '?'}: ${reason || 'failed'}`);
          reason = '';
        } else if (l.trim()) {
          reason = l.trim();
        }
      }
      resolve({ errors: errors.length > 0 ? errors : [`ip -batch exited with ${code}: ${stderr.trim().split('\n')[0] ?? ''}`] });
    });
    child.stdin.end(`${lines.join('\n')}\n`);
  });
}

/** `ip -j ARGS` parsed (e.g. ['-4', 'rule', 'show']); [] when the family is unavailable. */
export function ipJson(args: readonly string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('ip', ['-j', ...args], { stdio: ['ignore', 'pipe', 'pipe'], timeout: IP_TIMEOUT_MS });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
    child.on('error', (err) => reject(new IpCommandError(`ip -j ${args.join(' ')}: ${err.message}`)));
    child.on('close', (code) => {
      if (code !== 0) return resolve([]);
      try {
        const v = JSON.parse(out || '[]') as unknown;
        resolve(Array.isArray(v) ? (v as Record<string, unknown>[]) : []);
      } catch {
        reject(new IpCommandError(`ip -j ${args.join(' ')}: output is not JSON`));
      }
    });
  });
}
