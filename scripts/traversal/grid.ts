// The traversal grid for scripts/bench-matrix: one row and one column per kind of site (no NAT,
// the four RFC 3489 NATs, UDP blocked, double NAT), two sites of each kind so the diagonal is a
// real pair, one agent per site. Each unordered pair of kinds is measured once (site 1 of the row
// kind pings site 2 of the column kind, cold); the grid shows it in both cells. Pairs that share
// no node are probed at the same time, a few at once.
import type { NatBehaviour } from '../natlab/index.js';
import { birthdayPair, probePair, type Mesh, type MeshSiteSpec, type PairResult } from './mesh-lab.js';
import { pingSummary } from './pair-checks.js';

export interface GridKind {
  /** Short name, also the prefix of its two sites' names (site names are `${id}1`, `${id}2`). */
  id: string;
  label: string;
  nat: NatBehaviour;
  doubleNat?: boolean;
  udpBlocked?: boolean;
  /** The site's router runs miniupnpd (UPnP IGD, NAT-PMP and PCP); the agent maps its port. */
  portMapping?: boolean;
}

export const GRID_KINDS: readonly GridKind[] = [
  { id: 'open', label: 'none', nat: 'none' },
  { id: 'full', label: 'full cone', nat: 'full-cone' },
  { id: 'rest', label: 'restricted', nat: 'restricted-cone' },
  { id: 'prc', label: 'port-restricted', nat: 'port-restricted-cone' },
  { id: 'sym', label: 'symmetric', nat: 'symmetric' },
  { id: 'noudp', label: 'UDP blocked', nat: 'port-restricted-cone', udpBlocked: true },
  // a Linux home router (port-restricted) behind a carrier-grade NAT (port-restricted, EIM as RFC 6888 asks)
  { id: 'dbl', label: 'double NAT', nat: 'port-restricted-cone', doubleNat: true },
  // The classic NATs again with a router that maps ports: a row each, against every kind above.
  { id: 'fullpm', label: 'full cone + mapping', nat: 'full-cone', portMapping: true },
  { id: 'restpm', label: 'restricted + mapping', nat: 'restricted-cone', portMapping: true },
  { id: 'prcpm', label: 'port-restricted + mapping', nat: 'port-restricted-cone', portMapping: true },
  { id: 'sympm', label: 'symmetric + mapping', nat: 'symmetric', portMapping: true },
];

/** The four classic NAT kinds whose 4 × 4 cells the bar counts. */
export const CLASSIC_IDS = ['full', 'rest', 'prc', 'sym'] as const;
/** Direct cells wanted among the 16 classic ones without port mapping (symmetric × symmetric relays). */
export const CLASSIC_BAR = 15;
/** Direct cells wanted among the 16 classic pairs with port mapping on one side. */
export const MAPPED_BAR = 16;

export function gridSites(kinds: readonly GridKind[] = GRID_KINDS): MeshSiteSpec[] {
  return kinds.flatMap((k) => [1, 2].map((n) => ({
    name: `${k.id}${n}`, nat: k.nat, ...(k.doubleNat ? { doubleNat: true } : {}), ...(k.udpBlocked ? { udpBlocked: true } : {}),
    ...(k.portMapping ? { portMapping: true } : {}),
  })));
}

/**
 * Every unordered pair of kinds, the diagonal included: [row kind, column kind]. Kinds with port
 * mapping are paired with the kinds without it only (mapping on one side is what the bar asks).
 */
export function gridPairs(kinds: readonly GridKind[] = GRID_KINDS): Array<[GridKind, GridKind]> {
  const out: Array<[GridKind, GridKind]> = [];
  for (let i = 0; i < kinds.length; i++) {
    for (let j = i; j < kinds.length; j++) if (!(kinds[i]!.portMapping && kinds[j]!.portMapping)) out.push([kinds[i]!, kinds[j]!]);
  }
  return out;
}

/** Groups pairs into rounds in which no node appears twice, each round at most `width` pairs. */
export function scheduleRounds<T>(pairs: ReadonlyArray<T>, nodesOf: (p: T) => [string, string], width: number): T[][] {
  const rounds: T[][] = [];
  const left = [...pairs];
  while (left.length > 0) {
    const busy = new Set<string>();
    const round: T[] = [];
    for (let i = 0; i < left.length && round.length < width;) {
      const [a, b] = nodesOf(left[i]!);
      if (busy.has(a) || busy.has(b)) { i++; continue; }
      busy.add(a); busy.add(b);
      round.push(left.splice(i, 1)[0]!);
    }
    rounds.push(round);
  }
  return rounds;
}

export interface GridCell extends PairResult {
  row: string;
  col: string;
  /** After the path settled, 3 pings each way over the overlay: replies a → b and b → a. */
  finalReplies: { ab: number; ba: number };
  /** Both ways got a reply after the path settled. */
  connected: boolean;
}

