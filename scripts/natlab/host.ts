// A host = one network namespace; commands and daemons run inside it with `ip netns exec`.
import { execArgv, runArgv, type ExecOptions, type ExecResult } from './command.js';
import { LabProcess, type SpawnOptions } from './process.js';

export type HostRole = 'public' | 'inside' | 'router' | 'cgn';

export interface Host {
  /** Name given by the caller ('relay', 'h1', 'router', ...). */
  readonly name: string;
  readonly role: HostRole;
  /** Namespace name, for code that runs `ip netns exec NS ...` / `ip -n NS ...` itself. */
  readonly ns: string;
  /** Main IPv4 address (routers: the WAN address). */
  readonly ip: string;
  /** All IPv4 addresses of the host, main one first. */
  readonly ips: readonly string[];
  /** Runs argv inside the namespace; resolves with {code, stdout, stderr} whatever the exit code. */
  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Like exec, but throws CommandFailedError on a non-zero exit and returns stdout. */
  run(argv: readonly string[], opts?: ExecOptions): Promise<string>;
  /** Starts a long-lived process inside the namespace; lab.destroy() kills it if still running. */
  spawn(argv: readonly string[], opts?: SpawnOptions): LabProcess;
}

/** Where hosts register what they start, so teardown can find it. */
export interface ProcessRegistry {
  track(proc: LabProcess): void;
  assertAlive(): void;
}

export class NamespaceHost implements Host {
  constructor(
    readonly name: string,
    readonly role: HostRole,
    readonly ns: string,
    readonly ips: readonly string[],
    private readonly registry: ProcessRegistry,
  ) {}

  get ip(): string { return this.ips[0]!; }

  exec(argv: readonly string[], opts?: ExecOptions): Promise<ExecResult> {
    this.registry.assertAlive();
    return execArgv(['ip', 'netns', 'exec', this.ns, ...argv], opts);
  }

  run(argv: readonly string[], opts?: ExecOptions): Promise<string> {
    this.registry.assertAlive();
    return runArgv(['ip', 'netns', 'exec', this.ns, ...argv], opts);
  }

  spawn(argv: readonly string[], opts?: SpawnOptions): LabProcess {
    this.registry.assertAlive();
    const proc = new LabProcess(this.ns, argv, opts);
    this.registry.track(proc);
    return proc;
  }

  toString(): string {
    return `${this.name} (${this.ns}, ${this.ips.join(', ')})`;
  }
}
