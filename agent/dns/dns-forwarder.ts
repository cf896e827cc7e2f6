// Sends a query the node does not answer itself to a resolver and hands back its reply as is.
// UDP queries go over UDP (one short-lived socket each, so replies cannot be confused), TCP
// queries over TCP. Bounded: at most MAX_IN_FLIGHT forwards at once (more get SERVFAIL at the
// server), each resolver tried once for at most FORWARD_TIMEOUT_MS.
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { splitResolver } from '../../proto/dns/dns-config.js';

export const MAX_IN_FLIGHT = 256;
export const FORWARD_TIMEOUT_MS = 2_000;
const MAX_TCP_REPLY = 65_535;

export class ForwardError extends Error {
  override readonly name = 'ForwardError';
}

export class DnsForwarder {
  private inFlight = 0;

  constructor(private readonly timeoutMs = FORWARD_TIMEOUT_MS, private readonly maxInFlight = MAX_IN_FLIGHT) {}

  get busy(): boolean {
    return this.inFlight >= this.maxInFlight;
  }

  /** The first resolver that answers in time wins; ForwardError when none does. */
  async forward(query: Buffer, resolvers: readonly string[], transport: 'udp' | 'tcp'): Promise<Buffer> {
    if (resolvers.length === 0) throw new ForwardError('no resolver to forward to');
    if (this.busy) throw new ForwardError('too many forwarded queries in flight');
    this.inFlight++;
    try {
      let last: Error = new ForwardError('no answer');
      for (const r of resolvers.slice(0, 3)) {
        const { host, port } = splitResolver(r);
        try {
          return transport === 'udp' ? await udpExchange(query, host, port, this.timeoutMs) : await tcpExchange(query, host, port, this.timeoutMs);
        } catch (err) {
          last = err as Error;
        }
      }
      throw new ForwardError(`${resolvers.join(', ')}: ${last.message}`);
    } finally {
      this.inFlight--;
    }
  }
}

function udpExchange(query: Buffer, host: string, port: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const done = (err: Error | null, reply?: Buffer): void => {
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => done(new ForwardError(`no answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (err) => done(err));
    // Only the resolver's reply to this query's id counts.
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port === port && msg.length >= 2 && msg.readUInt16BE(0) === query.readUInt16BE(0)) done(null, msg);
    });
    sock.send(query, port, host, (err) => { if (err) done(err); });
  });
}

function tcpExchange(query: Buffer, host: string, port: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | null, reply?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(reply!);
    };
    const timer = setTimeout(() => done(new ForwardError(`no answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    sock.on('error', (err) => done(err));
    sock.on('close', () => done(new ForwardError(`${host}:${port} closed the connection`)));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > MAX_TCP_REPLY + 2) return done(new ForwardError('reply too long'));
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(null, buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
  });
}
