// Userspace NAT with the kernel's own TCP/UDP/ICMP stack as the client: a TUN device whose
// packets go through UserspaceNat (test/helpers/nat-tun-bridge.ts, running in an "exit"
// namespace) is moved into a client namespace whose default route is that TUN. curl, ping and a
// UDP client there reach a server on the lab internet; the exit namespace has no nftables rules
// and ip_forward off: everything crosses as userspace sockets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, type Host, type Lab, type LabProcess } from '../../scripts/natlab/index.js';
import { NamespaceHost } from '../../scripts/natlab/host.js';
import { runId } from '../../scripts/tunnels/keys.js';
import type { NatStatus } from '../../agent/nat/userspace-nat.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const BRIDGE = join(here, '..', 'helpers', 'nat-tun-bridge.js');
const SERVER = join(here, '..', 'helpers', 'nat-lab-server.js');
const CLIENT_IP = '100.64.0.2';

describe('userspace NAT with a kernel client over TUN', { timeout: 300_000 }, () => {
  const id = runId();
  const tun = `nt${id}`;
  const files: string[] = [];
  let lab: Lab;
  let exit: Host;
  let server: Host;
  let client: Host;
  let bridge: LabProcess;
  let statusSeq = 0;

  before(async () => {
    lab = await createLab({ name: `nat${id}` });
    exit = await lab.addPublicHost('exit');
    server = await lab.addPublicHost('server');
    const ns = lab.reserveNamespace('client');
    await lab.newNamespace('client', false);
    client = new NamespaceHost('client', 'public', ns, [CLIENT_IP], lab);
    // Unprivileged ICMP echo sockets for the NAT's group (otherwise it falls back to raw).
    await exit.run(['sysctl', '-qw', 'net.ipv4.ping_group_range=0 2147483647']);
    bridge = exit.spawn([process.execPath, BRIDGE, tun, '1420'], { stdin: 'pipe' });
    await bridge.waitForOutput(/ready/);
    await exit.run(['ip', 'link', 'set', tun, 'netns', client.ns]);
    await client.run(['ip', 'link', 'set', 'lo', 'up']);
    await client.run(['ip', 'addr', 'add', `${CLIENT_IP}/32`, 'dev', tun]);
    await client.run(['ip', 'link', 'set', tun, 'up']);
    await client.run(['ip', 'route', 'add', 'default', 'dev', tun]);
    const srv = server.spawn([process.execPath, SERVER]);
    await srv.waitForOutput(/server ready/);
  });

  after(async () => {
    bridge?.stdin?.write('exit\n');
    await lab?.destroy();
    for (const f of files) await rm(f, { force: true });
  });

  async function natStatus(): Promise<NatStatus> {
    const n = ++statusSeq;
    bridge.stdin!.write(`status ${n}\n`);
    const m = await bridge.waitForOutput(new RegExp(`status ${n} (\\{.*\\})`));
    return JSON.parse(m[1]!) as NatStatus;
  }

  function tmp(name: string): string {
    const f = join(tmpdir(), `nat-${id}-${name}`);
    files.push(f);
    return f;
  }

  async function curlDownload(size: number): Promise<void> {
    const body = tmp(`down-${size}`);
    const headers = tmp(`hdr-${size}`);
    const r = await client.exec(['curl', '-sS', '--max-time', '120', '-D', headers, '-o', body, `http://${server.ip}:8080/blob?size=${size}`], { timeoutMs: 130_000 });
    assert.equal(r.code, 0, r.stderr);
    const want = /x-sha256: ([0-9a-f]{64})/i.exec(await readFile(headers, 'utf8'))![1];
    const got = createHash('sha256').update(await readFile(body)).digest('hex');
    assert.equal(got, want, 'downloaded bytes match the server sha256');
  }

  async function curlUpload(size: number, path: string): Promise<void> {
    const data = randomBytes(size);
    const file = tmp(`up-${size}`);
    await writeFile(file, data);
    const r = await client.exec(['curl', '-sS', '--max-time', '120', '--data-binary', `@${file}`, `http://${server.ip}:8080/${path}`], { timeoutMs: 130_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), `${createHash('sha256').update(data).digest('hex')} ${size}`);
  }

  test('the exit namespace forwards nothing in the kernel', async () => {
    assert.equal((await exit.run(['sysctl', '-n', 'net.ipv4.ip_forward'])).trim(), '0');
    assert.equal((await exit.run(['nft', 'list', 'ruleset'])).trim(), '');
  });

  test('curl downloads and uploads 20 MB through the NAT intact', async () => {
    await curlDownload(20_000_000);
    await curlUpload(20_000_000, 'upload');
    const st = await natStatus();
    assert.ok(st.tcp.bytesToPeer >= 20_000_000 && st.tcp.bytesToHost >= 20_000_000);
    assert.equal(st.drops['bad-tcp-checksum'], 0);
  });

  test('a slow server reader holds the kernel sender back; the upload stays intact', async () => {
    await curlUpload(6_000_000, 'slow-upload');
  });

  test('with 2% packet loss each way the kernel and the NAT recover every byte', async () => {
    bridge.stdin!.write('loss 0.02\n');
    try {
      const before = (await natStatus()).tcp.retransmits;
      await curlDownload(8_000_000);
      await curlUpload(4_000_000, 'upload');
      assert.ok((await natStatus()).tcp.retransmits > before, 'the NAT retransmitted');
    } finally {
      bridge.stdin!.write('loss 0\n');
    }
  });

  /** The kernel client's connect() outcome: the errno name, or "connected". */
  async function connectResult(host: string, port: number): Promise<{ code: string; ms: number }> {
    const script = `
      const t0 = Date.now();
      const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
      s.on('connect', () => { console.log('connected', Date.now() - t0); process.exit(0); });
      s.on('error', (e) => { console.log(e.code, Date.now() - t0); process.exit(0); });`;
    const r = await client.run([process.execPath, '-e', script, host, String(port)], { timeoutMs: 60_000 });
    const [code, ms] = r.trim().split(' ');
    return { code: code!, ms: Number(ms) };
  }

  test('a closed port is refused at once (RST); an absent host is unreachable (ICMP)', async () => {
    const refused = await connectResult(server.ip, 9);
    assert.equal(refused.code, 'ECONNREFUSED');
    assert.ok(refused.ms < 2000, `refused after ${refused.ms} ms`);
    // Nobody answers ARP for .250: the NAT's host connect fails with EHOSTUNREACH after ~3 s.
    const absent = await connectResult('203.0.113.250', 8080);
    assert.equal(absent.code, 'EHOSTUNREACH');
    const st = await natStatus();
    assert.ok(st.tcp.refused >= 1 && st.tcp.unreachable >= 1 && st.unreachableSent >= 1);
  });

  test('ping is answered through an unprivileged ICMP socket', async () => {
    const r = await client.exec(['ping', '-c', '3', '-i', '0.2', '-W', '2', server.ip]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /3 received/);
    const st = await natStatus();
    assert.equal(st.icmp.socketV4, 'dgram');
    assert.ok(st.icmp.echoReplies >= 3);
  });

  test('UDP request/response; endpoint-independent filtering lets another server port answer', async () => {
    const script = `
      const s = require('node:dgram').createSocket('udp4');
      const got = [];
      s.on('message', (m) => { got.push(m.toString()); if (got.length === 2) { console.log(JSON.stringify(got.sort())); process.exit(0); } });
      s.send('hello', 7000, process.argv[1]);
      setTimeout(() => { console.log(JSON.stringify(got)); process.exit(1); }, 5000);`;
    const r = await client.exec([process.execPath, '-e', script, server.ip]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), ['hello', 'other:hello']);
    const st = await natStatus();
    assert.equal(st.udpFiltering, 'endpoint-independent');
    assert.ok(st.udp.mappings >= 1);
  });
});
