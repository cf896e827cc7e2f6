// Strict reverse-path filtering (rp_filter=1) and the socket mark do not mix: the kernel checks an
// incoming packet's source against the routes without our mark, finds the tunnel's default route
// and drops the replies to the agent's own sockets. Loose (2) and off (0) are fine.
import { readdir, readFile } from 'node:fs/promises';

const CONF = '/proc/sys/net/ipv4/conf';

async function rpFilter(name: string): Promise<number> {
  try {
    return Number((await readFile(`${CONF}/${name}/rp_filter`, 'utf8')).trim()) || 0;
  } catch {
    return 0;
  }
}

/** Interfaces (not lo, not the tunnel) whose effective rp_filter, max(all, iface), is strict. */
export async function strictReversePathInterfaces(tunName: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(CONF);
  } catch {
    return [];
  }
  const all = await rpFilter('all');
  const out: string[] = [];
  for (const n of names) {
    if (n === 'all' || n === 'default' || n === 'lo' || n === tunName) continue;
    if (Math.max(all, await rpFilter(n)) === 1) out.push(n);
  }
  return out.sort();
}
