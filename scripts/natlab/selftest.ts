// The lab's self-check: one site per NAT behaviour, each classified by coturn's natdiscovery.
import { discoverNat, startCoturn, type RfcBehaviour } from './coturn.js';
import type { Lab } from './lab.js';
import { NAT_BEHAVIOURS, type NatBehaviour } from './nat-rules.js';

/** What coturn should report for each behaviour (symmetric may show address- or address-and-port-dependent mapping). */
export const EXPECTED_CLASSIFICATION: Record<NatBehaviour, { mapping: readonly RfcBehaviour[]; filtering: RfcBehaviour }> = {
  'none': { mapping: ['endpoint-independent'], filtering: 'endpoint-independent' },
  'full-cone': { mapping: ['endpoint-independent'], filtering: 'endpoint-independent' },
  'restricted-cone': { mapping: ['endpoint-independent'], filtering: 'address-dependent' },
  'port-restricted-cone': { mapping: ['endpoint-independent'], filtering: 'address-and-port-dependent' },
  'symmetric': { mapping: ['address-dependent', 'address-and-port-dependent'], filtering: 'address-and-port-dependent' },
};

export interface SelftestRow {
  nat: NatBehaviour;
  hostIp: string;
  /** The address the host should appear as: its own (none) or the site's WAN address. */
  expectedIp: string;
  mapping: RfcBehaviour | null;
  filtering: RfcBehaviour | null;
  /** IPs coturn saw the host as (deduplicated). */
  seenAs: string[];
  pass: boolean;
  raw: string;
}

/** Adds a coturn host and one site per behaviour to lab, classifies each (concurrently), and returns a row each. */
export async function runNatSelftest(lab: Lab, behaviours: readonly NatBehaviour[] = NAT_BEHAVIOURS): Promise<SelftestRow[]> {
  const stunHost = await lab.addPublicHost('stun', { ips: 2 });
  const server = await startCoturn(stunHost);
  try {
    const sites = [];
    for (const nat of behaviours) {
      const site = await lab.addSite(`st-${nat}`, { nat });
      sites.push({ nat, site, host: await site.addHost('h1') });
    }
    return await Promise.all(sites.map(async ({ nat, site, host }) => {
      const d = await discoverNat(host, server);
      const expectedIp = nat === 'none' ? host.ip : site.wanIp;
      const seenAs = [...new Set(d.reflexive.map((a) => a.split(':')[0]!))];
      const want = EXPECTED_CLASSIFICATION[nat];
      const pass = d.mapping !== null && want.mapping.includes(d.mapping) && d.filtering === want.filtering
        && seenAs.length === 1 && seenAs[0] === expectedIp;
      return { nat, hostIp: host.ip, expectedIp, mapping: d.mapping, filtering: d.filtering, seenAs, pass, raw: d.raw };
    }));
  } finally {
    await server.stop();
  }
}

/** Fixed-width table of the rows. */
export function formatSelftestTable(rows: readonly SelftestRow[]): string {
  const head = ['behaviour', 'expected mapping', 'coturn mapping', 'expected filtering', 'coturn filtering', 'host seen as', 'result'];
  const body = rows.map((r) => {
    const want = EXPECTED_CLASSIFICATION[r.nat];
    return [r.nat, want.mapping.join(' | '), r.mapping ?? '(none)', want.filtering, r.filtering ?? '(none)',
      r.seenAs.join(',') + (r.nat === 'none' ? ' (own ip)' : ' (wan ip)'), r.pass ? 'PASS' : 'FAIL'];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...body.map(line)].join('\n');
}
