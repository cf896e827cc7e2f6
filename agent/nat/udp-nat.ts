// UDP through the NAT: one host dgram socket per (peer address, peer port) — endpoint-independent
// mapping, whatever the destinations — with endpoint-independent ("full cone") or
// address-and-port-dependent filtering of what comes back, and an idle timeout (RFC 4787).
import dgram from 'node:dgram';
import { formatAddress, tryParseAddress } from '../../proto/ip/address.js';
import { transportChecksum } from '../../proto/ip/checksum.js';
import { IP_PROTO_UDP, type IpHeaderView } from '../../proto/ip/ip-header.js';
import { newUdpHeaderView, readUdpHeader } from '../../proto/ip/udp.js';
import { FlowKey, FlowTable, type FlowEntry } from './flow-table.js';
import type { NatContext } from './nat-context.js';
import { copyBytes } from '../../proto/bytes.js';
import type { PeerState } from './peer-table.js';
import { sendUnreachable, unreachableKindOf } from './unreachable.js';

export type UdpFiltering = 'endpoint-independent' | 'address-and-port-dependent';

class UdpMapping implements FlowEntry {
  nextInBucket: FlowEntry | null = null;
  lastActive: number;
  closed = false;
  /** Remote endpoints this mapping sent to (APDF only): v4 as addr * 65536 + port, v6 as text. */
  readonly contacted: Set<number | string> | null;
  private lastDstNum = -1;
  private lastDstText = '';
  private readonly lastDstBytes: Uint8Array;
  private lastRemoteText = '';
  private lastRemoteBytes: Uint8Array | null = null;

  constructor(
    readonly key: Uint8Array, readonly hash: number, readonly peer: PeerState, readonly version: 4 | 6,
    readonly client: Uint8Array, readonly clientPort: number, readonly socket: dgram.Socket,
    private readonly nat: UdpNat, apdf: boolean, now: number,
  ) {
    this.lastActive = now;
    this.contacted = apdf ? new Set() : null;
    this.lastDstBytes = new Uint8Array(client.length);
    socket.on('message', (msg, rinfo) => this.nat.fromHost(this, msg, rinfo.address, rinfo.port));
    socket.on('error', (err) => this.nat.socketFailed(this, err));
  }

  /** socket.send callback, one per mapping (not per datagram). */
  readonly onSent = (err: Error | null): void => {
    if (err) this.nat.sendFailed(this, err);
  };

