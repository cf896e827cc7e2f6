// Reads UDP payloads out of a classic pcap file written by tcpdump on an Ethernet interface.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Host } from '../../scripts/natlab/index.js';

export async function udpPayloads(path: string): Promise<Buffer[]> {
  const f = await readFile(path);
  const magic = f.readUInt32LE(0);
  if (magic !== 0xa1b2c3d4) throw new Error(`not a little-endian pcap file: ${magic.toString(16)}`);
  const out: Buffer[] = [];
  let off = 24;
  while (off + 16 <= f.length) {
    const incl = f.readUInt32LE(off + 8);
    const frame = f.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (frame.readUInt16BE(12) !== 0x0800) continue; // IPv4 only
    const ihl = (frame[14]! & 0x0f) * 4;
    if (frame[14 + 9] !== 17) continue;
    const udp = 14 + ihl;
    const len = frame.readUInt16BE(udp + 4) - 8;
    out.push(Buffer.from(frame.subarray(udp + 8, udp + 8 + len)));
  }
  return out;
}

/**
 * Captures `count` WireGuard transport messages (type 4) arriving at `on` on UDP `port`, while
 * `trigger` makes traffic; returns their payloads. The pcap file lives in a temp dir removed here.
 */
export async function captureTransportMessages(on: Host, port: number, count: number, trigger: () => Promise<void>): Promise<Buffer[]> {
  const dir = await mkdtemp(join(tmpdir(), 'pinhole-pcap-'));
  try {
    const pcap = join(dir, 'cap.pcap');
    // -Q in: with both ends on the same port, `on`'s own messages to its peer match the filter too.
    const cap = on.spawn(['tcpdump', '-i', 'eth0', '-Q', 'in', '-U', '-c', String(count), '-w', pcap, `udp dst port ${port} and udp[8] = 4`]);
    await new Promise((r) => setTimeout(r, 800));
    await trigger();
    await cap.wait(10_000);
    return (await udpPayloads(pcap)).filter((p) => p[0] === 4);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
