// Link impairment (loss, delay, jitter, rate) on a link to the internet bridge.
//
// This kernel has no sch_netem (nor fq/etf, nor nft queue), so nothing in-kernel can delay a
// packet. Instead, while a link is impaired its bridge port is taken off the bridge and
// link-emulator.py forwards frames between it and a fresh veth on the bridge, applying netem's
// parameters in userspace. Good for latency/loss tests; not for multi-Gbit/s benchmarks.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Host } from './host.js';
import { ipIn } from './namespace.js';
import type { LabProcess } from './process.js';

export interface NetemOptions {
  /** Random loss, percent of frames (0–100), each direction. */
  lossPct?: number;
  /** Added one-way delay in ms, each direction (ping RTT grows by 2 x delayMs). */
  delayMs?: number;
  /** Uniform delay variation ± ms (may reorder, as netem does). */
  jitterMs?: number;
  /** Rate limit in Mbit/s, each direction. */
  rateMbit?: number;
}

/** True when opts asks for no impairment at all. */
export function isNoImpairment(opts: NetemOptions | null | undefined): boolean {
  return !opts || (!opts.lossPct && !opts.delayMs && !opts.jitterMs && !opts.rateMbit);
}

export function checkNetem(opts: NetemOptions | null): void {
  for (const [k, v] of Object.entries(opts ?? {})) {
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) throw new Error(`netem ${k} must be a number >= 0`);
  }
  if ((opts?.lossPct ?? 0) > 100) throw new Error('netem lossPct must be <= 100');
}

function emulatorScript(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // compiled code runs from dist/scripts/natlab/; the script stays in scripts/natlab/
  const candidates = [join(here, 'link-emulator.py'), join(here, '..', '..', '..', 'scripts', 'natlab', 'link-emulator.py')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`natlab: link-emulator.py not found (looked in ${candidates.join(', ')})`);
  return found;
}

/** Impairment of one bridge port, living in the internet namespace. */
export class LinkEmulator {
  private proc: LabProcess | null = null;
  private readonly emuSide: string;
  private readonly bridgeSide: string;

  /** port: the bridge port (veth end in the internet namespace) whose traffic gets impaired. */
  constructor(private readonly inet: Host, private readonly bridge: string, private readonly port: string, tapSuffix: string) {
    this.emuSide = `x${tapSuffix}`;
    this.bridgeSide = `y${tapSuffix}`;
  }

  get active(): boolean { return this.proc !== null; }

  async set(opts: NetemOptions | null): Promise<void> {
    checkNetem(opts);
    if (isNoImpairment(opts)) return this.clear();
    const settings = JSON.stringify({ lossPct: 0, delayMs: 0, jitterMs: 0, rateMbit: 0, ...opts });
    if (this.proc?.running) {
      this.proc.stdin!.write(`${settings}\n`);
      return;
    }
    const ns = this.inet.ns;
    await ipIn(ns, ['link', 'add', this.emuSide, 'type', 'veth', 'peer', 'name', this.bridgeSide]);
    await ipIn(ns, ['link', 'set', this.bridgeSide, 'master', this.bridge]);
    for (const dev of [this.emuSide, this.bridgeSide]) await ipIn(ns, ['link', 'set', dev, 'up']);
    await ipIn(ns, ['link', 'set', this.port, 'nomaster']);
    this.proc = this.inet.spawn(['python3', emulatorScript(), this.port, this.emuSide, settings], { stdin: 'pipe' });
    await this.proc.waitForOutput(/^ready$/m, 10_000);
  }

  /** Stops the emulator and puts the port back on the bridge. */
  async clear(): Promise<void> {
    if (!this.proc) return;
    const proc = this.proc;
    this.proc = null;
    proc.stdin?.end();
    await proc.kill('SIGTERM', 1000);
    await ipIn(this.inet.ns, ['link', 'del', this.emuSide]);
    await ipIn(this.inet.ns, ['link', 'set', this.port, 'master', this.bridge]);
  }
}
