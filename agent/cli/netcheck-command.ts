// `pinhole [--socket S] netcheck [--json]`: asks the running agent to probe the network from its
// WireGuard socket (GET /v0/netcheck) and prints the report, like `tailscale netcheck`.
import type { Command } from 'commander';
import { localApiCall } from '../localapi/client.js';
import { LOCAL_PATHS } from '../daemon/local-routes.js';
import type { NetcheckReport } from '../netcheck/report.js';
import type { AgentStatus } from '../static/status.js';

export class NetcheckUnavailableError extends Error {
  override readonly name = 'NetcheckUnavailableError';
}

export function registerNetcheckCommand(program: Command): void {
  program.command('netcheck')
    .description('report UDP reachability, public address, NAT mapping/filtering, hairpinning and relay latencies')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const socket = (cmd.optsWithGlobals() as { socket: string }).socket;
      const st = await localApiCall<AgentStatus>(socket, 'GET', LOCAL_PATHS.status);
      if (st.mode !== 'managed') throw new NetcheckUnavailableError('netcheck needs a coordinator-managed agent (pinhole agent --state-dir); this one runs a static tunnel');
      const report = await localApiCall<NetcheckReport>(socket, 'GET', LOCAL_PATHS.netcheck);
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatNetcheck(report)}\n`);
    });
}

const ms = (n: number): string => `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`;

export function formatNetcheck(r: NetcheckReport, now = Date.now()): string {
  const lines: string[] = ['Report:'];
  const item = (k: string, v: string): void => { lines.push(`  * ${`${k}:`.padEnd(23)}${v}`); };
  item('UDP', String(r.udp));
  item('IPv4', r.ipv4 ? `${r.ipv4}${r.behindNat === false ? ' (no NAT: a local address)' : ''}` : 'none');
  item('IPv6', r.ipv6 ?? 'none');
  item('Mapping', r.mapping ?? 'unknown');
  if (r.mappingVariesByDestIp !== null) item('MappingVariesByDestIP', String(r.mappingVariesByDestIp));
  let filtering = r.filtering ?? 'unknown';
  const f = r.tests?.filtering;
  if (f?.fromCache && f.measuredAt) filtering += ` (measured ${Math.max(0, Math.round((now - Date.parse(f.measuredAt)) / 1000))} s ago)`;
  if (!r.tests && r.udp) filtering += ' (no RFC 5780 STUN server)';
  else if (f?.skipped) filtering += ` (${f.skipped})`;
  item('Filtering', filtering);
  item('Hairpinning', r.hairpinning === null ? 'unknown' : String(r.hairpinning));
  if (r.portmap !== undefined) {
    const p = r.portmap;
    const offered = p ? [p.upnp && 'UPnP', p.natPmp && 'NAT-PMP', p.pcp && 'PCP'].filter((x): x is string => typeof x === 'string') : [];
    item('PortMapping', !p ? 'not probed (turned off)' : p.gateway === null ? 'no default gateway' : `${offered.join(', ') || 'none'} (gateway ${p.gateway})`);
  }
  item('Nearest relay', r.preferredRelay ?? 'none reachable');
  if (r.relays.length > 0) {
    lines.push('  * Relay latency:');
    const w = Math.max(...r.relays.map((x) => x.name.length));
    for (const x of r.relays) {
      const v = x.latencyMs !== null ? ms(x.latencyMs) : `error: ${x.error ?? 'no answer'}`;
      lines.push(`      - ${x.name.padEnd(w)}  ${v}${x.name === r.preferredRelay ? '  (preferred)' : ''}`);
    }
  }
  if (r.stun.length > 0) {
    lines.push('  * STUN servers:');
    for (const s of r.stun) {
      const via = s.relays.join(',');
      const v = s.mapped ? `saw ${s.mapped} in ${ms(s.rttMs ?? 0)}${s.otherAddress ? `, RFC 5780 (other ${s.otherAddress})` : ''}` : `error: ${s.error ?? 'no answer'}`;
      lines.push(`      - ${s.server} (${via}): ${v}`);
    }
  }
  return lines.join('\n');
}
