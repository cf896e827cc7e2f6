// Splits ping round trips through a tunnel into hops, from three packet captures taken during the
// pings (tcpdump -n -tt --time-stamp-precision=nano, text output): host A's tunnel interface, A's
// underlay interface (the encrypted datagrams both ways) and host B's tunnel interface. All
// captures share one clock (one machine). Pure: the caller runs tcpdump.
//
//   A tun: echo request ─ aOut ─▶ A underlay: datagram out ─ bIn ─▶ B tun: request written
//   B tun: reply from B's kernel (bKernel after the request) ─ bOut ─▶ A underlay: datagram in
//   A underlay: datagram in ─ aIn ─▶ A tun: echo reply written
//
// aOut: A's tunnel reads the request, encrypts and sends. bIn: the wire, B's wake-up, decryption
// and TUN write. bKernel: B's kernel answers. bOut: B reads the reply, encrypts, sends, plus the
// wire. aIn: A's wake-up, decryption and TUN write.

export const HOPS = ['aOut', 'bIn', 'bKernel', 'bOut', 'aIn'] as const;
export type Hop = (typeof HOPS)[number];

/** One ping's round trip and its hops, in microseconds. */
export interface PingHops extends Record<Hop, number> {
  seq: number;
  totalUs: number;
}

interface IcmpEvent { t: number; seq: number; reply: boolean }

const ICMP_LINE = /^(\d+\.\d+) IP6? \S+ > \S+: ICMP6? echo (request|reply), id \d+, seq (\d+)/;
const UDP_LINE = /^(\d+\.\d+) IP6? (\S+) > (\S+): UDP/;

/** Seconds.nanoseconds as a number of microseconds since `base` seconds (keeps the precision). */
function micros(text: string, base: number): number {
  const [s, frac = ''] = text.split('.');
  return (Number(s) - base) * 1e6 + Number(`${frac}000000000`.slice(0, 9)) / 1000;
}

function baseOf(...texts: string[]): number {
  for (const t of texts) {
    const m = t.match(/^(\d+)\./m);
    if (m) return Number(m[1]);
  }
  return 0;
}

function icmpEvents(text: string, base: number): IcmpEvent[] {
  const out: IcmpEvent[] = [];
  for (const line of text.split('\n')) {
    const m = ICMP_LINE.exec(line);
    if (m) out.push({ t: micros(m[1]!, base), seq: Number(m[3]), reply: m[2] === 'reply' });
  }
  return out;
}

/**
 * Per ping (by ICMP sequence number): the hops, for every ping whose six events were all captured
 * in order. `aAddress` is A's underlay address: datagrams from it are A's. Pings with a missing
 * or out-of-order event are left out (a lost packet, a capture that started late).
 */
export function splitRoundTrips(tunA: string, underlayA: string, tunB: string, aAddress: string): PingHops[] {
  const base = baseOf(tunA, underlayA, tunB);
  const a = icmpEvents(tunA, base);
  const b = icmpEvents(tunB, base);
  const out: number[] = [];
  const inb: number[] = [];
  for (const line of underlayA.split('\n')) {
    const m = UDP_LINE.exec(line);
    if (!m) continue;
    const fromA = m[2]!.startsWith(`${aAddress}.`);
    (fromA ? out : inb).push(micros(m[1]!, base));
  }
  const firstAfter = (xs: number[], t: number): number | undefined => xs.find((x) => x >= t);
  const bySeq = (xs: IcmpEvent[], reply: boolean) => new Map(xs.filter((e) => e.reply === reply).map((e) => [e.seq, e.t]));
  const [aReq, aRep, bReq, bRep] = [bySeq(a, false), bySeq(a, true), bySeq(b, false), bySeq(b, true)];
  const rows: PingHops[] = [];
  for (const [seq, t0] of aReq) {
    const t5 = aRep.get(seq);
    const t2 = bReq.get(seq);
    const t3 = bRep.get(seq);
    if (t5 === undefined || t2 === undefined || t3 === undefined) continue;
    const t1 = firstAfter(out, t0);
    const t4 = firstAfter(inb, t3);
    if (t1 === undefined || t4 === undefined) continue;
    if (!(t0 <= t1 && t1 <= t2 && t2 <= t3 && t3 <= t4 && t4 <= t5)) continue;
    rows.push({ seq, totalUs: t5 - t0, aOut: t1 - t0, bIn: t2 - t1, bKernel: t3 - t2, bOut: t4 - t3, aIn: t5 - t4 });
  }
  return rows.sort((x, y) => x.seq - y.seq);
}

/** The q-quantile (0..1, nearest rank) of xs; null when empty. */
export function quantile(xs: readonly number[], q: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
