// Applies a KernelRoutePlan (route-plan.ts) to this network namespace and takes it all back out:
// only the difference from what is installed is touched, in an order that never opens a loop
// (bypass rules before the default route, the lookup rule removed first). Leftovers of a daemon
// that was killed are swept at start: our table is flushed and our rule priorities cleared.
import { formatCidr, parseCidr } from '../../proto/ip/address.js';
import { ipJson, runIpBatch } from './ip-batch.js';
import { familyOf, PREF_BYPASS, PREF_LOOKUP, ROUTE_TABLE, type KernelRoutePlan, type RouteTableEntry } from './route-plan.js';

export interface InstalledRoutes {
  table: number;
  routes: string[];
  bypass: number;
  lastError: string | null;
}

const hostPrefix = (addr: string): string => `${addr}/${familyOf(addr) === 4 ? 32 : 128}`;

export class RouteInstaller {
  private table = new Map<string, RouteTableEntry>();
  private bypass = new Set<string>();
  private lookup = { 4: false, 6: false };
  private lastError: string | null = null;
  /** A command failed last time: re-issue every wanted entry (routes replace, rules may exist). */
  private retry = false;

  constructor(private readonly tunName: string, private readonly onError: (msg: string) => void) {}

  status(): InstalledRoutes {
    return {
      table: ROUTE_TABLE,
      routes: [...this.table.values()].map((e) => (e.type === 'throw' ? `throw ${e.cidr}` : e.cidr)),
      bypass: this.bypass.size,
      lastError: this.lastError,
    };
  }

  /** Makes the kernel match the plan. */
  async apply(plan: KernelRoutePlan): Promise<void> {
    const wanted = new Map(plan.table.map((e) => [`${e.type} ${e.cidr}`, e]));
    const have = new Map([...this.table.values()].map((e) => [`${e.type} ${e.cidr}`, e]));
    const wantBypass = new Set(plan.bypass);
    const wantLookup = { 4: plan.table.some((e) => familyOf(e.cidr) === 4), 6: plan.table.some((e) => familyOf(e.cidr) === 6) };
    const retry = this.retry;
    this.retry = false;
    const present = (k: string): boolean => !retry && have.has(k);
    const presentBypass = (a: string): boolean => !retry && this.bypass.has(a);
    const presentLookup = (f: 4 | 6): boolean => !retry && this.lookup[f];
    for (const family of [4, 6] as const) {
      const inFamily = (t: string): boolean => familyOf(t) === family;
      const lines: string[] = [];
      // Going away first: the lookup rule (if no longer wanted), then routes, then bypass rules.
      if (this.lookup[family] && !wantLookup[family]) lines.push(this.lookupRule('del'));
      for (const [k, e] of have) if (!wanted.has(k) && inFamily(e.cidr)) lines.push(this.routeLine('del', e));
      // Coming in: bypass rules before any default route, the lookup rule last.
      for (const a of wantBypass) if (!presentBypass(a) && inFamily(a)) lines.push(this.bypassRule('add', a));
      for (const [k, e] of wanted) if (!present(k) && inFamily(e.cidr)) lines.push(this.routeLine('replace', e));
      if (!presentLookup(family) && wantLookup[family]) lines.push(this.lookupRule('add'));
      for (const a of this.bypass) if (!wantBypass.has(a) && inFamily(a)) lines.push(this.bypassRule('del', a));
      await this.run(family, lines);
    }
    this.table = new Map(plan.table.map((e) => [`${e.type} ${e.cidr}`, e]));
    this.bypass = wantBypass;
    this.lookup = wantLookup;
  }

  /** Removes everything this installer put in. */
  async clear(): Promise<void> {
    await this.apply({ table: [], bypass: [] });
  }

  /** Removes what an earlier run of the agent may have left: our table's routes and our rule priorities. */
  async sweep(): Promise<void> {
    for (const family of [4, 6] as const) {
      const lines = [`route flush table ${ROUTE_TABLE}`];
      for (const r of await ipJson([`-${family}`, 'rule', 'show'])) {
        const pref = r.priority;
        if (typeof pref !== 'number' || pref < PREF_BYPASS || pref > PREF_LOOKUP) continue;
        const to = typeof r.dst === 'string' ? ` to ${r.dst}${typeof r.dstlen === 'number' ? `/${r.dstlen}` : ''}` : '';
        lines.push(`rule del pref ${pref}${to} table ${String(r.table)}`);
      }
      // A family the kernel lacks (IPv6 disabled) fails here; nothing of ours can be there anyway.
      await runIpBatch(family, lines).catch(() => undefined);
    }
    this.table.clear();
    this.bypass.clear();
    this.lookup = { 4: false, 6: false };
  }

  private routeLine(op: 'replace' | 'del', e: RouteTableEntry): string {
    const cidr = formatCidr(parseCidr(e.cidr)); // only canonical prefixes reach the command line
    return e.type === 'throw' ? `route ${op} throw ${cidr} table ${ROUTE_TABLE}` : `route ${op} ${cidr} dev ${this.tunName} table ${ROUTE_TABLE}`;
  }

  private bypassRule(op: 'add' | 'del', addr: string): string {
    return `rule ${op} pref ${PREF_BYPASS} to ${formatCidr(parseCidr(hostPrefix(addr)))} lookup main`;
  }

  private lookupRule(op: 'add' | 'del'): string {
    return `rule ${op} pref ${PREF_LOOKUP} lookup ${ROUTE_TABLE}`;
  }

  private async run(family: 4 | 6, lines: string[]): Promise<void> {
    if (lines.length === 0) return;
    const r = await runIpBatch(family, lines);
    // Deleting what is already gone (the TUN took its routes with it) is not worth a warning.
    const errors = r.errors.filter((e) => !/^ip (route|rule) del .*(No such process|No such file or directory|Cannot find device)/.test(e)
      && !/^ip rule add .*File exists/.test(e));
    if (errors.length > 0) {
      this.retry = true;
      this.lastError = errors[0]!;
      this.onError(errors.join('; '));
    }
  }
}
