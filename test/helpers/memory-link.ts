// Two WireGuard devices joined by an in-memory "wire" for fast protocol tests of the device logic
// (the lab tests run the same code over real TUN devices and UDP between namespaces).
import { Device, type DeviceOptions } from '../../agent/wireguard/device.js';
import type { PacketBind, PacketTun } from '../../agent/wireguard/context.js';
import type { SlabLayout } from '../../agent/wireguard/transport.js';
import { encodePackedAddr } from '../../agent/tun/packed-addr.js';
import { relayAddr } from '../../agent/magicsock/path-addr.js';
import { parseCidr } from '../../proto/ip/address.js';
import { generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';
import sodium from 'sodium-native';
import type { Keypair } from '../../proto/wireguard/keypair.js';
import { writeTransportHeader } from '../../proto/wireguard/messages.js';
import { TAG_LEN, TRANSPORT_HEADER_LEN } from '../../proto/wireguard/constants.js';

export const SLOTS = 64;
export const SLOT = 2048;

export function layout(headroom: number): SlabLayout {
  return { slab: Buffer.alloc(SLOTS * SLOT), slotSize: SLOT, headroom, slots: SLOTS };
}

export interface Node {
  device: Device;
  addr: Uint8Array;
  tunSlab: SlabLayout;
  udpSlab: SlabLayout;
  /** Inner packets the device wrote to its TUN. */
  delivered: Buffer[];
  /** Datagrams the device sent, as they left. */
  sent: Buffer[];
}

export interface Wire {
  a: Node;
  b: Node;
  /** Hook to drop/alter/duplicate datagrams in flight; return the datagrams to deliver. */
  filter: (from: Node, datagram: Buffer) => Buffer[];
  /** Delivers a raw datagram to `to` as if it came from `from`'s address. */
  inject(to: Node, from: Uint8Array, datagram: Buffer): void;
  /** Delivers whatever the devices sent on their own (timers, direct calls). */
  pump(): void;
  /** Sends an IP packet into `from`'s TUN side. */
  sendIp(from: Node, packet: Buffer): void;
  /** Sends packets into `from`'s TUN side as one batch (one read of the TUN). */
  sendIps(from: Node, packets: Buffer[]): void;
  close(): void;
}

export function ipv4Packet(src: string, dst: string, payload: Buffer, protocol = 17): Buffer {
  const p = Buffer.alloc(20 + payload.length);
  p[0] = 0x45;
  p.writeUInt16BE(p.length, 2);
  p[8] = 64;
  p[9] = protocol;
  src.split('.').forEach((x, i) => { p[12 + i] = Number(x); });
  dst.split('.').forEach((x, i) => { p[16 + i] = Number(x); });
  payload.copy(p, 20);
  return p;
}

/** `relayed`: the peers' endpoints are relay addresses and what is sent arrives as relayed packets (Device.receiveRelayed). */
export function makeWire(opts: { psk?: Uint8Array; timers?: DeviceOptions['timers']; underLoadThreshold?: { a?: number; b?: number }; relayed?: boolean } = {}): Wire {
  const keyA = generatePrivateKey();
  const keyB = generatePrivateKey();
  const mk = (key: Uint8Array, ip: string, overlay: string, underLoadThreshold?: number): Node => ({
    device: new Device({ privateKey: key, mtu: 1420, timers: opts.timers, underLoadThreshold, localAddresses: [parseCidr(`${overlay}/32`)] }),
    addr: encodePackedAddr({ address: ip, port: 51820 }),
    tunSlab: layout(16),
    udpSlab: layout(0),
    delivered: [],
    sent: [],
  });
  const a = mk(keyA, '203.0.113.1', '100.64.0.1', opts.underLoadThreshold?.a);
  const b = mk(keyB, '203.0.113.2', '100.64.0.2', opts.underLoadThreshold?.b);
  if (opts.relayed) {
    a.addr = relayAddr(1);
    b.addr = relayAddr(2);
  }
  a.device.addPeer({ publicKey: publicKeyFromPrivate(keyB), presharedKey: opts.psk, allowedIps: [parseCidr('100.64.0.2/32')], endpoint: b.addr });
  b.device.addPeer({ publicKey: publicKeyFromPrivate(keyA), presharedKey: opts.psk, allowedIps: [parseCidr('100.64.0.1/32')], endpoint: a.addr });

  const queue: Array<{ to: Node; from: Uint8Array; data: Buffer }> = [];
  let pumping = false;
  const pump = (): void => {
    if (pumping) return;
    pumping = true;
    while (queue.length > 0) {
      const { to, from, data } = queue.shift()!;
      if (opts.relayed) {
        to.device.receiveRelayed(data, from);
        to.device.flushRelayed();
        continue;
      }
      const addrs = new Uint8Array(SLOTS * 20);
      addrs.set(from, 0);
      data.copy(to.udpSlab.slab, 0);
      const lengths = new Uint32Array(SLOTS);
      lengths[0] = data.length;
      to.device.receiveUdpBatch(to.udpSlab, lengths, addrs, 1);
    }
    pumping = false;
  };
  const wire: Wire = {
    a, b,
    filter: (_from, d) => [d],
    pump,
    inject(to, from, datagram) { queue.push({ to, from, data: datagram }); pump(); },
    sendIp(from, packet) {
      packet.copy(from.tunSlab.slab, from.tunSlab.headroom);
      const lengths = new Uint32Array(SLOTS);
      lengths[0] = packet.length;
      from.device.receiveTunBatch(lengths, 1);
      pump();
    },
    sendIps(from, packets) {
      const { slab, slotSize, headroom } = from.tunSlab;
      const lengths = new Uint32Array(SLOTS);
      packets.forEach((p, i) => { p.copy(slab, i * slotSize + headroom); lengths[i] = p.length; });
      from.device.receiveTunBatch(lengths, packets.length);
      pump();
    },
    close() { a.device.close(); b.device.close(); },
  };
  const bindFor = (self: Node, other: () => Node): PacketBind => ({
    send(buf) {
      const d = Buffer.from(buf);
      self.sent.push(d);
      for (const x of wire.filter(self, d)) queue.push({ to: other(), from: self.addr, data: x });
      return true;
    },
    sendBatch(slab, offsets, lengths, _addrs, count) {
      for (let i = 0; i < count; i++) this.send(slab.subarray(offsets[i]!, offsets[i]! + lengths[i]!), _addrs);
      return count;
    },
  });
  const tunFor = (self: Node): PacketTun => ({
    writeBatch(slab, offsets, lengths, count) {
      for (let i = 0; i < count; i++) self.delivered.push(Buffer.from(slab.subarray(offsets[i]!, offsets[i]! + lengths[i]!)));
      return count;
    },
  });
  a.device.attach({ tun: tunFor(a), tunSlab: a.tunSlab, transport: { bind: bindFor(a, () => b) }, udpSlab: a.udpSlab });
  b.device.attach({ tun: tunFor(b), tunSlab: b.tunSlab, transport: { bind: bindFor(b, () => a) }, udpSlab: b.udpSlab });
  return wire;
}

/** A transport message carrying `plain` (any bytes, zero-padded to 16) under the sending side of `kp`. */
export function sealTransport(kp: Keypair, plain: Uint8Array): Buffer {
  const padded = (plain.length + 15) & ~15;
  const out = Buffer.alloc(TRANSPORT_HEADER_LEN + padded + TAG_LEN);
  out.set(plain, TRANSPORT_HEADER_LEN);
  const counter = kp.sendCounter++;
  const nonce = Buffer.alloc(12);
  nonce.writeUInt32LE(counter >>> 0, 4);
  nonce.writeUInt32LE(Math.floor(counter / 0x100000000), 8);
  const body = out.subarray(TRANSPORT_HEADER_LEN);
  sodium.crypto_aead_chacha20poly1305_ietf_encrypt(body, body.subarray(0, padded), null, null, nonce, kp.sendKey);
  writeTransportHeader(out, 0, kp.remoteIndex, counter);
  return out;
}
