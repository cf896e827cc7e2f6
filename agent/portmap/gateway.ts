// The default IPv4 gateway (where UPnP, NAT-PMP and PCP are asked) and our address towards it.
// Read from /proc/net/route, the kernel's own table, so no `ip route` process is spawned.
import { readFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';

export interface Gateway {
  /** The gateway's IPv4 address. */
  address: string;
  /** Our address on the link to it (what the gateway sees as the client). */
  localAddress: string;
  /** The interface of the default route. */
  interface: string;
}

const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;

/**
 * The default route's gateway in a /proc/net/route text (lowest metric first), or null.
 * Columns: Iface Destination Gateway Flags RefCnt Use Metric Mask ...; addresses are
 * little-endian hex (0101A8C0 is 192.168.1.1 on x86).
 */
export function parseDefaultGateway(text: string): { address: string; interface: string } | null {
  let best: { address: string; interface: string; metric: number } | null = null;
  for (const line of text.split('\n').slice(1, 1025)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [iface, dest, gw, flags, , , metric, mask] = f as [string, string, string, string, string, string, string, string];
    if (dest !== '00000000' || mask !== '00000000' || !/^[0-9A-Fa-f]{8}$/.test(gw)) continue;
    const fl = Number.parseInt(flags, 16);
    if (!(fl & RTF_UP) || !(fl & RTF_GATEWAY)) continue;
    const n = Number.parseInt(gw, 16);
    const address = `${n & 0xff}.${(n >>> 8) & 0xff}.${(n >>> 16) & 0xff}.${n >>> 24}`;
    const m = Number.parseInt(metric, 10) || 0;
    if (!best || m < best.metric) best = { address, interface: iface, metric: m };
  }
  return best && { address: best.address, interface: best.interface };
}

/** The default gateway and our source address towards it, or null (no default route). */
export async function findGateway(routeFile = '/proc/net/route'): Promise<Gateway | null> {
  let text: string;
  try {
    text = await readFile(routeFile, 'utf8');
  } catch {
    return null;
  }
  const gw = parseDefaultGateway(text);
  if (!gw) return null;
  const localAddress = await sourceAddressTowards(gw.address);
  return localAddress ? { ...gw, localAddress } : null;
}

/** Connecting a UDP socket sends nothing but makes the kernel pick the source address. */
function sourceAddressTowards(address: string): Promise<string | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const done = (v: string | null): void => {
      try { s.close(); } catch { /* already closed */ }
      resolve(v);
    };
    s.once('error', () => done(null));
    s.connect(9, address, () => {
      try {
        done(s.address().address);
      } catch {
        done(null);
      }
    });
  });
}
