// The prefixes this machine reaches directly (connected routes of the main table, on any
// interface but the tunnel's): what --exit-node-allow-lan-access keeps out of the tunnel.
import { ipJson } from './ip-batch.js';

export async function connectedPrefixes(tunName: string): Promise<string[]> {
  const out: string[] = [];
  for (const family of ['-4', '-6']) {
    for (const r of await ipJson([family, 'route', 'show', 'table', 'main'])) {
      const dst = r.dst;
      if (typeof dst !== 'string' || dst === 'default' || r.dev === tunName || r.gateway !== undefined) continue;
      if (family === '-4' ? r.scope !== 'link' : r.protocol !== 'kernel') continue; // IPv6 prints no scope
      if (r.type !== undefined && r.type !== 'unicast') continue;
      out.push(dst.includes('/') ? dst : `${dst}/${family === '-4' ? 32 : 128}`);
    }
  }
  return out;
}