/** Probes every pair of kinds, `concurrency` disjoint pairs at a time. */
export async function runGrid(mesh: Mesh, opts: { concurrency: number; settleMs: number; log?: (line: string) => void }): Promise<GridCell[]> {
  const pairs = gridPairs();
  const rounds = scheduleRounds(pairs, ([r, c]) => [`${r.id}1`, `${c.id}2`], Math.max(1, opts.concurrency));
  const cells: GridCell[] = [];
  for (const round of rounds) {
    const results = await Promise.all(round.map(async ([r, c]) => {
      const [a, b] = [mesh.node(`${r.id}1`), mesh.node(`${c.id}2`)];
      // Birthday pairs (symmetric × port-restricted) take seconds: netcheck, punch grace, spray.
      const res = await probePair(a, b, birthdayPair(a.spec, b.spec) ? Math.max(opts.settleMs, 20_000) : opts.settleMs);
      const [ab, ba] = await Promise.all([pingSummary(a, b, 3, 0.2), pingSummary(b, a, 3, 0.2)]);
      const finalReplies = { ab: ab.received, ba: ba.received };
      return { ...res, row: r.id, col: c.id, finalReplies, connected: ab.received > 0 && ba.received > 0 };
    }));
    for (const x of results) {
      opts.log?.(`${x.a} x ${x.b}: ${x.path} (classic table: ${x.expected}), first reply ${x.firstReplyMs ?? 'none'} ms, `
        + `direct after ${x.timeToDirectMs ?? '-'} ms, then ${x.finalReplies.ab}/3 and ${x.finalReplies.ba}/3 pings answered`);
      cells.push(x);
    }
  }
  return cells;
}

/** The measured cell of two kinds, in either order. */
export function cellOf(cells: readonly GridCell[], a: string, b: string): GridCell | undefined {
  return cells.find((c) => (c.row === a && c.col === b) || (c.row === b && c.col === a));
}

/** Direct cells among the 4 × 4 classic ones (each off-diagonal pair counts twice, as in the grid). */
export function classicDirect(cells: readonly GridCell[]): { direct: number; total: number; relayedCells: string[] } {
  let direct = 0;
  const relayedCells: string[] = [];
  for (const a of CLASSIC_IDS) {
    for (const b of CLASSIC_IDS) {
      const c = cellOf(cells, a, b);
      if (c?.path === 'direct') direct++;
      else relayedCells.push(`${a} x ${b}: ${c?.path ?? 'not run'}`);
    }
  }
  return { direct, total: CLASSIC_IDS.length ** 2, relayedCells };
}

/** Direct cells among the 16 classic pairs with port mapping on the row side (X + mapping × Y). */
export function mappedDirect(cells: readonly GridCell[]): { direct: number; total: number; relayedCells: string[] } {
  let direct = 0;
  const relayedCells: string[] = [];
  for (const a of CLASSIC_IDS) {
    for (const b of CLASSIC_IDS) {
      const c = cellOf(cells, `${a}pm`, b);
      if (c?.path === 'direct') direct++;
      else relayedCells.push(`${a}+mapping x ${b}: ${c?.path ?? 'not run'}`);
    }
  }
  return { direct, total: CLASSIC_IDS.length ** 2, relayedCells };
}

function cellText(c: GridCell | undefined, field: 'path' | 'first' | 'direct'): string {
  if (!c) return '?';
  if (field === 'path') return `${c.path === 'none' ? 'NONE' : c.path}${c.connected ? '' : ' (no traffic)'}`;
  if (field === 'first') return c.firstReplyMs === null ? 'none' : `${Math.round(c.firstReplyMs)}ms`;
  return c.timeToDirectMs === null ? '-' : `${(c.timeToDirectMs / 1000).toFixed(1)}s`;
}

/** Three grids (path, time to first reply, time to direct), rows × columns of kinds. */
export function formatGrid(cells: readonly GridCell[], kinds: readonly GridKind[] = GRID_KINDS): string {
  const out: string[] = [];
  const titles = { path: 'path', first: 'time to first reply (first ping RTT, handshake included)', direct: 'time to direct (from the first ping)' } as const;
  for (const field of ['path', 'first', 'direct'] as const) {
    // Columns: the kinds without port mapping; rows: every kind (mapping rows after the others).
    const cols = kinds.filter((k) => !k.portMapping);
    const head = ['', ...cols.map((k) => k.label)];
    const body = kinds.map((r) => [r.label, ...cols.map((c) => cellText(cellOf(cells, r.id, c.id), field))]);
    const widths = head.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
    const line = (cells2: string[]): string => cells2.map((x, i) => x.padEnd(widths[i]!)).join(' | ').trimEnd();
    out.push(`${titles[field]}:`, line(head), widths.map((w) => '-'.repeat(w)).join('-+-'), ...body.map(line), '');
  }
  return out.join('\n');
}
