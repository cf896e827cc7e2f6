// One line of `ip -o monitor address route link` (iproute2), as the link monitor reads it. Line
// shapes (a leading "Deleted " marks a removal):
//   link:    "3: eth0@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 ... state UP ..."
//   address: "3: eth0    inet 198.18.1.2/24 scope global eth0\       valid_lft ..."
//   route:   "default via 198.18.1.1 dev eth0 proto static", "198.18.1.0/24 dev eth0 ...",
//            "local 198.18.1.2 dev eth0 table local ..." (type words: local, broadcast, ...)
// Anything else (and any line longer than MAX_MONITOR_LINE) is not an event: null, never a throw.

export const MAX_MONITOR_LINE = 4096;

export type LinkEvent =
  | { kind: 'link'; deleted: boolean; ifName: string; up: boolean }
  | { kind: 'address'; deleted: boolean; ifName: string; family: 4 | 6; address: string; prefix: number }
  | { kind: 'route'; deleted: boolean; dst: string; dev: string | null; via: string | null; table: string };

const LINK_RE = /^(\d+): ([^\s:@]+)(?:@[^\s:]*)?: <([A-Z0-9_,-]*)>/;
const ADDR_RE = /^(\d+): ([^\s:@]+)\s+(inet6?) ([0-9a-fA-F:.]+)\/(\d{1,3})(?:\s|$)/;
const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'anycast', 'unreachable', 'blackhole', 'prohibit', 'throw', 'nat']);
const ROUTE_DST_RE = /^(default|[0-9a-fA-F:.]+(?:\/\d{1,3})?)$/;
const IFNAME_RE = /^[^\s/:]{1,15}$/;

export function parseMonitorLine(raw: string): LinkEvent | null {
  if (raw.length === 0 || raw.length > MAX_MONITOR_LINE) return null;
  let line = raw.trimEnd();
  let deleted = false;
  if (line.startsWith('Deleted ')) { deleted = true; line = line.slice(8); }
  // `ip monitor` prefixes the object kind ("[LINK]") when asked for `all`; accept it here too.
  line = line.replace(/^\[(?:LINK|ADDR|ROUTE)\]\s*/, '');

  const link = LINK_RE.exec(line);
  if (link) {
    const flags = link[3]!.split(',');
    return { kind: 'link', deleted, ifName: link[2]!, up: flags.includes('UP') && flags.includes('LOWER_UP') };
  }
  const addr = ADDR_RE.exec(line);
  if (addr) {
    const prefix = Number(addr[5]);
    const family = addr[3] === 'inet' ? 4 : 6;
    if (prefix > (family === 4 ? 32 : 128) || !IFNAME_RE.test(addr[2]!)) return null;
    return { kind: 'address', deleted, ifName: addr[2]!, family, address: addr[4]!, prefix };
  }
  const words = line.split(/\s+/);
  let i = 0;
  if (ROUTE_TYPES.has(words[0]!)) i = 1;
  const dst = words[i];
  if (dst === undefined || !ROUTE_DST_RE.test(dst) || !/[.:]|default/.test(dst)) return null;
  let dev: string | null = null;
  let via: string | null = null;
  let table = words[0] === 'local' || words[0] === 'broadcast' ? 'local' : 'main';
  for (let k = i + 1; k + 1 < words.length; k++) {
    const w = words[k]!;
    const next = words[k + 1]!;
    if (w === 'dev' && IFNAME_RE.test(next)) dev = next;
    else if (w === 'via' && /^(?:inet6? )?[0-9a-fA-F:.]+$/.test(next)) via = next;
    else if (w === 'table') table = next;
  }
  if (dev === null && via === null) return null;
  return { kind: 'route', deleted, dst, dev, via, table };
}
