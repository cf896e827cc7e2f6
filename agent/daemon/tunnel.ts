// The data plane of one agent: a TUN device and the batch UDP socket joined by a WireGuard
// device. Used by static mode and managed mode alike; addresses and routes are the caller's.
import { Device } from '../wireguard/device.js';
import type { SlabLayout } from '../wireguard/transport.js';
import type { DeviceTransport } from '../wireguard/context.js';
import { TunDevice } from '../tun/tun-device.js';
import { BatchUdpSocket } from '../tun/udp-socket.js';
import { BusyPoll, busyPollMicrosFromEnv } from '../tun/busy-poll.js';
import { setLinkUp } from '../tun/iface.js';
import { loadNative } from '../tun/native.js';
import type { PacketSlab } from '../tun/packet-slab.js';

export const TUN_NAME = /^[A-Za-z0-9_=+.-]{1,15}$/;

export interface TunnelOptions<T extends DeviceTransport> {
  device: Device;
  /**
   * Builds the device's transport over the opened UDP socket: the socket itself (static mode,
   * `(udp) => ({ bind: udp })`) or the magic socket (managed mode). The device is attached to it once.
   */
  transport: (udp: BatchUdpSocket) => T;
  tunName: string;
  mtu: number;
  /** UDP port; 0 picks one. */
  port: number;
  /** SO_MARK on the UDP socket (socket-mark.ts); 0 or absent: unmarked. */
  socketMark?: number;
  /** TUN offloads (TSO/USO in, GRO out); default on, PINHOLE_TUN_OFFLOAD=0 turns them off. */
  tunOffload?: boolean;
  /** The TUN or the socket failed for good (e.g. the interface was deleted underneath). */
  onFatal: (err: Error) => void;
}

export interface Tunnel<T extends DeviceTransport = DeviceTransport> {
  readonly device: Device;
  readonly tun: TunDevice;
  readonly udp: BatchUdpSocket;
  /** What the device sends through (TunnelOptions.transport). */
  readonly transport: T;
  /** Stops the device, closes the socket and removes the TUN. Idempotent. */
  close(): void;
}

export function slabLayout(slab: PacketSlab): SlabLayout {
  return { slab: slab.buffer, slotSize: slab.slotSize, headroom: slab.headroom, slots: slab.slots };
}

/** Opens the TUN (link up) and the UDP socket, and attaches the device to both. */
export async function openTunnel<T extends DeviceTransport>(opts: TunnelOptions<T>): Promise<Tunnel<T>> {
  if (!TUN_NAME.test(opts.tunName)) throw new Error(`invalid TUN name "${opts.tunName}": use --tun NAME (1-15 letters, digits, _=+.-)`);
  const { device, mtu } = opts;
  // PINHOLE_BUSY_POLL_US=300 keeps the loop polling after small batches (off by default: see busy-poll.ts).
  const busyPoll = BusyPoll.create({ micros: busyPollMicrosFromEnv(process.env.PINHOLE_BUSY_POLL_US) });
  let tun: TunDevice | undefined;
  let udp: BatchUdpSocket | undefined;
  try {
    const offload = opts.tunOffload ?? process.env.PINHOLE_TUN_OFFLOAD !== '0';
    tun = await TunDevice.open({ name: opts.tunName, mtu, batch: 64, headroom: 16, tailroom: 32, busyPoll, offload });
    await setLinkUp(tun.name);
    udp = BatchUdpSocket.open({ port: opts.port, batch: 64, maxDatagram: Math.max(1984, mtu + 128), busyPoll, mark: opts.socketMark });
  } catch (err) {
    tun?.close();
    busyPoll.close();
    throw err;
  }
  const udpLayout = slabLayout(udp.rx);
  let transport: T;
  try {
    transport = opts.transport(udp);
  } catch (err) {
    udp.close();
    tun.close();
    busyPoll.close();
    throw err;
  }
  device.attach({ tun, tunSlab: slabLayout(tun.rx), transport, udpSlab: udpLayout });
  tun.onPackets = (count, rx) => device.receiveTunBatch(rx.lengths, count);
  udp.onPackets = (count, rx) => device.receiveUdpBatch(udpLayout, rx.lengths, rx.addrs, count);
  const [t, u] = [tun, udp];
  // The common case of the data path runs in the addon (wireguard/fast-path.ts); PINHOLE_FASTPATH=0 keeps it all in JS.
  if (process.env.PINHOLE_FASTPATH !== '0') {
    const { FastPath } = loadNative();
    device.attachFastPath((limits, m, now) => new FastPath(t.handle, u.handle, limits, m, now));
  }
  t.onError = (err) => opts.onFatal(new Error(`TUN ${t.name} failed: ${err.message}`));
  u.onError = (err) => opts.onFatal(new Error(`UDP socket failed: ${err.message}`));
  let closed = false;
  return {
    device, tun: t, udp: u, transport,
    close() {
      if (closed) return;
      closed = true;
      for (const fn of [() => device.close(), () => u.close(), () => t.close(), () => busyPoll.close()]) {
        try { fn(); } catch { /* best effort on the way out */ }
      }
    },
  };
}
