// `pinhole relay` as a real child process for tests and benchmarks: start it, learn its URL and
// STUN addresses from its "listening" line and its key from its "key" line, read /healthz, stop
// it by pid.
import { spawn, type ChildProcess } from 'node:child_process';
import { PINHOLE_BIN } from '../../scripts/tunnels/paths.js';

export interface RelayProcess {
  proc: ChildProcess;
  pid: number;
  url: string;
  httpPort: number;
  /** The relay's public key as it printed it (base64), and its bytes. */
  key: string;
  keyBytes: Uint8Array;
  /** ip:port of every STUN socket, primary first. */
  stun: Array<{ address: string; port: number }>;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  healthz(): Promise<RelayHealth>;
  /** SIGTERM (default) or SIGKILL, then wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface RelayHealth {
  status: string;
  relayKey: string;
  counters: {
    clients: number;
    clientsAccepted: number;
    refused: { unauthenticated: number; badProof: number; notAuthorized: number; authorizerUnavailable: number; perAddress: number };
    framesIn: number;
    framesOut: number;
    bytesIn: number;
    bytesOut: number;
    packetsForwarded: number;
    drops: { unknownDestination: number; queueOverflow: number; priorityOverflow: number; badFrame: number; clientGone: number; globalBudget: number };
    priorityDemoted: number;
    writeTimeouts: number;
    oversized: number;
    replaced: number;
    backpressurePauses?: number;
    backpressurePausedMs?: number;
    backpressureTimeouts?: number;
    idleTimeouts: number;
    peerGoneSent: number;
    rateLimitPauses: number;
    stun: { requests: number; successSent: number; errorsSent: number; changeRequests: number; notStun: number; malformed: number; ignored: number };
  };
  /** Bytes queued for all clients now, the most ever, and the cap (--global-queue-bytes). */
  queue: { usedBytes: number; peakBytes: number; capBytes: number };
  connections: { addresses: number; maxPerAddress: number };
}

/** Starts `node bin/pinhole relay ARGS` and resolves once it prints its listening and key lines. */
export async function startRelayProcess(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RelayProcess> {
  const proc = spawn(process.execPath, [PINHOLE_BIN, 'relay', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PINHOLE_LOG_LEVEL: 'warn', ...opts.env },
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  proc.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const m = await new Promise<RegExpMatchArray>((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`relay did not start: ${out}`)); }, opts.timeoutMs ?? 10_000);
    const check = () => {
      const found = out.match(/listening (wss?:\/\/[^\s]+:(\d+)\/relay) stun=(\S*).*\n(?:.*\n)*?pinhole relay key (\S+)\n/);
      if (found) {
        clearTimeout(timer);
        proc.stdout!.off('data', check);
        resolve(found);
      }
    };
    proc.stdout!.on('data', check);
    proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`relay exited with ${code}: ${out}`)); });
  });
  const stun = m[3]!.split(',').filter(Boolean).map((s) => {
    const i = s.lastIndexOf(':');
    return { address: s.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(s.slice(i + 1)) };
  });
  const httpPort = Number(m[2]);
  const rp: RelayProcess = {
    proc,
    pid: proc.pid!,
    url: m[1]!,
    httpPort,
    key: m[4]!,
    keyBytes: new Uint8Array(Buffer.from(m[4]!, 'base64')),
    stun,
    output: () => out,
    async healthz() {
      const res = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
      return (await res.json()) as RelayHealth;
    },
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
  return rp;
}

/** Polls until check() passes (or throws its last assertion error after timeoutMs). */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 5000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}
