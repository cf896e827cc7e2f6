// TUN device (native addon): packets routed into the interface arrive byte-exact in batches,
// packets written with writeBatch reach local sockets, close/ref/unref and open errors behave.
// Needs root. Traffic stays inside 100.64.0.0/10 and 198.18.0.0/15 on a device of our own.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { TunDevice, TunOpenError } from '../../agent/tun/tun-device.js';
import { addAddress, addRoute, interfaceExists, removeRoute, runIp, setLinkUp } from '../../agent/tun/iface.js';
import type { PacketSlab } from '../../agent/tun/packet-slab.js';

const TUN_MODULE = new URL('../../agent/tun/tun-device.js', import.meta.url).href;
const MTU = 1400;
const opened: TunDevice[] = [];
const names: string[] = [];
const children: ChildProcess[] = [];

after(async () => {
  for (const d of opened) d.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const n of names) if (interfaceExists(n)) await runIp(['link', 'del', 'dev', n]).catch(() => {});
});

function uniqueName(): string {
  const name = `ph${randomBytes(4).toString('hex')}`;  // 10 chars, IFNAMSIZ allows 15
  names.push(name);
  return name;
}

/** A random /30 in the overlay range 100.64.0.0/10: .1 is ours, .2 is "the far side". */
function overlaySubnet(): { local: string; remote: string } {
  const b = `100.${64 + randomInt(64)}.${randomInt(256)}`;
  const d = randomInt(64) * 4;
  return { local: `${b}.${d + 1}`, remote: `${b}.${d + 2}` };
}

async function openConfigured(batch = 64) {
  const name = uniqueName();
  const dev = await TunDevice.open({ name, mtu: MTU, batch });
  opened.push(dev);
  const net = overlaySubnet();
  await addAddress(name, `${net.local}/30`);
  await setLinkUp(name);
  return { dev, name, ...net };
}

// --- IPv4 / UDP / ICMP packet helpers (test-local, independent of the code under test) ---

