// Userspace NAT, TCP: a small independent TCP client (test/helpers/nat-tcp-client.ts) talks
// through UserspaceNat.handle() to real TCP servers on 127.0.0.1; what the NAT emits is parsed
// and checksum-verified by the test's own packet code. Covers the handshake (MSS, window scale),
// multi-MB transfers both ways with sha256, loss in both directions, backpressure on either
// side, FIN/half-close, RST both ways, refused ports, out-of-window segments.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserspaceNat, type UserspaceNatOptions } from '../../agent/nat/userspace-nat.js';
import { ACK, RST, SYN } from '../helpers/nat-packets.js';
import { MiniTcpClient, NatLink } from '../helpers/nat-tcp-client.js';

const CLIENT = '100.64.0.2';
const cleanups: Array<() => void> = [];
after(() => {
  for (const c of cleanups.reverse()) c();
});

let nextPort = 40000 + Math.floor(Math.random() * 10000);

function setup(opts: Partial<UserspaceNatOptions> = {}) {
  const link = new NatLink();
  const nat = new UserspaceNat({ emit: link.emit, allowLocalDestinations: true, ...opts });
  cleanups.push(() => nat.close());
  return { link, nat };
}

async function server(onConn: (s: net.Socket) => void): Promise<net.Server> {
  const srv = net.createServer({ allowHalfOpen: true }, onConn);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  cleanups.push(() => srv.close());
  return srv;
}

