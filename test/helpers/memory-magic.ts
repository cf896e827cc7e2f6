// Two managed nodes in one process for unit tests of the magic socket: each is a real Device and
// a real MagicSocket wired as the agent wires them (the socket is the device's transport and owns
// its peers' paths), over an in-memory "internet" instead of a UDP socket. The relay is a real
// relay server on loopback, passed in. Datagrams between the nodes can be cut (`udpOpen`) to
// stand for NATs that drop them; anything sent elsewhere is dropped and counted, never sent.
import nacl from 'tweetnacl';
import { pino } from 'pino';
import { Device } from '../../agent/wireguard/device.js';
import type { PacketTun } from '../../agent/wireguard/context.js';
import { MagicSocket, type MagicUdp } from '../../agent/magicsock/magic-socket.js';
import { NetmapApplier } from '../../agent/daemon/netmap-apply.js';
import { encodePackedAddr, type Endpoint } from '../../agent/tun/packed-addr.js';
import { parseCidr } from '../../proto/ip/address.js';
import { encodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import type { Peer as NetmapPeer } from '../../proto/control/schemas.js';
import type { RelayEntry } from '../../agent/magicsock/relay-set.js';
import { SLOTS, ipv4Packet, layout } from './memory-link.js';

export interface MagicNode {
  name: string;
  overlay: string;
  /** Its UDP address on the in-memory internet, packed, and as ip:port. */
  addr: Uint8Array;
  addrText: string;
  device: Device;
  magic: MagicSocket;
  applier: NetmapApplier;
  /** Its own netmap record, as the coordinator would send it to the other node. */
  record: NetmapPeer;
  /** Inner packets its device wrote to the TUN. */
  delivered: Buffer[];
  /** How often the magic socket said a path changed (onPathChange). */
  pathChanges: number;
}

export interface MagicPair {
  a: MagicNode;
  b: MagicNode;
  /** False: datagrams between the nodes are dropped (the relay still carries them). */
  udpOpen: boolean;
  /** Datagrams between the nodes dropped while udpOpen was false. */
  cut: number;
  /** Datagrams to an address no node has (e.g. the host's own interface addresses, in call-me-maybe). */
  unroutable: number;
  /** Gives `to` the netmap `peers` (applier, then magic socket, as the agent does). */
  netmap(to: MagicNode, peers: NetmapPeer[]): void;
  /** An IP packet from `from`'s TUN side to the other node's overlay address. */
  sendIp(from: MagicNode, payload: string): void;
  close(): Promise<void>;
}

const hex = (a: Uint8Array, off = 0): string => Buffer.from(a.subarray(off, off + 20)).toString('hex');

export function makeMagicPair(relay: RelayEntry): MagicPair {
  const byAddr = new Map<string, MagicNode>();
  const queue: Array<{ from: Uint8Array; to: Uint8Array; data: Uint8Array }> = [];
  let flushing = false;
  let id = 0;
  const pair = { udpOpen: true, cut: 0, unroutable: 0 } as MagicPair;

  const deliver = (): void => {
    flushing = false;
    const lengths = new Uint32Array(SLOTS);
    const addrs = new Uint8Array(SLOTS * 20);
    for (let m = queue.shift(); m; m = queue.shift()) {
      const to = byAddr.get(hex(m.to));
      const from = byAddr.get(hex(m.from));
      if (!to || !from) { pair.unroutable++; continue; }
      if (!pair.udpOpen) { pair.cut++; continue; }
      const slab = udpSlabs.get(to)!;
      slab.slab.set(m.data, slab.headroom);
      lengths[0] = m.data.length;
      addrs.set(m.from, 0);
      to.device.receiveUdpBatch(slab, lengths, addrs, 1);
    }
  };
  const post = (from: Uint8Array, to: Uint8Array, data: Uint8Array): void => {
    queue.push({ from, to: Uint8Array.from(to.subarray(0, 20)), data: Uint8Array.from(data) });
    if (!flushing) { flushing = true; setImmediate(deliver); }
  };
  const udpSlabs = new Map<MagicNode, ReturnType<typeof layout>>();
  const tunSlabs = new Map<MagicNode, ReturnType<typeof layout>>();

  const node = (name: string, ip: string, overlay: string): MagicNode => {
    const nodePrivate = generatePrivateKey();
    const discoSecret = nacl.box.keyPair().secretKey;
    const discoPublic = nacl.box.keyPair.fromSecretKey(discoSecret).publicKey;
    const addr = encodePackedAddr({ address: ip, port: 41641 });
    const device = new Device({ privateKey: nodePrivate, mtu: 1280, localAddresses: [parseCidr(`${overlay}/32`)] });
    const udp: MagicUdp = {
      port: 41641,
      send: (buf, to) => { post(addr, to, buf); return true; },
      sendBatch: (slab, offsets, lengths, to, count) => {
        for (let i = 0; i < count; i++) post(addr, to.subarray(i * 20, i * 20 + 20), slab.subarray(offsets[i]!, offsets[i]! + lengths[i]!));
        return count;
      },
      sendTo: (buf, to: Endpoint) => { post(addr, encodePackedAddr(to), buf); return true; },
    };
    const n = {
      name, overlay, addr, addrText: `${ip}:41641`, device, delivered: [] as Buffer[], pathChanges: 0,
    } as MagicNode;
    n.magic = new MagicSocket({
      device, udp, tunName: `memtest${name}`, nodePrivate, nodeKey: publicKeyFromPrivate(nodePrivate),
      discoSecret, discoPublic, log: pino({ level: 'silent' }), onReportChange: () => {}, portmap: null,
      onPathChange: () => { n.pathChanges++; },
    });
    n.applier = new NetmapApplier(device);
    n.record = {
      id: ++id, name, nodeKey: encodeKey(publicKeyFromPrivate(nodePrivate)), discoKey: encodeKey(discoPublic), ipv4: overlay,
      ipv6: `fd7a:115c:a1e0::${id}`, endpoints: [n.addrText], homeRelay: relay.name, online: true, lastSeen: null,
      routes: [], exitNode: false, tags: [],
    };
    const tun: PacketTun = {
      writeBatch(slab, offsets, lengths, count) {
        for (let i = 0; i < count; i++) n.delivered.push(Buffer.from(slab.subarray(offsets[i]!, offsets[i]! + lengths[i]!)));
        return count;
      },
    };
    const [tunSlab, udpSlab] = [layout(16), layout(0)];
    tunSlabs.set(n, tunSlab);
    udpSlabs.set(n, udpSlab);
    device.attach({ tun, tunSlab, transport: n.magic, udpSlab });
    byAddr.set(hex(addr), n);
    n.magic.setRelays([relay]);
    return n;
  };

  pair.a = node('a', '203.0.113.1', '100.64.0.1');
  pair.b = node('b', '203.0.113.2', '100.64.0.2');
  pair.netmap = (to, peers) => {
    to.applier.applyAll(peers);
    to.magic.syncPeers(peers);
  };
  pair.sendIp = (from, payload) => {
    const to = from === pair.a ? pair.b : pair.a;
    const packet = ipv4Packet(from.overlay, to.overlay, Buffer.from(payload));
    tunSlabs.get(from)!.slab.set(packet, 16);
    const lengths = new Uint32Array(SLOTS);
    lengths[0] = packet.length;
    from.device.receiveTunBatch(lengths, 1);
  };
  pair.close = async () => {
    for (const n of [pair.a, pair.b]) {
      await n.magic.close();
      n.device.close();
    }
  };
  for (const n of [pair.a, pair.b]) n.magic.start();
  return pair;
}
