// A NetcheckSocket over a plain node:dgram socket: the same demultiplexing the agent's magic
// socket does, reduced to what netcheck needs — hairpin probes, STUN answers, and everything else
// counted and dropped. Used by tests and by tools that have no agent socket.
import { createSocket, type Socket } from 'node:dgram';
import { encodeBindingRequest } from '../../proto/stun/binding.js';
import type { NetcheckSocket } from './netcheck.js';
import { StunClient, type StunClientOptions } from './stun-client.js';

export interface DgramNetcheckSocket extends NetcheckSocket {
  readonly socket: Socket;
  readonly address: { address: string; port: number };
  /** Datagrams that were neither STUN nor a hairpin probe of ours. */
  readonly stats: { ignored: number; hairpinProbesSent: number; hairpinProbesReceived: number };
  close(): Promise<void>;
}

export interface DgramNetcheckSocketOptions {
  type?: 'udp4' | 'udp6';
  /** Bind address; default all addresses. */
  address?: string;
  /** Default 0 (any free port). */
  port?: number;
  stun?: Omit<StunClientOptions, 'send'>;
}

/** A hairpin probe is a STUN Binding request: transaction id bytes 8..20 identify it. */
const txKey = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset + 8, 12).toString('hex');

export async function openDgramNetcheckSocket(opts: DgramNetcheckSocketOptions = {}): Promise<DgramNetcheckSocket> {
  const socket = createSocket(opts.type ?? 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(opts.port ?? 0, opts.address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const stats = { ignored: 0, hairpinProbesSent: 0, hairpinProbesReceived: 0 };
  const probes = new Map<string, () => void>();
  const stun = new StunClient({
    ...opts.stun,
    send: (packet, port, address) => new Promise<void>((resolve, reject) => {
      socket.send(packet, port, address, (err) => (err ? reject(err) : resolve()));
    }),
  });
  socket.on('message', (msg, rinfo) => {
    if (msg.length >= 20 && probes.size > 0) {
      const arrived = probes.get(txKey(msg));
      if (arrived) {
        stats.hairpinProbesReceived++;
        arrived();
        return;
      }
    }
    if (!stun.handlePacket(msg, rinfo)) stats.ignored++;
  });
  socket.on('error', () => { stats.ignored++; }); // e.g. ICMP errors surfaced on some platforms
  const a = socket.address();
  return {
    socket,
    stun,
    stats,
    address: { address: a.address, port: a.port },
    hairpin(address, port, timeoutMs) {
      const { bytes } = encodeBindingRequest({ software: 'pinhole hairpin probe' });
      const key = txKey(bytes);
      return new Promise<boolean>((resolve) => {
        const done = (ok: boolean): void => {
          clearTimeout(timer);
          probes.delete(key);
          resolve(ok);
        };
        const timer = setTimeout(() => done(false), timeoutMs);
        probes.set(key, () => done(true));
        stats.hairpinProbesSent++;
        socket.send(bytes, port, address, (err) => { if (err) done(false); });
      });
    },
    close: () => new Promise<void>((resolve) => {
      stun.close();
      socket.close(() => resolve());
    }),
  };
}