  /** The destination address as text for socket.send, cached while it stays the same. */
  destinationText(buf: Uint8Array, off: number): string {
    if (this.version === 4) {
      const n = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
      if (n !== this.lastDstNum) {
        this.lastDstNum = n;
        this.lastDstText = `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
      }
      return this.lastDstText;
    }
    let same = this.lastDstText !== '';
    for (let i = 0; same && i < 16; i++) same = this.lastDstBytes[i] === buf[off + i];
    if (!same) {
      this.lastDstBytes.set(buf.subarray(off, off + 16));
      this.lastDstText = formatAddress(this.lastDstBytes);
    }
    return this.lastDstText;
  }

  /** A remote's address as bytes (cached), or null when it is not a plain address of our family. */
  remoteBytes(text: string): Uint8Array | null {
    if (text === this.lastRemoteText) return this.lastRemoteBytes;
    const parsed = tryParseAddress(text);
    const bytes = parsed && parsed.family === this.version ? parsed.bytes : null;
    this.lastRemoteText = text;
    this.lastRemoteBytes = bytes;
    return bytes;
  }

  /** The key of a remote endpoint in `contacted`; the address is text and also bytes at addr[off..]. */
  filterKey(addrText: string, addr: Uint8Array, off: number, port: number): number | string {
    if (this.version === 4) return (((addr[off]! << 24) | (addr[off + 1]! << 16) | (addr[off + 2]! << 8) | addr[off + 3]!) >>> 0) * 65536 + port;
    return `${addrText}|${port}`;
  }
}

export class UdpNat {
  private readonly table = new FlowTable<UdpMapping>();
  private readonly key = new FlowKey();
  private readonly udp = newUdpHeaderView();
  private readonly apdf: boolean;

  constructor(private readonly ctx: NatContext, readonly filtering: UdpFiltering) {
    this.apdf = filtering === 'address-and-port-dependent';
  }

  get size(): number {
    return this.table.size;
  }

  /** A UDP datagram from the overlay, IP header already validated. */
  handle(buf: Uint8Array, ip: IpHeaderView): void {
    const { counters, limits } = this.ctx;
    const u = this.udp;
    if (readUdpHeader(buf, ip.l4Offset, ip.l4Length, ip.version, u) < 0 || u.srcPort === 0 || u.dstPort === 0) {
      counters.drop('malformed-udp');
      return;
    }
    if (u.checksum !== 0 && transportChecksum(buf, ip.offset, ip.version, IP_PROTO_UDP, ip.l4Offset, u.length) !== 0) {
      counters.drop('bad-udp-checksum');
      return;
    }
    const now = this.ctx.now();
    let m = this.table.find(this.key.fill(buf, ip, u.srcPort, 0, false));
    if (!m) {
      const peer = this.ctx.peers.get(buf, ip.srcOffset, ip.addrLength, now);
      if (!peer) {
        counters.drop('peer-table-full');
        return;
      }
      if (peer.udp >= limits.udpPerPeer || this.table.size >= limits.udpTotal) {
        counters.drop('udp-table-full');
        return;
      }
      const opened = this.open(peer, ip, buf, u.srcPort, now);
      if (!opened) {
        counters.drop('udp-send-failed');
        return;
      }
      m = opened;
    }
    m.lastActive = now;
    const dst = m.destinationText(buf, ip.dstOffset);
    if (m.contacted) this.remember(m, m.filterKey(dst, buf, ip.dstOffset, u.dstPort));
    const payload = Buffer.allocUnsafe(u.dataLength);
    payload.set(buf.subarray(u.dataOffset, u.dataOffset + u.dataLength));
    m.socket.send(payload, u.dstPort, dst, m.onSent);
    counters.udp.datagramsOut++;
    counters.udp.bytesOut += u.dataLength;
  }

  private open(peer: PeerState, ip: IpHeaderView, buf: Uint8Array, clientPort: number, now: number): UdpMapping | null {
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket({ type: ip.version === 4 ? 'udp4' : 'udp6', ipv6Only: ip.version === 6 });
      socket.bind(0);
    } catch (err) {
      this.ctx.log.warn(`NAT: cannot open a UDP socket: ${(err as Error).message}`);
      return null;
    }
    const client = copyBytes(buf, ip.srcOffset, ip.srcOffset + ip.addrLength);
    const m = new UdpMapping(this.key.copy(), this.key.hash, peer, ip.version, client, clientPort, socket, this, this.apdf, now);
    this.table.insert(m);
    peer.udp++;
    this.ctx.counters.udp.mappingsCreated++;
    return m;
  }

  private remember(m: UdpMapping, key: number | string): void {
    const set = m.contacted!;
    if (set.has(key)) return;
    if (set.size >= this.ctx.limits.udpFilterEntries) set.delete(set.values().next().value!);
    set.add(key);
  }

  /** A datagram the host socket received: filtered, then sent to the client as UDP/IP. */
  fromHost(m: UdpMapping, msg: Buffer, address: string, port: number): void {
    if (m.closed) return;
    const { counters } = this.ctx;
    const remote = m.remoteBytes(address);
    if (!remote || (m.contacted && !m.contacted.has(m.filterKey(address, remote, 0, port)))) {
      counters.drop('udp-filtered');
      return;
    }
    m.lastActive = this.ctx.now();
    counters.udp.datagramsIn++;
    counters.udp.bytesIn += msg.length;
    this.ctx.writer.udp(m.version, remote, port, m.client, m.clientPort, msg, 0, msg.length);
  }

  /** The socket itself failed (cannot bind, ...): the mapping is closed. */
  socketFailed(m: UdpMapping, err: Error): void {
    this.ctx.log.warn(`NAT: UDP socket of a mapping failed: ${err.message}`);
    this.close(m);
  }

  /** A send failed (reported asynchronously): counted; "no route" answered with ICMP unreachable. */
  sendFailed(m: UdpMapping, err: Error & { code?: string; address?: string; port?: number }): void {
    this.ctx.counters.drop('udp-send-failed');
    if (m.closed) return;
    const kind = unreachableKindOf(err.code);
    const remote = kind && err.address ? tryParseAddress(err.address) : null;
    if (kind && remote && remote.family === m.version && err.port) {
      sendUnreachable(this.ctx.writer, {
        version: m.version, protocol: IP_PROTO_UDP, client: m.client, clientPort: m.clientPort,
        remote: remote.bytes, remotePort: err.port, seq: 0,
      }, kind);
    }
  }

  private close(m: UdpMapping): void {
    if (m.closed) return;
    m.closed = true;
    this.table.remove(m);
    m.peer.udp--;
    m.peer.touchedAt = this.ctx.now();
    try {
      m.socket.close();
    } catch {
      // already closed
    }
  }

  /** Closes mappings idle for longer than udpIdleMs. */
  sweep(now: number): void {
    const idle = this.ctx.limits.udpIdleMs;
    for (const m of this.table.values()) {
      if (now - m.lastActive >= idle) {
        this.close(m);
        this.ctx.counters.udp.mappingsExpired++;
      }
    }
  }

  closeAll(): void {
    for (const m of this.table.values()) this.close(m);
  }
}