function portOf(srv: net.Server): number {
  return (srv.address() as net.AddressInfo).port;
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function client(nat: UserspaceNat, link: NatLink, dport: number, extra: Partial<ConstructorParameters<typeof MiniTcpClient>[2]> = {}) {
  const c = new MiniTcpClient(nat, link, { src: CLIENT, sport: nextPort++, dst: '127.0.0.1', dport, ...extra });
  cleanups.push(() => c.close());
  return c;
}

/** Collects everything the host side receives until it ends; answers with `reply` then ends. */
function exchange(reply: Buffer) {
  const got: Buffer[] = [];
  let done!: (b: Buffer) => void;
  const upload = new Promise<Buffer>((r) => (done = r));
  const onConn = (s: net.Socket) => {
    s.on('data', (d) => got.push(d));
    s.on('end', () => done(Buffer.concat(got)));
    s.write(reply, () => s.end());
  };
  return { upload, onConn };
}

test('handshake answers only after the host accepted, with MSS from the MTU and window scaling', async () => {
  const { nat, link } = setup({ limits: { mtu: 1400 } });
  let accepted = false;
  const srv = await server((s) => {
    accepted = true;
    s.end();
  });
  const c = client(nat, link, portOf(srv), { mss: 1460 });
  await c.connect();
  assert.equal(accepted, true);
  const sa = c.synAck!;
  assert.equal(sa.checksumsOk, true);
  assert.equal(sa.src, '127.0.0.1');
  assert.equal(sa.dst, CLIENT);
  assert.equal(sa.tcp!.mss, 1400 - 40, 'MSS clamped to the tunnel MTU');
  assert.ok(sa.tcp!.wscale >= 0, 'window scale offered back');
  await c.ended();
  assert.equal(link.badChecksums, 0);
});

test('several MB both ways at once arrive intact (sha256), then both sides close', async () => {
  const { nat, link } = setup();
  const down = randomBytes(6 << 20);
  const up = randomBytes(5 << 20);
  const ex = exchange(down);
  const srv = await server(ex.onConn);
  const c = client(nat, link, portOf(srv));
  await c.connect();
  c.write(up);
  c.end();
  const [received, uploaded] = await Promise.all([c.ended(), ex.upload]);
  assert.equal(sha(uploaded), sha(up), 'client → host');
  assert.equal(sha(received), sha(down), 'host → client');
  await waitFor(() => c.finAcked, 'our FIN acknowledged');
  const st = nat.status();
  assert.equal(st.tcp.bytesToHost, up.length);
  assert.equal(st.tcp.bytesToPeer, down.length);
  assert.equal(link.badChecksums, 0);
  const biggest = Math.max(...link.emitted.map((p) => p.tcp?.data.length ?? 0));
  assert.equal(biggest, 1360, 'segments fill the client MSS');
});

test('TCP over IPv6: MSS leaves room for the 40-byte header, data intact both ways', async () => {
  const { nat, link } = setup({ limits: { mtu: 1280 } });
  const down = randomBytes(1 << 20);
  const up = randomBytes(1 << 20);
  const ex = exchange(down);
  const srv = net.createServer({ allowHalfOpen: true }, ex.onConn);
  srv.listen(0, '::1');
  await once(srv, 'listening');
  cleanups.push(() => srv.close());
  const c = new MiniTcpClient(nat, link, { src: 'fd7a:115c:a1e0::2', sport: nextPort++, dst: '::1', dport: portOf(srv), mss: 1440 });
  cleanups.push(() => c.close());
  await c.connect();
  assert.equal(c.synAck!.tcp!.mss, 1280 - 60);
  assert.equal(c.synAck!.version, 6);
  c.write(up);
  c.end();
  const [received, uploaded] = await Promise.all([c.ended(), ex.upload]);
  assert.equal(sha(uploaded), sha(up));
  assert.equal(sha(received), sha(down));
  assert.ok(link.emitted.every((p) => p.checksumsOk && p.l4.length + 40 <= 1280));
});

test('lost segments both ways are retransmitted and the data is intact', async () => {
  const { nat, link } = setup();
  const down = randomBytes(3 << 20);
  const up = randomBytes(2 << 20);
  const ex = exchange(down);
  const srv = await server(ex.onConn);
  // Deterministic loss: every 37th data packet from the NAT, every 41st from the client.
  link.dropFromNat = (p, i) => (p.tcp?.data.length ?? 0) > 0 && i % 37 === 5;
  let n = 0;
  const c = client(nat, link, portOf(srv), { dropToNat: (_p, _f, len) => len > 0 && ++n % 41 === 7 });
  await c.connect();
  c.write(up);
  c.end();
  const [received, uploaded] = await Promise.all([c.ended(), ex.upload]);
  assert.equal(sha(uploaded), sha(up));
  assert.equal(sha(received), sha(down));
  const st = nat.status();
  assert.ok(st.tcp.retransmits > 0, `NAT retransmitted (${st.tcp.retransmits})`);
  assert.ok(st.tcp.fastRetransmits > 0, 'duplicate ACKs triggered fast retransmit');
});

test('a slow host reader closes the receive window; nothing is lost when it catches up', async () => {
  const { nat, link } = setup({ limits: { tcpReceiveWindow: 256 << 10 } });
  const up = randomBytes(8 << 20);
  let hostSocket!: net.Socket;
  const got: Buffer[] = [];
  const ended = new Promise<void>((resolve) => {
    void server((s) => {
      hostSocket = s;
      s.pause();
      s.on('data', (d) => got.push(d));
      s.on('end', () => {
        s.end();
        resolve();
      });
    }).then((srv) => {
      const c = client(nat, link, portOf(srv));
      void c.connect().then(() => {
        c.write(up);
        c.end();
      });
      cl = c;
    });
  });
  let cl!: MiniTcpClient;
  await waitFor(() => cl?.advertisedWindows.includes(0), 'the NAT advertised a zero window');
  const stuck = cl.sndUna;
  await sleep(300);
  assert.equal(cl.sndUna, stuck, 'no progress while the host does not read');
  const accepted = (cl.sndUna - cl.iss) >>> 0;
  assert.ok(accepted < 16 << 20 && accepted < up.length, `bounded buffering: ${accepted} bytes accepted`);
  hostSocket.resume();
  await ended;
  assert.equal(sha(Buffer.concat(got)), sha(up));
});

/** More than the kernel can hold between the host's socket and the NAT's (their largest send and receive buffers). */
function moreThanKernelBuffers(): number {
  const max = (f: string): number => Number(readFileSync(`/proc/sys/net/ipv4/${f}`, 'utf8').trim().split(/\s+/)[2]);
  return Math.max(4 << 20, max('tcp_wmem') + max('tcp_rmem') + (1 << 20));
}

test('a client with a closed window stalls the host (paused socket) and resumes', async () => {
  const { nat, link } = setup({ limits: { tcpSendBuffer: 128 << 10 } });
  const down = randomBytes(moreThanKernelBuffers());
  let writes = 0;
  let drained = false;
  const srv = await server((s) => {
    const push = () => {
      while (writes * 65536 < down.length) {
        const ok = s.write(down.subarray(writes * 65536, ++writes * 65536));
        if (!ok) return s.once('drain', push);
      }
      drained = true;
      s.end();
      return undefined;
    };
    push();
  });
  const c = client(nat, link, portOf(srv), { window: 64 << 10 });
  await c.connect();
  c.setPaused(true);
  await sleep(500);
  assert.equal(drained, false, 'the host could not write everything: the NAT stopped reading it');
  const before = c.receivedBytes;
  c.setPaused(false);
  const received = await c.ended();
  assert.ok(before < down.length);
  assert.equal(sha(received), sha(down));
});

test('half-close: the client FIN ends the host read side, the host can still answer', async () => {
  const { nat, link } = setup({ limits: { tcpTimeWaitMs: 300 } });
  let hostSawEnd = false;
  const srv = await server((s) => {
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('end', () => {
      hostSawEnd = true;
      setTimeout(() => s.end(Buffer.concat([Buffer.from('reply to '), ...got])), 100);
    });
  });
  const c = client(nat, link, portOf(srv));
  await c.connect();
  c.write(Buffer.from('question'));
  c.end();
  await waitFor(() => hostSawEnd, 'host read side ended');
  assert.equal(c.finReceived, false, 'the host side is still open');
  const reply = await c.ended();
  assert.equal(reply.toString(), 'reply to question');
  await waitFor(() => nat.status().tcp.timeWait === 1, 'flow in time-wait');
  await waitFor(() => nat.status().tcp.flows === 0, 'time-wait expired');
  assert.equal(nat.status().tcp.closed, 1);
});

test('host closes first: FIN to the client, which may still send data', async () => {
  const { nat, link } = setup();
  const ex = exchange(Buffer.from('banner'));
  const srv = await server(ex.onConn);
  const c = client(nat, link, portOf(srv));
  await c.connect();
  const banner = await c.ended();
  assert.equal(banner.toString(), 'banner');
  c.write(Buffer.from('late data'));
  c.end();
  assert.equal((await ex.upload).toString(), 'late data');
});

test('a refused port is answered with RST', async () => {
  const { nat, link } = setup();
  const srv = await server(() => {});
  const port = portOf(srv);
  srv.close();
  await once(srv, 'close');
  const c = client(nat, link, port);
  await assert.rejects(c.connect(), /reset/);
  const rst = link.emitted.find((p) => p.tcp && p.tcp.flags & RST)!;
  assert.equal(rst.tcp!.ack, (c.iss + 1) >>> 0, 'the RST acknowledges the SYN');
  assert.equal(nat.status().tcp.refused, 1);
  assert.equal(nat.status().tcp.flows, 0);
});

test('client RST resets the host connection; host reset sends RST to the client', async () => {
  const { nat, link } = setup();
  const hostErrors: string[] = [];
  let hostSocket!: net.Socket;
  const srv = await server((s) => {
    hostSocket = s;
    s.on('error', (e: NodeJS.ErrnoException) => hostErrors.push(e.code ?? ''));
  });
  const a = client(nat, link, portOf(srv));
  await a.connect();
  await waitFor(() => hostSocket !== undefined, 'accepted');
  const first = hostSocket;
  a.reset();
  await waitFor(() => first.destroyed, 'host socket closed by the reset');
  assert.deepEqual(hostErrors, ['ECONNRESET']);

  const b = client(nat, link, portOf(srv));
  await b.connect();
  await waitFor(() => hostSocket !== first, 'second accepted');
  hostSocket.resetAndDestroy();
  await once(b, 'reset');
  assert.equal(nat.status().tcp.resetByPeer, 1);
  assert.equal(nat.status().tcp.resetByHost, 1);
  await waitFor(() => nat.status().tcp.flows === 0, 'both flows gone');
});

test('segments outside the window are dropped, counted and answered with an ACK', async () => {
  const { nat, link } = setup();
  let done!: (b: Buffer) => void;
  const upload = new Promise<Buffer>((r) => (done = r));
  const srv = await server((s) => {
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('end', () => {
      done(Buffer.concat(got));
      s.end();
    });
  });
  const c = client(nat, link, portOf(srv));
  await c.connect();
  const before = link.emitted.length;
  c.raw(ACK, (c.sndNxt + (64 << 20)) >>> 0, c.rcvNxt, Buffer.from('far beyond the window'));
  c.raw(ACK, (c.sndNxt - 100000) >>> 0, c.rcvNxt, Buffer.from('long ago'));
  c.raw(ACK, c.sndNxt, (c.rcvNxt + 1000000) >>> 0); // acknowledges data never sent
  await sleep(50);
  const st = nat.status();
  assert.equal(st.drops['tcp-out-of-window'], 2);
  assert.equal(st.drops['tcp-bad-ack'], 1);
  const acks = link.emitted.slice(before).filter((p) => p.tcp && p.tcp.flags === ACK);
  assert.ok(acks.length >= 1 && acks.every((p) => p.tcp!.ack === c.sndNxt), `ACKs restate where the NAT is: ${acks.map((p) => p.tcp!.ack)} vs ${c.sndNxt}`);
  c.write(Buffer.from('still fine'));
  c.end();
  assert.equal((await upload).toString(), 'still fine');
});

test('segments for unknown flows get RST; a SYN flood is rate limited with bounded state', async () => {
  const { nat, link } = setup({ limits: { synPerSecond: 50, synBurst: 20, tcpConnectingPerPeer: 10 } });
  const c = client(nat, link, 9);
  c.raw(ACK, 1234, 5678, Buffer.from('x'));
  await sleep(20);
  const rst = link.emitted.find((p) => p.tcp && p.tcp.flags & RST)!;
  assert.ok(rst, 'RST for a segment of no flow');
  assert.equal(rst.tcp!.seq, 5678);
  // 500 SYNs to 500 different loopback destinations (all refused): most are dropped.
  for (let i = 0; i < 500; i++) {
    const f = new MiniTcpClient(nat, link, { src: CLIENT, sport: 20000 + i, dst: `127.1.${i >> 8}.${i & 255}`, dport: 9 });
    f.raw(SYN, i, 0);
  }
  const st = nat.status();
  assert.ok(st.tcp.flows <= 20, `at most the burst is admitted (${st.tcp.flows})`);
  assert.equal(st.drops['syn-rate-limited'] + st.drops['tcp-connecting-full'] + st.tcp.flows, 500);
  await waitFor(() => nat.status().tcp.flows === 0, 'refused flows are gone');
});

async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting: ${what}`);
    await sleep(10);
  }
}

test('a host connect that times out is answered with ICMP host unreachable quoting the SYN', async () => {
  const { nat, link } = setup({ limits: { tcpConnectTimeoutMs: 400 } });
  // A listener that never accepts, its queue filled: further SYNs are dropped by the kernel.
  const py = spawn('python3', ['-c', 'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)'], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => py.kill('SIGKILL'));
  const [line] = (await once(py.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const f = net.connect(port, '127.0.0.1');
    f.on('error', () => {});
    fillers.push(f);
    cleanups.push(() => f.destroy());
  }
  await sleep(200);
  const c = client(nat, link, port);
  const syn = c.connect().catch(() => {});
  await waitFor(() => nat.status().tcp.unreachable === 1, 'connect timed out');
  const icmp = link.emitted.find((p) => p.icmp)!;
  assert.ok(icmp, 'an ICMP error was emitted');
  assert.equal(icmp.checksumsOk, true);
  assert.deepEqual([icmp.src, icmp.dst, icmp.icmp!.type, icmp.icmp!.code], ['127.0.0.1', CLIENT, 3, 1]);
  const quote = icmp.l4.subarray(8);
  assert.equal(quote.readUInt16BE(20), c.sport, 'quoted source port');
  assert.equal(quote.readUInt32BE(24), c.iss, 'quoted sequence = the client ISN');
  assert.equal(nat.status().tcp.flows, 0);
  c.close();
  void syn;
});