function checksum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i < end; i += 2) sum += (buf[i]! << 8) | (i + 1 < end ? buf[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ip4(text: string): number[] {
  return text.split('.').map(Number);
}

interface Udp4 {
  src: string; dst: string; sport: number; dport: number; payload: Buffer;
  id?: number; flags?: number; ttl?: number;
}

/** An IPv4/UDP packet with valid header and UDP checksums. */
function buildUdp4(p: Udp4): Buffer {
  const pkt = Buffer.alloc(28 + p.payload.length);
  pkt[0] = 0x45;
  pkt.writeUInt16BE(pkt.length, 2);
  pkt.writeUInt16BE(p.id ?? 0, 4);
  pkt.writeUInt16BE(p.flags ?? 0, 6);
  pkt[8] = p.ttl ?? 64;
  pkt[9] = 17;
  pkt.set(ip4(p.src), 12);
  pkt.set(ip4(p.dst), 16);
  pkt.writeUInt16BE(checksum(pkt, 0, 20), 10);
  pkt.writeUInt16BE(p.sport, 20);
  pkt.writeUInt16BE(p.dport, 22);
  pkt.writeUInt16BE(8 + p.payload.length, 24);
  p.payload.copy(pkt, 28);
  const pseudo = checksumPseudo(pkt, 17, 8 + p.payload.length);
  pkt.writeUInt16BE(checksum(pkt, 20, pkt.length, pseudo) || 0xffff, 26);
  return pkt;
}

function checksumPseudo(pkt: Uint8Array, proto: number, len: number): number {
  let s = proto + len;
  for (let i = 12; i < 20; i += 2) s += (pkt[i]! << 8) | pkt[i + 1]!;
  return s;
}

function isUdp4To(pkt: Buffer, dst: string, dport: number): boolean {
  return pkt.length >= 28 && pkt[0] === 0x45 && pkt[9] === 17 &&
    pkt.subarray(16, 20).equals(Buffer.from(ip4(dst))) && pkt.readUInt16BE(22) === dport;
}

function isEchoRequestTo(pkt: Uint8Array, dst: string): boolean {
  const d = ip4(dst);
  return pkt.length >= 28 && pkt[0] === 0x45 && pkt[9] === 1 && pkt[20] === 8 &&
    pkt[16] === d[0] && pkt[17] === d[1] && pkt[18] === d[2] && pkt[19] === d[3];
}

/** Collects copies of matching packets until `want` arrived; records every batch size. */
function collect(dev: TunDevice, match: (p: Buffer) => boolean, want: number, timeoutMs = 5000) {
  const packets: Buffer[] = [];
  const batches: { count: number; matching: number }[] = [];
  return new Promise<{ packets: Buffer[]; batches: typeof batches }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${packets.length}/${want} packets arrived`)), timeoutMs);
    dev.onPackets = (count: number, rx: PacketSlab) => {
      let matching = 0;
      for (let i = 0; i < count; i++) {
        const p = rx.packet(i);
        if (match(p)) { packets.push(Buffer.from(p)); matching++; }
      }
      batches.push({ count, matching });
      if (packets.length >= want) { clearTimeout(timer); dev.onPackets = () => {}; resolve({ packets, batches }); }
    };
  });
}

async function udp4Socket(address: string): Promise<dgram.Socket> {
  const s = dgram.createSocket('udp4');
  s.bind(0, address);
  await once(s, 'listening');
  return s;
}

interface RunResult { code: number | null; stdout: string; stderr: string }

function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** A node child that opens a TUN device like the agent does, printing one line on failure. */
const OPEN_SCRIPT = `
const { TunDevice } = await import(process.argv[1]);
try {
  const dev = await TunDevice.open({ name: process.argv[2] });
  if (process.argv[3] === 'unref') dev.unref();
  process.stdout.write('opened ' + dev.name + '\\n');
} catch (err) {
  process.stdout.write(String(err.code) + '\\n');
  process.stderr.write(err.message + '\\n');
  process.exit(1);
}`;

// ------------------------------------------------------------------------------------------

test('a datagram routed into the device arrives as the exact IPv4/UDP packet, in a batch', async () => {
  const { dev, name, local, remote } = await openConfigured();
  const sock = await udp4Socket(local);
  try {
    assert.equal(readFileSync(`/sys/class/net/${name}/mtu`, 'utf8').trim(), String(MTU));
    const payload = randomBytes(300);
    const arrived = collect(dev, (p) => isUdp4To(p, remote, 9999), 1);
    sock.send(payload, 9999, remote);
    const { packets, batches } = await arrived;
    const got = packets[0]!;
    const expected = buildUdp4({
      src: local, dst: remote, sport: sock.address().port, dport: 9999, payload,
      id: got.readUInt16BE(4), flags: got.readUInt16BE(6), ttl: got[8]!,
    });
    assert.deepEqual(got, expected);  // every byte, checksums included
    assert.equal(checksum(got, 0, 20), 0);
    assert.ok(batches.length >= 1);
    const c = dev.counters();
    assert.ok(c.rxPackets >= 1 && c.rxBatches >= 1 && c.rxBytes >= got.length);
  } finally {
    sock.close();
    dev.close();
  }
});

test('packets queued while paused are delivered together in one onPackets call', async () => {
  const { dev, local, remote } = await openConfigured();
  const sock = await udp4Socket(local);
  try {
    dev.pause();
    for (let i = 0; i < 16; i++) sock.send(Buffer.from(`packet ${i}`), 9000, remote);
    await sleep(200);
    const arrived = collect(dev, (p) => isUdp4To(p, remote, 9000), 16);
    const before = dev.counters().rxBatches;
    dev.resume();
    const { packets, batches } = await arrived;
    assert.equal(batches[0]!.matching, 16, 'all 16 queued packets in the first batch');
    assert.deepEqual(packets.map((p) => p.subarray(28).toString()), [...Array(16).keys()].map((i) => `packet ${i}`));
    assert.equal(dev.counters().rxBatches - before, batches.length);
  } finally {
    sock.close();
    dev.close();
  }
});

test('writeBatch injects packets that the kernel delivers to a local socket; bad ones are counted', async () => {
  const { dev, local, remote } = await openConfigured();
  const sock = await udp4Socket(local);
  try {
    const port = sock.address().port;
    const payloads = [randomBytes(10), randomBytes(1000), randomBytes(MTU - 28)];
    const slab = Buffer.alloc(4 * 2048);
    const offsets = new Uint32Array(4);
    const lengths = new Uint32Array(4);
    const packets = [
      buildUdp4({ src: remote, dst: local, sport: 7000, dport: port, payload: payloads[0]! }),
      Buffer.alloc(40),  // version nibble 0: not an IP packet, the kernel refuses it
      buildUdp4({ src: remote, dst: local, sport: 7001, dport: port, payload: payloads[1]! }),
      buildUdp4({ src: remote, dst: local, sport: 7002, dport: port, payload: payloads[2]! }),
    ];
    packets.forEach((p, i) => { offsets[i] = i * 2048 + 16; lengths[i] = p.length; p.copy(slab, offsets[i]); });
    const received: { msg: Buffer; address: string; port: number }[] = [];
    sock.on('message', (msg, rinfo) => received.push({ msg, address: rinfo.address, port: rinfo.port }));

    assert.equal(dev.writeBatch(slab, offsets, lengths, 4), 3);
    for (let i = 0; i < 50 && received.length < 3; i++) await sleep(20);

    assert.deepEqual(received.map((r) => r.msg), payloads);
    assert.deepEqual(received.map((r) => `${r.address}:${r.port}`), [7000, 7001, 7002].map((p) => `${remote}:${p}`));
    const c = dev.counters();
    assert.equal(c.txPackets, 3);
    assert.equal(c.txBytes, packets[0]!.length + packets[2]!.length + packets[3]!.length);
    assert.equal(c.txErrors, 1);
    assert.equal(c.lastError, 'EINVAL');
  } finally {
    sock.close();
    dev.close();
  }
});

test('ping gets replies written in place from the receive slab', async () => {
  const { dev, remote } = await openConfigured();
  const outOffsets = new Uint32Array(dev.rx.slots);
  const outLengths = new Uint32Array(dev.rx.slots);
  let replies = 0;
  dev.onPackets = (count, rx) => {
    let n = 0;
    const b = rx.buffer;
    for (let i = 0; i < count; i++) {
      const o = rx.offsets[i]!;
      const len = rx.lengths[i]!;
      if (!isEchoRequestTo(b.subarray(o, o + len), remote)) continue;
      for (let k = 0; k < 4; k++) {  // swap source and destination address
        const t = b[o + 12 + k]!; b[o + 12 + k] = b[o + 16 + k]!; b[o + 16 + k] = t;
      }
      b[o + 20] = 0;  // echo reply
      b.writeUInt16BE(0, o + 22);
      b.writeUInt16BE(checksum(b, o + 20, o + len), o + 22);
      b.writeUInt16BE(0, o + 10);
      b.writeUInt16BE(checksum(b, o, o + 20), o + 10);
      outOffsets[n] = o;
      outLengths[n++] = len;
    }
    replies += dev.writeBatch(rx.buffer, outOffsets, outLengths, n);
  };
  try {
    const r = await run('ping', ['-n', '-c', '3', '-i', '0.2', '-W', '2', remote]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 packets transmitted, 3 received/);
    assert.equal(replies, 3);
  } finally {
    dev.close();
  }
});

test('addRoute leads a prefix into the device, removeRoute takes it out; IPv6 addresses apply', async () => {
  const { dev, name, local } = await openConfigured();
  const sock = await udp4Socket(local);
  const prefix = `198.18.${randomInt(256)}`;
  const v6 = `fd7a:115c:a1e0:${randomInt(0x10000).toString(16)}::1`;
  try {
    await addRoute(name, `${prefix}.0/24`);
    await addRoute(name, `${prefix}.0/24`);  // idempotent
    const routes = JSON.parse(await runIp(['-j', '-4', 'route', 'show', 'dev', name])) as { dst: string }[];
    assert.ok(routes.some((r) => r.dst === `${prefix}.0/24`));
    const arrived = collect(dev, (p) => isUdp4To(p, `${prefix}.7`, 4242), 1);
    sock.send(Buffer.from('via route'), 4242, `${prefix}.7`);
    const { packets } = await arrived;
    assert.equal(packets[0]!.subarray(28).toString(), 'via route');

    await removeRoute(name, `${prefix}.0/24`);
    const left = JSON.parse(await runIp(['-j', '-4', 'route', 'show', 'dev', name])) as { dst: string }[];
    assert.ok(!left.some((r) => r.dst === `${prefix}.0/24`));

    await addAddress(name, `${v6}/64`);
    const addrs = JSON.parse(await runIp(['-j', '-6', 'addr', 'show', 'dev', name])) as
      { addr_info: { local: string; prefixlen: number }[] }[];
    assert.ok(addrs[0]!.addr_info.some((a) => a.local === v6 && a.prefixlen === 64));
    await assert.rejects(addRoute(name, '198.18.0.0/99'), /invalid CIDR/);
    await assert.rejects(removeRoute(name, `${prefix}.0/24`), (e: Error) =>
      e.name === 'IfaceConfigError' && e.message.startsWith(`ip -4 route del ${prefix}.0/24 dev ${name}: `) && !e.message.includes('\n'));
  } finally {
    sock.close();
    dev.close();
  }
});

test('close() is prompt and idempotent, no callback fires after it, the interface disappears', async () => {
  const { dev, name, local, remote } = await openConfigured(2);
  const sock = await udp4Socket(local);
  try {
    dev.pause();
    for (let i = 0; i < 6; i++) sock.send(Buffer.from(`queued ${i}`), 9100, remote);
    await sleep(200);
    let calls = 0;
    let closeMs = -1;
    dev.onPackets = () => {
      calls++;
      const t0 = performance.now();
      dev.close();  // from inside the batch callback: the remaining 4 must never be delivered
      closeMs = performance.now() - t0;
    };
    dev.resume();
    await sleep(300);
    assert.equal(calls, 1);
    assert.ok(closeMs >= 0 && closeMs < 100, `close took ${closeMs} ms`);
    assert.equal(dev.closed, true);
    assert.equal(interfaceExists(name), false);
    dev.close();
    assert.throws(() => dev.writeBatch(Buffer.alloc(64), new Uint32Array(1), new Uint32Array(1), 1),
      (e: Error & { code?: string }) => e.code === 'ERR_CLOSED');
  } finally {
    sock.close();
    dev.close();
  }
});

test('kernel-chosen name, busy name and a non-TUN name', async () => {
  const auto = await TunDevice.open({});
  opened.push(auto);
  const name = uniqueName();
  const first = await TunDevice.open({ name });
  opened.push(first);
  try {
    assert.match(auto.name, /^tun\d+$/);
    assert.equal(interfaceExists(auto.name), true);
    await assert.rejects(TunDevice.open({ name }), (e: Error) =>
      e instanceof TunOpenError && e.code === 'EBUSY' && e.message === `TUN device ${name} is busy`);
    await assert.rejects(TunDevice.open({ name: 'lo' }), (e: Error) =>
      e instanceof TunOpenError && e.code === 'EINVAL' && /^cannot create TUN device lo: /.test(e.message));
    await assert.rejects(TunDevice.open({ name: 'x'.repeat(16) }), (e: Error) =>
      e instanceof TunOpenError && /at most 15 characters/.test(e.message));
  } finally {
    auto.close();
    first.close();
  }
  assert.equal(interfaceExists(auto.name), false);
  assert.equal(interfaceExists(name), false);
});

test('an open device keeps the process alive; after unref() the process exits', async () => {
  const unrefed = await run(process.execPath, ['--input-type=module', '-e', OPEN_SCRIPT, TUN_MODULE, uniqueName(), 'unref'], 10_000);
  assert.equal(unrefed.code, 0, unrefed.stderr);
  assert.match(unrefed.stdout, /^opened ph[0-9a-f]{8}\n$/);

  const name = uniqueName();
  const child = spawn(process.execPath, ['--input-type=module', '-e', OPEN_SCRIPT, TUN_MODULE, name], { stdio: 'pipe' });
  children.push(child);
  const [line] = await once(child.stdout!, 'data') as [Buffer];
  assert.equal(line.toString(), `opened ${name}\n`);
  await sleep(1000);
  assert.equal(child.exitCode, null, 'still running with the device open');
  assert.equal(interfaceExists(name), true);
  child.kill('SIGTERM');
  await once(child, 'exit');
  assert.equal(interfaceExists(name), false);
});

test('opening without permission prints one clear line and exits non-zero', async () => {
  const name = uniqueName();
  const expected = `cannot create TUN device ${name}: permission denied (needs root or CAP_NET_ADMIN)`;
  const node = process.execPath;
  const asNobody = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups',
    node, '--input-type=module', '-e', OPEN_SCRIPT, TUN_MODULE, name]);
  const noCap = await run('setpriv', ['--inh-caps=-net_admin', '--bounding-set=-net_admin',
    node, '--input-type=module', '-e', OPEN_SCRIPT, TUN_MODULE, name]);
  for (const r of [asNobody, noCap]) {
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `${expected}\n`);
    assert.match(r.stdout, /^(EPERM|EACCES)\n$/);
  }
  assert.equal(noCap.stdout, 'EPERM\n');  // root without CAP_NET_ADMIN: refused by TUNSETIFF
  assert.equal(interfaceExists(name), false);
});

test('without /dev/net/tun the error says so in one line', async () => {
  // A private mount namespace hides /dev/net under an empty tmpfs; the host is untouched.
  const r = await run('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs none /dev/net && exec "$@"',
    'sh', process.execPath, '--input-type=module', '-e', OPEN_SCRIPT, TUN_MODULE, uniqueName()]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, 'ENOENT\n');
  assert.equal(r.stderr, 'cannot open /dev/net/tun: no such device (is the tun module loaded?)\n');
});

test('a worker thread that ends with the device still open releases it without crashing', async () => {
  const name = uniqueName();
  const script = `
    import { Worker } from 'node:worker_threads';
    import { existsSync } from 'node:fs';
    const w = new Worker(\`
      const { TunDevice } = await import(${JSON.stringify(TUN_MODULE)});
      const dev = await TunDevice.open({ name: ${JSON.stringify(name)} });
      (await import('node:worker_threads')).parentPort.postMessage(dev.name);
    \`, { eval: true });
    const opened = await new Promise((resolve) => w.once('message', resolve));
    const during = existsSync('/sys/class/net/' + opened);
    await w.terminate();
    console.log(JSON.stringify({ opened, during, after: existsSync('/sys/class/net/' + opened) }));`;
  const r = await run(process.execPath, ['--input-type=module', '-e', script]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { opened: name, during: true, after: false });
});
