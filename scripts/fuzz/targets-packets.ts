// Fuzz targets for inner IP packets (what a peer puts inside its tunnel): the IP/TCP/UDP/ICMP
// parsers, the packet filter, and the userspace NAT. Parsers must keep every offset they report
// inside the input; the filter and the NAT must never throw and must stay within their bounds.
import dgram from 'node:dgram';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { ipPacketLength, isPlausibleIpPacket } from '../../proto/ip/packet.js';
import { newIpHeaderView, readIpHeader } from '../../proto/ip/ip-header.js';
import { newTcpHeaderView, readTcpHeader } from '../../proto/ip/tcp.js';
import { newUdpHeaderView, readUdpHeader } from '../../proto/ip/udp.js';
import { newIcmpEchoView, readIcmpHeader } from '../../proto/ip/icmp.js';
import { internetChecksum } from '../../proto/ip/checksum.js';
import { PacketFilter } from '../../agent/filter/packet-filter.js';
import { UserspaceNat } from '../../agent/nat/userspace-nat.js';
import { ACK, FIN, PSH, RST, SYN, echoRequest, fold, parse, tcpPacket, udpPacket } from '../../test/helpers/nat-packets.js';
import { invariant, type FuzzTarget } from './target.js';

function samplePackets(dst4: string, dst6: string, tport: number, uport: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const [src, dst] of [['100.64.0.2', dst4], ['fd7a:1e57:9a3c::6440:2', dst6]] as const) {
    const base = { src, dst, sport: 40000, dport: tport, seq: 1000, ack: 2000 };
    out.push(
      tcpPacket({ ...base, flags: SYN, mss: 1360, wscale: 7 }),
      tcpPacket({ ...base, flags: ACK | PSH, data: Buffer.alloc(300, 0x61) }),
      tcpPacket({ ...base, flags: ACK | FIN }),
      tcpPacket({ ...base, flags: RST }),
      udpPacket(src, 40001, dst, uport, Buffer.alloc(200, 7)),
      echoRequest(src, dst, 77, 1, Buffer.alloc(56)),
    );
  }
  return out;
}

/** Re-fixes IP/transport checksums so mutated packets get past the checksum checks to deeper code. */
export function fixChecksums(p: Uint8Array): void {
  const b = Buffer.from(p.buffer, p.byteOffset, p.byteLength);
  if (b.length < 1) return;
  const v = b[0]! >> 4;
  let hl: number, proto: number, src: Buffer, dst: Buffer;
  if (v === 4 && b.length >= 20) {
    hl = (b[0]! & 15) * 4;
    if (hl < 20 || hl > b.length) return;
    b.writeUInt16BE(Math.min(b.length, 65535), 2);
    b.writeUInt16BE(0, 10);
    b.writeUInt16BE(internetChecksum(b, 0, hl), 10);
    proto = b[9]!;
    src = b.subarray(12, 16);
    dst = b.subarray(16, 20);
  } else if (v === 6 && b.length >= 40) {
    hl = 40;
    b.writeUInt16BE(Math.min(b.length - 40, 65535), 4);
    proto = b[6]!;
    src = b.subarray(8, 24);
    dst = b.subarray(24, 40);
  } else {
    return;
  }
  const l4 = b.subarray(hl);
  const at = proto === 6 ? 16 : proto === 17 ? 6 : proto === 1 || proto === 58 ? 2 : -1;
  if (at < 0 || l4.length < at + 2 || l4.length > 65535) return;
  if (proto === 17 && l4.length >= 8) l4.writeUInt16BE(l4.length, 4);
  l4.writeUInt16BE(0, at);
  let s = 0;
  for (let i = 0; i < l4.length; i += 2) s += (l4[i]! << 8) | (i + 1 < l4.length ? l4[i + 1]! : 0);
  if (proto !== 1) {
    for (const a of [src, dst]) for (let i = 0; i < a.length; i += 2) s += a.readUInt16BE(i);
    s += proto + l4.length;
  }
  l4.writeUInt16BE(fold(s), at);
}

export function ipParsers(): FuzzTarget {
  const ip = newIpHeaderView();
  const tcp = newTcpHeaderView();
  const udp = newUdpHeaderView();
  const icmp = newIcmpEchoView();
  let n = 0;
  return {
    name: 'ip-parsers',
    corpus: samplePackets('198.18.1.2', '2001:db8::2', 80, 53),
    run(input) {
      if ((n++ & 1) === 0) fixChecksums(input);
      const len = input.length;
      const total = ipPacketLength(input, 0, len);
      invariant(total <= len && (total > 0) === isPlausibleIpPacket(input, 0, len), `ipPacketLength ${total} of ${len}`);
      if (readIpHeader(input, 0, len, ip) !== 0) return;
      invariant(ip.l4Offset >= 0 && ip.l4Length >= 0 && ip.l4Offset + ip.l4Length <= len, 'IP header view outside the packet');
      invariant(ip.dstOffset + ip.addrLength <= len, 'address outside the packet');
      if (readTcpHeader(input, ip.l4Offset, ip.l4Length, tcp) === 0) {
        invariant(tcp.dataOffset + tcp.dataLength <= len && tcp.dataLength >= 0 && tcp.windowShift <= 14, 'TCP view outside the packet');
      }
      if (readUdpHeader(input, ip.l4Offset, ip.l4Length, ip.version, udp) === 0) {
        invariant(udp.dataOffset + udp.dataLength <= len && udp.dataLength >= 0, 'UDP view outside the packet');
      }
      if (readIcmpHeader(input, ip.l4Offset, ip.l4Length, icmp) === 0) {
        invariant(icmp.dataOffset + icmp.dataLength <= len && icmp.dataLength >= 0, 'ICMP view outside the packet');
      }
    },
  };
}

