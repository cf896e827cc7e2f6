// Real sockets for lab tests of routing and access policy, run inside a lab namespace:
//   serve tcp|udp IP PORT        echo server; prints "listening", then "peer IP:PORT" per
//                                connection / datagram (what source address it saw)
//   serve-http IP PORT BYTES     serves BYTES deterministic bytes at /; prints "listening SHA256"
//                                and "peer IP:PORT" per request
//   tcp IP PORT [TIMEOUT_MS]     connects, sends a line, expects it back: "ok" (exit 0) or
//   udp IP PORT [TIMEOUT_MS]     "fail REASON" (exit 1); udp: one datagram and its echo
//   http-get URL [TIMEOUT_MS]    downloads; prints "got BYTES SHA256"
import { createServer, connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { createCipheriv, createHash } from 'node:crypto';

const out = (line: string): void => { process.stdout.write(`${line}\n`); };
const peerText = (address: string | undefined, port: number | undefined): string => `peer ${address}:${port}`;

function body(bytes: number): Buffer {
  const stream = createCipheriv('aes-128-ctr', Buffer.alloc(16, 9), Buffer.alloc(16));
  return Buffer.concat([stream.update(Buffer.alloc(bytes)), stream.final()]);
}

function serveTcp(ip: string, port: number): void {
  const server = createServer((sock) => {
    out(peerText(sock.remoteAddress, sock.remotePort));
    sock.on('data', (c) => sock.write(c));
    sock.on('error', () => undefined);
  });
  server.listen(port, ip, () => out('listening'));
}

function serveUdp(ip: string, port: number): void {
  const sock = createSocket(ip.includes(':') ? 'udp6' : 'udp4');
  sock.on('message', (msg, rinfo) => {
    out(peerText(rinfo.address, rinfo.port));
    sock.send(msg, rinfo.port, rinfo.address);
  });
  sock.bind(port, ip, () => out('listening'));
}

function serveHttp(ip: string, port: number, bytes: number): void {
  const data = body(bytes);
  const server = createHttpServer((req, res) => {
    out(peerText(req.socket.remoteAddress, req.socket.remotePort));
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
    res.end(data);
  });
  server.listen(port, ip, () => out(`listening ${createHash('sha256').update(data).digest('hex')}`));
}

function tcpProbe(ip: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host: ip, port, timeout: timeoutMs });
    const line = `probe ${process.pid}\n`;
    let got = '';
    const done = (r: string): void => { sock.destroy(); resolve(r); };
    sock.on('connect', () => sock.write(line));
    sock.on('data', (c) => { got += c.toString(); if (got === line) done('ok'); });
    sock.on('timeout', () => done('fail timeout'));
    sock.on('error', (err: NodeJS.ErrnoException) => done(`fail ${err.code ?? err.message}`));
  });
}

function udpProbe(ip: string, port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = createSocket(ip.includes(':') ? 'udp6' : 'udp4');
    const msg = Buffer.from(`probe ${process.pid}`);
    const timer = setTimeout(() => done('fail timeout'), timeoutMs);
    const done = (r: string): void => { clearTimeout(timer); sock.close(); resolve(r); };
    sock.on('message', (m) => { if (m.equals(msg)) done('ok'); });
    sock.on('error', (err: NodeJS.ErrnoException) => done(`fail ${err.code ?? err.message}`));
    sock.send(msg, port, ip);
  });
}

async function httpGet(url: string, timeoutMs: number): Promise<string> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const data = Buffer.from(await res.arrayBuffer());
    return res.ok ? `got ${data.length} ${createHash('sha256').update(data).digest('hex')}` : `fail HTTP ${res.status}`;
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return `fail ${e.cause?.code ?? e.name}`;
  }
}

const [mode, a, b, c] = process.argv.slice(2);
const timeout = (t: string | undefined): number => (t ? Number(t) : 3000);
if (mode === 'serve' && a === 'tcp') serveTcp(b!, Number(c));
else if (mode === 'serve' && a === 'udp') serveUdp(b!, Number(c));
else if (mode === 'serve-http') serveHttp(a!, Number(b), Number(c));
else if (mode === 'tcp' || mode === 'udp' || mode === 'http-get') {
  const r = mode === 'tcp' ? await tcpProbe(a!, Number(b), timeout(c)) : mode === 'udp' ? await udpProbe(a!, Number(b), timeout(c)) : await httpGet(a!, timeout(b));
  out(r);
  process.exitCode = r.startsWith('ok') || r.startsWith('got') ? 0 : 1;
} else {
  process.stderr.write('usage: socket-probe serve tcp|udp IP PORT | serve-http IP PORT BYTES | tcp|udp IP PORT [MS] | http-get URL [MS]\n');
  process.exitCode = 2;
}
