// The firewall mark (SO_MARK) on the agent's own sockets: the WireGuard/disco/STUN UDP socket and
// the TCP connections to relays and the coordinator. One rule per family,
// `ip rule add pref 5210 fwmark VALUE/MASK lookup main`, sends packets carrying it to the main
// table ahead of our routing table, so the tunnel's own packets never enter the tunnel while the
// default route points into it — and no address a peer reports ever becomes a rule.
//
// Default 0x70680000/0xffff0000 ("ph" in the top half). Only the top 16 bits are matched, so
// software that sets low bits on the same packets (kube-proxy 0x4000/0x8000, Cilium's 0x0F00
// magic, firewalld zones) does not break the match, and only a packet whose top 16 bits are
// exactly 0x7068 is taken as ours: Tailscale (0x80000, 0x40000 in 0xff0000), wg-quick (51820 =
// 0xca6c) and Calico's single mark bits differ. `pinhole agent --socket-mark VALUE[/MASK]` picks
// another where a site already uses these bits.

export interface SocketMark {
  /** What SO_MARK is set to. */
  value: number;
  /** The bits the rule compares (value & ~mask is 0). */
  mask: number;
}

export const DEFAULT_SOCKET_MARK: SocketMark = { value: 0x70680000, mask: 0xffff0000 };

export class SocketMarkError extends Error {
  override readonly name = 'SocketMarkError';
}

function parseU32(text: string, what: string): number {
  const t = text.trim();
  const n = /^0x[0-9a-f]{1,8}$/i.test(t) ? Number.parseInt(t.slice(2), 16) : /^[0-9]{1,10}$/.test(t) ? Number(t) : NaN;
  if (!Number.isSafeInteger(n) || n > 0xffffffff) throw new SocketMarkError(`--socket-mark: ${what} "${text}" is not a 32-bit number (e.g. 0x70680000)`);
  return n;
}

/** "VALUE" (every bit compared) or "VALUE/MASK", each decimal or 0x-hex. */
export function parseSocketMark(text: string): SocketMark {
  const [v, m, extra] = text.split('/');
  if (extra !== undefined || v === undefined) throw new SocketMarkError(`--socket-mark: "${text}" is not VALUE or VALUE/MASK`);
  const value = parseU32(v, 'value');
  const mask = m === undefined ? 0xffffffff : parseU32(m, 'mask');
  if (value === 0 || mask === 0) throw new SocketMarkError('--socket-mark: value and mask must not be 0 (unmarked packets would match)');
  if (((value & ~mask) >>> 0) !== 0) throw new SocketMarkError(`--socket-mark: value ${hex(value)} has bits outside the mask ${hex(mask)}`);
  return { value, mask };
}

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** As `ip rule` takes and prints it: "0x70680000/0xffff0000". */
export function formatSocketMark(m: SocketMark): string {
  return `${hex(m.value)}/${hex(m.mask)}`;
}
