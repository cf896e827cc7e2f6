// Applies a KernelRoutePlan (route-plan.ts) to this network namespace and takes it all back out:
// only the difference from what is installed is touched, in an order that never opens a loop
// (the socket-mark rule before any route into the tunnel, the lookup rule removed first).
// Leftovers of a daemon that was killed are swept at start: our table is flushed and every rule
// at our priorities cleared, whatever it matches.
import { formatCidr, parseCidr } from '../../proto/ip/address.js';
import { ipJson, runIpBatch } from './ip-batch.js';
import { familyOf, PREF_LOOKUP, PREF_MARK, ROUTE_TABLE, type KernelRoutePlan, type RouteTableEntry } from './route-plan.js';
import { formatSocketMark, type SocketMark } from './socket-mark.js';

export interface InstalledRoutes {
  table: number;
  routes: string[];
  /** The mark of the agent's own sockets, sent to the main table ("0x70680000/0xffff0000"). */
  socketMark: string;
  /** Address families whose mark and lookup rules are installed. */
  rules: (4 | 6)[];
  lastError: string | null;
}

export class RouteInstaller {
  private table = new Map<string, RouteTableEntry>();
  /** Per family: the mark rule and the lookup rule are in (they come and go together). */
  private rules = { 4: false, 6: false };
  private lastError: string | null = null;
  /** A command failed last time: re-issue every wanted entry (routes replace, rules may exist). */
  private retry = false;

  constructor(private readonly tunName: string, private readonly mark: SocketMark, private readonly onError: (msg: string) => void) {}

  status(): InstalledRoutes {
    return {
      table: ROUTE_TABLE,
      routes: [...this.table.values()].map((e) => (e.type === 'throw' ? `throw ${e.cidr}` : e.cidr)),
      socketMark: formatSocketMark(this.mark),
      rules: ([4, 6] as const).filter((f) => this.rules[f]),
      lastError: this.lastError,
    };
  }

  /** Makes the kernel match the plan. */
  async apply(plan: KernelRoutePlan): Promise<void> {
    const wanted = new Map(plan.table.map((e) => [`${e.type} ${e.cidr}`, e]));
    const have = new Map([...this.table.values()].map((e) => [`${e.type} ${e.cidr}`, e]));
    const wantRules = { 4: plan.table.some((e) => familyOf(e.cidr) === 4), 6: plan.table.some((e) => familyOf(e.cidr) === 6) };
    const retry = this.retry;
    this.retry = false;
    const present = (k: string): boolean => !retry && have.has(k);
    for (const family of [4, 6] as const) {
      const inFamily = (t: string): boolean => familyOf(t) === family;
      const adding = wantRules[family] && (retry || !this.rules[family]);
      const removing = this.rules[family] && !wantRules[family];
      const lines: string[] = [];
      // Going away first: the lookup rule, then routes; the mark rule last.
      if (removing) lines.push(this.lookupRule('del'));
      for (const [k, e] of have) if (!wanted.has(k) && inFamily(e.cidr)) lines.push(this.routeLine('del', e));
      // Coming in: the mark rule before any route into the tunnel, the lookup rule last.
      if (adding) lines.push(this.markRule('add'));
      for (const [k, e] of wanted) if (!present(k) && inFamily(e.cidr)) lines.push(this.routeLine('replace', e));
      if (adding) lines.push(this.lookupRule('add'));
      if (removing) lines.push(this.markRule('del'));
      await this.run(family, lines);
    }
    this.table = wanted;
    this.rules = wantRules;
  }

  /** Removes everything this installer put in. */
  async clear(): Promise<void> {
    await this.apply({ table: [] });
  }

  /** Removes what an earlier run of the agent may have left: our table's routes and every rule at our priorities. */
  async sweep(): Promise<void> {
    for (const family of [4, 6] as const) {
      const lines = [`route flush table ${ROUTE_TABLE}`];
      for (const r of await ipJson([`-${family}`, 'rule', 'show'])) {
        const pref = r.priority;
        if (typeof pref !== 'number' || pref < PREF_MARK || pref > PREF_LOOKUP) continue;
        lines.push(`rule del pref ${pref}${ruleSelector(r)} table ${String(r.table)}`);
      }
      // A family the kernel lacks (IPv6 disabled) fails here; nothing of ours can be there anyway.
      await runIpBatch(family, lines).catch(() => undefined);
    }
    this.table.clear();
    this.rules = { 4: false, 6: false };
  }

  private routeLine(op: 'replace' | 'del', e: RouteTableEntry): string {
    const cidr = formatCidr(parseCidr(e.cidr)); // only canonical prefixes reach the command line
    return e.type === 'throw' ? `route ${op} throw ${cidr} table ${ROUTE_TABLE}` : `route ${op} ${cidr} dev ${this.tunName} table ${ROUTE_TABLE}`;
  }

  private markRule(op: 'add' | 'del'): string {
    return `rule ${op} pref ${PREF_MARK} fwmark ${formatSocketMark(this.mark)} lookup main`;
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

/** The selectors of a rule from `ip -j rule show` that `ip rule del` needs to name that very rule. */
function ruleSelector(r: Record<string, unknown>): string {
  let out = '';
  if (typeof r.dst === 'string' && r.dst !== 'all') out += ` to ${r.dst}${typeof r.dstlen === 'number' ? `/${r.dstlen}` : ''}`;
  if (typeof r.fwmark === 'string') out += ` fwmark ${r.fwmark}${typeof r.fwmask === 'string' ? `/${r.fwmask}` : ''}`;
  return out;
}
