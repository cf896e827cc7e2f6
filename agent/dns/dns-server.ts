// The MagicDNS server: UDP and TCP on 100.100.100.100:53 (the address sits on the TUN, so the
// host reaches it through the local table). Each query is decoded with dns-packet, answered from
// the name table or forwarded (dns-answer.ts decides); malformed ones are dropped and counted.
// Bounds: MAX_TCP_CONNECTIONS, TCP_IDLE_MS per connection, the forwarder's in-flight limit.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';
import { decide, decodeQuery, fitUdp, MalformedQueryError, servFail, udpLimit } from './dns-answer.js';
import { DnsForwarder } from './dns-forwarder.js';
import type { NameTable } from './name-table.js';

export const DNS_PORT = 53;
const MAX_TCP_CONNECTIONS = 64;
const TCP_IDLE_MS = 10_000;

export interface DnsCounters {
  queries: number;
  answeredLocally: number;
  nxdomain: number;
  forwarded: number;
  forwardFailed: number;
  truncated: number;
  malformed: number;
  tcpRefused: number;
}

export const newDnsCounters = (): DnsCounters => ({
  queries: 0, answeredLocally: 0, nxdomain: 0, forwarded: 0, forwardFailed: 0, truncated: 0, malformed: 0, tcpRefused: 0,
});

export interface DnsServerOptions {
  /** The current name table (null: nothing known yet, everything is forwarded). */
  table: () => NameTable | null;
  /** The host's own resolvers ("IP" / "IP:port"), for names we do not answer. */
  upstreams: () => string[];
  forwarder?: DnsForwarder;
  counters?: DnsCounters;
}

/** One query in, one reply out (null: dropped). Never throws: the UDP and TCP paths and the fuzz test share it. */
export async function handleQuery(bytes: Buffer, transport: 'udp' | 'tcp', opts: Required<DnsServerOptions>): Promise<Buffer | null> {
  const c = opts.counters;
  c.queries++;
  let query: DecodedPacket;
  try {
    query = decodeQuery(bytes);
  } catch (err) {
    if (!(err instanceof MalformedQueryError)) throw err;
    c.malformed++;
    return null;
  }
  try {
    const d = decide(query, opts.table());
    let reply: Buffer;
    if (d.kind === 'answer') {
      c.answeredLocally++;
      if (d.nxdomain) c.nxdomain++;
      reply = dnsPacket.encode(d.response);
    } else {
      const resolvers = d.resolvers === 'host' ? opts.upstreams() : d.resolvers;
      try {
        reply = await opts.forwarder.forward(bytes, resolvers, transport);
        c.forwarded++;
      } catch {
        c.forwardFailed++;
        reply = dnsPacket.encode(servFail(query));
      }
    }
    if (transport === 'tcp') return reply;
    const fit = fitUdp(reply, udpLimit(query));
    if (fit.truncated) c.truncated++;
    return fit.bytes.length > 0 ? fit.bytes : null;
  } catch {
    // dns-packet may refuse to encode a reply to a query it decoded (odd record types): drop it.
    c.malformed++;
    return null;
  }
}

export class DnsServer {
  readonly counters: DnsCounters;
  private readonly opts: Required<DnsServerOptions>;
  private udp: UdpSocket | null = null;
  private tcp: Server | null = null;
  private readonly conns = new Set<Socket>();

  constructor(opts: DnsServerOptions) {
    this.counters = opts.counters ?? newDnsCounters();
    this.opts = { forwarder: new DnsForwarder(), ...opts, counters: this.counters };
  }

  async listen(address: string, port = DNS_PORT): Promise<void> {
    const udp = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      udp.once('error', reject);
      udp.bind(port, address, () => { udp.off('error', reject); resolve(); });
    });
    udp.on('error', () => undefined);
    udp.on('message', (msg, rinfo) => {
      void handleQuery(msg, 'udp', this.opts).then((reply) => {
        if (reply && this.udp === udp) udp.send(reply, rinfo.port, rinfo.address);
      });
    });
    this.udp = udp;
    const tcp = createServer((sock) => this.onTcp(sock));
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    tcp.on('drop', () => this.counters.tcpRefused++);
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen(port, address, () => { tcp.off('error', reject); resolve(); });
    }).catch((err: Error) => {
      this.close();
      throw err;
    });
    this.tcp = tcp;
  }

  /** RFC 7766 framing: a 2-byte length before each message; several queries per connection. */
  private onTcp(sock: Socket): void {
    this.conns.add(sock);
    sock.setTimeout(TCP_IDLE_MS, () => sock.destroy());
    sock.on('close', () => this.conns.delete(sock));
    sock.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void handleQuery(Buffer.from(msg), 'tcp', this.opts).then((reply) => {
          if (!reply || sock.destroyed) return;
          const head = Buffer.alloc(2);
          head.writeUInt16BE(reply.length);
          sock.write(Buffer.concat([head, reply]));
        });
      }
    });
  }

  close(): void {
    this.udp?.close();
    this.udp = null;
    this.tcp?.close();
    this.tcp = null;
    for (const s of this.conns) s.destroy();
    this.conns.clear();
  }
}