export function packetFilter(): FuzzTarget {
  const capacity = 1024;
  const f = new PacketFilter([
    { srcIps: ['100.64.0.0/10'], dst: [{ cidr: '100.64.0.1/32', ports: '22,80-90' }], protocols: [6] },
    { srcIps: ['*'], dst: [{ cidr: '100.64.0.1/32', ports: '*' }], protocols: [1, 58] },
    { srcIps: ['fd7a:1e57:9a3c::/48'], dst: [{ cidr: 'fd7a:1e57:9a3c::6440:1/128', ports: '53' }], protocols: [17] },
  ], { capacity });
  let now = 1_000_000;
  let n = 0;
  return {
    name: 'packet-filter',
    corpus: [...samplePackets('100.64.0.1', 'fd7a:1e57:9a3c::6440:1', 22, 53), ...samplePackets('100.64.0.2', 'fd7a:1e57:9a3c::6440:2', 80, 53)],
    run(input) {
      now += 3;
      if ((n++ & 1) === 0) fixChecksums(input);
      const len = input.length;
      const verdict = f.allowInbound(input, 0, len, now);
      invariant(typeof verdict === 'boolean', 'verdict');
      if (isPlausibleIpPacket(input, 0, len) && (n & 3) === 0) f.trackOutbound(input, 0, len, now);
      if ((n & 0x3ff) === 0) {
        const st = f.status(now);
        invariant(st.flows <= st.capacity * 2, `flow table over capacity (${st.flows})`);
      }
    },
  };
}

/** The userspace NAT (exit node / subnet router) with every destination forced to the loopback. */
export async function userspaceNat(): Promise<FuzzTarget> {
  const limits = { tcpPerPeer: 64, tcpTotal: 256, udpPerPeer: 32, udpTotal: 128, icmpPerPeer: 16, icmpTotal: 64, maxPeers: 32, synBurst: 50 };
  let malformed = 0;
  let malformedHex = '';
  const nat = new UserspaceNat({
    allowLocalDestinations: true,
    limits,
    emit(packet) {
      const p = parse(packet);
      if (!p.checksumsOk || packet.length > 65535 + 40) { malformed++; malformedHex ||= Buffer.from(packet).toString('hex'); }
    },
  });
  const tcpServer = net.createServer((s) => s.on('error', () => {}).end('hello'));
  tcpServer.listen(0, '127.0.0.1');
  await once(tcpServer, 'listening');
  const udpServer = dgram.createSocket('udp4');
  udpServer.bind(0, '127.0.0.1');
  await once(udpServer, 'listening');
  udpServer.on('message', (m, r) => udpServer.send(m, r.port, r.address));
  const tport = (tcpServer.address() as net.AddressInfo).port;
  const uport = udpServer.address().port;
  let n = 0;
  return {
    name: 'userspace-nat',
    corpus: samplePackets('127.0.0.1', '::1', tport, uport),
    run(input) {
      const p = Buffer.from(input);
      // Never let a packet leave the machine: destination back to the loopback.
      if (p.length >= 20 && p[0]! >> 4 === 4) p.set([127, 0, 0, 1], 16);
      if (p.length >= 40 && p[0]! >> 4 === 6) p.set([...Array<number>(15).fill(0), 1], 24);
      if ((n++ & 1) === 0) fixChecksums(p);
      nat.handle(p);
      invariant(malformed === 0, `the NAT emitted a malformed packet: ${malformedHex}`);
    },
    async tick() { await sleep(0); },
    async finish() {
      await sleep(100);
      const st = nat.status();
      invariant(st.drops['internal-error'] === 0, `an exception escaped a NAT protocol handler (${st.drops['internal-error']})`);
      invariant(st.tcp.flows - st.tcp.timeWait <= limits.tcpTotal, `tcp flows ${st.tcp.flows}`);
      invariant(st.udp.mappings <= limits.udpTotal, `udp mappings ${st.udp.mappings}`);
      invariant(st.icmp.pending <= limits.icmpTotal && st.peers <= limits.maxPeers, 'icmp/peers bounded');
    },
    close() {
      nat.close();
      tcpServer.close();
      udpServer.close();
    },
  };
}
