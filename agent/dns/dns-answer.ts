// What to do with one DNS query, decided without I/O: answer it from the name table (names in
// the node domain, reverse names of overlay addresses), forward it (to a split-DNS route's
// resolver or the host's own resolvers), or drop it. Encoding and decoding is dns-packet's.
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Packet, Question } from 'dns-packet';
import type { NameTable } from './name-table.js';

const RCODE = { noError: 0, formErr: 1, servFail: 2, nxDomain: 3, notImp: 4, refused: 5 } as const;
/** TTL of our own answers: short, names move when the netmap changes. */
const TTL = 60;
/** Reverse zones answered locally (NXDOMAIN when unknown): the overlay's 100.64.0.0/10 and the ULA /48. */
const OVERLAY_V4_REVERSE = /^(\d+)\.(\d+)\.(\d+)\.100\.in-addr\.arpa$/;
const OVERLAY_V6_REVERSE_SUFFIX = 'c.3.a.9.7.5.e.1.a.7.d.f.ip6.arpa';

export type QueryDecision =
  | { kind: 'answer'; response: Packet; local: true; nxdomain: boolean }
  | { kind: 'forward'; resolvers: string[] | 'host' };

export class MalformedQueryError extends Error {
  override readonly name = 'MalformedQueryError';
}

/** Decodes a query; anything that is not a well-formed query with one question is malformed. */
export function decodeQuery(bytes: Buffer): DecodedPacket {
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(bytes);
  } catch (err) {
    throw new MalformedQueryError(`undecodable: ${(err as Error).message}`);
  }
  if (packet.type !== 'query') throw new MalformedQueryError('not a query');
  if (!packet.questions || packet.questions.length !== 1) throw new MalformedQueryError('not exactly one question');
  const q = packet.questions[0]!;
  if (typeof q.name !== 'string' || q.name.length > 253) throw new MalformedQueryError('bad question name');
  return packet;
}

function reply(query: DecodedPacket, rcode: number, answers: Answer[], authoritative: boolean): Packet {
  const flags = (authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | dnsPacket.RECURSION_AVAILABLE | rcode;
  return { type: 'response', id: query.id ?? 0, flags, questions: query.questions ?? [], answers };
}

function addressAnswers(q: Question, name: string, addr: { ipv4: string; ipv6: string }): Answer[] {
  const out: Answer[] = [];
  const t = q.type as string;
  if (t === 'A' || t === 'ANY') out.push({ type: 'A', name, ttl: TTL, data: addr.ipv4 });
  if (t === 'AAAA' || t === 'ANY') out.push({ type: 'AAAA', name, ttl: TTL, data: addr.ipv6 });
  return out;
}

/** The longest split-DNS route whose suffix holds `name`. */
function routeFor(table: NameTable, name: string): string | null {
  let best: { suffix: string; resolver: string } | null = null;
  for (const r of table.routes) {
    if ((name === r.suffix || name.endsWith(`.${r.suffix}`)) && (!best || r.suffix.length > best.suffix.length)) best = r;
  }
  return best?.resolver ?? null;
}

export function decide(query: DecodedPacket, table: NameTable | null): QueryDecision {
  const q = query.questions![0]!;
  const name = q.name.toLowerCase().replace(/\.$/, '');
  if (((query.flags ?? 0) >> 11 & 15) !== 0) return { kind: 'answer', response: reply(query, RCODE.notImp, [], false), local: true, nxdomain: false };
  if (table) {
    const { domain } = table;
    if (name === domain || name.endsWith(`.${domain}`)) {
      if (name === domain) return { kind: 'answer', response: reply(query, RCODE.noError, [], true), local: true, nxdomain: false };
      const host = name.slice(0, name.length - domain.length - 1);
      const addr = table.hosts.get(host);
      if (!addr) return { kind: 'answer', response: reply(query, RCODE.nxDomain, [], true), local: true, nxdomain: true };
      return { kind: 'answer', response: reply(query, RCODE.noError, addressAnswers(q, q.name, addr), true), local: true, nxdomain: false };
    }
    if (name.endsWith('.arpa')) {
      const target = table.reverse.get(name);
      if (target) {
        const answers: Answer[] = q.type === 'PTR' || (q.type as string) === 'ANY' ? [{ type: 'PTR', name: q.name, ttl: TTL, data: target }] : [];
        return { kind: 'answer', response: reply(query, RCODE.noError, answers, true), local: true, nxdomain: false };
      }
      if (isOverlayReverse(name)) return { kind: 'answer', response: reply(query, RCODE.nxDomain, [], true), local: true, nxdomain: true };
    }
    const route = routeFor(table, name);
    if (route) return { kind: 'forward', resolvers: [route] };
  }
  return { kind: 'forward', resolvers: 'host' };
}

function isOverlayReverse(name: string): boolean {
  const m = OVERLAY_V4_REVERSE.exec(name);
  if (m) {
    const second = Number(m[3]);
    return second >= 64 && second <= 127;
  }
  return name.endsWith(OVERLAY_V6_REVERSE_SUFFIX);
}

/** SERVFAIL for a query we could not forward (no resolver, timeout, too many in flight). */
export function servFail(query: DecodedPacket): Packet {
  return reply(query, RCODE.servFail, [], false);
}

/** The UDP payload size the client accepts: its EDNS0 size (capped), else 512 (RFC 1035). */
export function udpLimit(query: DecodedPacket): number {
  const opt = query.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize?: number } | undefined;
  const size = opt?.udpPayloadSize ?? 512;
  return Math.min(Math.max(size, 512), 4096);
}

/** An encoded response for UDP: if it does not fit the client's size, the header and question with TC set. */
export function fitUdp(response: Buffer, limit: number): { bytes: Buffer; truncated: boolean } {
  if (response.length <= limit) return { bytes: response, truncated: false };
  let packet: DecodedPacket;
  try {
    packet = dnsPacket.decode(response);
  } catch {
    return { bytes: response.subarray(0, 0), truncated: true };
  }
  const cut = dnsPacket.encode({
    type: 'response', id: packet.id ?? 0, flags: (packet.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE, questions: packet.questions ?? [], answers: [],
  });
  return { bytes: cut, truncated: true };
}
