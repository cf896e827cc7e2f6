// Watches the host's links, addresses and default routes through `ip -o monitor address route
// link` (iproute2 reads netlink for us; Node has no netlink API) and calls onChange, debounced,
// when the host may be on another network (change-filter.ts decides). If `ip` is missing or
// exits, it is restarted with a delay; callers keep a slow poll as the fallback.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import { parseMonitorLine, MAX_MONITOR_LINE } from './monitor-line.js';
import { LinkChangeFilter } from './change-filter.js';

const RESTART_DELAY_MS = 5000;
/** Give up after this many starts in a row that ended within RESTART_DELAY_MS (no `ip`, no netlink). */
const MAX_QUICK_FAILURES = 5;

export interface LinkMonitorOptions {
  /** Interfaces to ignore (the overlay TUN). */
  ignore: string[];
  onChange: (reasons: string[]) => void;
  log: Logger;
  /** The iproute2 binary; default "ip". */
  ipCommand?: string;
}

export class LinkMonitor {
  private proc: ChildProcess | null = null;
  private readonly filter: LinkChangeFilter;
  private timer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopped = true;
  private quickFailures = 0;
  /** Lines read and lines that were no event we know (for status and tests). */
  readonly counters = { lines: 0, unparsed: 0, changes: 0, restarts: 0 };

  constructor(private readonly opts: LinkMonitorOptions) {
    this.filter = new LinkChangeFilter(opts.ignore);
  }

  /** True while the `ip monitor` process runs. */
  get running(): boolean {
    return this.proc !== null;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.spawn();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.restartTimer);
    const p = this.proc;
    this.proc = null;
    if (p && p.exitCode === null) p.kill('SIGTERM');
  }

  private spawn(): void {
    const startedAt = Date.now();
    const proc = spawn(this.opts.ipCommand ?? 'ip', ['-o', 'monitor', 'address', 'route', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc = proc;
    let buf = '';
    proc.stdout!.setEncoding('utf8');
    proc.stdout!.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      if (buf.length > MAX_MONITOR_LINE) buf = ''; // a line this long is no event of ours
    });
    const ended = (why: string): void => {
      if (this.proc !== proc) return;
      this.proc = null;
      if (this.stopped) return;
      this.quickFailures = Date.now() - startedAt < RESTART_DELAY_MS ? this.quickFailures + 1 : 0;
      if (this.quickFailures >= MAX_QUICK_FAILURES) {
        this.opts.log.warn(`link monitor: \`ip monitor\` keeps failing (${why}); relying on the slow address poll`);
        return;
      }
      this.opts.log.warn(`link monitor: \`ip monitor\` ended (${why}); restarting in ${RESTART_DELAY_MS / 1000} s`);
      this.restartTimer = setTimeout(() => { this.counters.restarts++; if (!this.stopped) this.spawn(); }, RESTART_DELAY_MS);
      this.restartTimer.unref();
    };
    proc.on('error', (err) => ended(err.message));
    proc.on('exit', (code, signal) => ended(signal ?? `exit ${code}`));
  }

  private onLine(line: string): void {
    this.counters.lines++;
    const e = parseMonitorLine(line);
    if (e === null) { this.counters.unparsed++; return; }
    if (this.filter.observe(e, Date.now())) this.schedule();
  }

  private schedule(): void {
    clearTimeout(this.timer);
    const wait = this.filter.dueIn(Date.now());
    if (wait === null) return;
    this.timer = setTimeout(() => {
      const reasons = this.filter.take(Date.now());
      if (reasons === null) { this.schedule(); return; }
      this.counters.changes++;
      try {
        this.opts.onChange(reasons);
      } catch (err) {
        this.opts.log.error(`link monitor: change handler failed: ${(err as Error).stack ?? String(err)}`);
      }
    }, wait);
    this.timer.unref();
  }
}
