// The UDP side of NAT-PMP and PCP: one socket that sends requests to the gateway's port 5351 and
// matches answers to them (RFC 6886 §3.1 retransmission: 250 ms, doubling), and an optional
// listener on 224.0.0.1:5350 for the gateway's restart announcements. Only datagrams from the
// gateway's address and port are looked at; the rest are counted and dropped.
import { createSocket, type Socket } from 'node:dgram';
import { isDecodeError } from '../../proto/errors.js';
import { NATPMP_ANNOUNCE_GROUP, NATPMP_ANNOUNCE_PORT, NATPMP_PORT } from '../../proto/portmap/natpmp.js';

export interface GatewaySocketCounters {
  /** Datagrams that did not decode, answered nothing asked, or came from another host. */
  malformed: number;
  announcements: number;
}

/** Most requests waiting at once (probe: 2, map: 1, delete: 1): a bound, not a tuning knob. */
const MAX_PENDING = 8;
const FIRST_RETRANSMIT_MS = 250;

interface Pending {
  accept: (msg: Buffer) => boolean;
  cancel: () => void;
}

export class GatewaySocket {
  private socket: Socket | null = null;
  private announceSocket: Socket | null = null;
  private readonly pending = new Set<Pending>();
  private opening: Promise<Socket> | null = null;

  /** port: the gateway's NAT-PMP/PCP port (5351; tests run a gateway on another). */
  constructor(readonly gateway: string, private readonly counters: GatewaySocketCounters, private readonly port = NATPMP_PORT) {}

  /**
   * Sends `bytes` (again after 250 ms, 500 ms, ...) until `decode` returns a value for an answer,
   * or `timeoutMs` passes (then null). `decode` may throw DecodeError: counted, the wait goes on.
   */
  async exchange<T>(bytes: Uint8Array, decode: (msg: Buffer) => T | undefined, timeoutMs: number): Promise<T | null> {
    if (this.pending.size >= MAX_PENDING) throw new Error('too many port-mapping requests in flight');
    const socket = await this.open();
    return new Promise<T | null>((resolve) => {
      let resend: NodeJS.Timeout | undefined;
      let gap = FIRST_RETRANSMIT_MS;
      const entry: Pending = {
        accept: (msg) => {
          let v: T | undefined;
          try {
            v = decode(msg);
          } catch (err) {
            if (!isDecodeError(err)) throw err;
            return false;
          }
          if (v === undefined) return false;
          finish(v);
          return true;
        },
        cancel: () => finish(null),
      };
      const finish = (v: T | null): void => {
        clearTimeout(resend);
        clearTimeout(deadline);
        this.pending.delete(entry);
        resolve(v);
      };
      const deadline = setTimeout(() => finish(null), timeoutMs);
      const send = (): void => {
        try {
          socket.send(bytes, this.port, this.gateway, () => undefined);
        } catch {
          finish(null); // closed under us
          return;
        }
        resend = setTimeout(send, gap);
        gap *= 2;
      };
      this.pending.add(entry);
      send();
    });
  }

  /** Listens for the gateway's announcements (a restart, a new address); false if the port cannot be had. */
  async listenAnnouncements(localAddress: string, onAnnounce: (msg: Buffer) => void): Promise<boolean> {
    if (this.announceSocket) return true;
    const s = createSocket({ type: 'udp4', reuseAddr: true });
    try {
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        // Bound to the group address: only multicast to it arrives, no unicast port is opened.
        s.bind(NATPMP_ANNOUNCE_PORT, NATPMP_ANNOUNCE_GROUP, () => { s.off('error', reject); resolve(); });
      });
      s.addMembership(NATPMP_ANNOUNCE_GROUP, localAddress);
    } catch {
      try { s.close(); } catch { /* not open */ }
      return false;
    }
    s.on('error', () => undefined);
    s.on('message', (msg, rinfo) => {
      if (rinfo.address !== this.gateway) {
        this.counters.malformed++;
        return;
      }
      this.counters.announcements++;
      onAnnounce(msg);
    });
    this.announceSocket = s;
    return true;
  }

  close(): void {
    for (const p of [...this.pending]) p.cancel();
    this.pending.clear();
    for (const s of [this.socket, this.announceSocket]) {
      try { s?.close(); } catch { /* closed */ }
    }
    this.socket = null;
    this.announceSocket = null;
  }

  private open(): Promise<Socket> {
    if (this.socket) return Promise.resolve(this.socket);
    this.opening ??= new Promise<Socket>((resolve, reject) => {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind(0, () => {
        s.off('error', reject);
        s.on('error', () => undefined);
        s.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
        this.socket = s;
        resolve(s);
      });
    }).finally(() => { this.opening = null; });
    return this.opening;
  }

  private onMessage(msg: Buffer, address: string, port: number): void {
    if (address !== this.gateway || port !== this.port) {
      this.counters.malformed++;
      return;
    }
    for (const p of this.pending) if (p.accept(msg)) return;
    this.counters.malformed++;
  }
}
