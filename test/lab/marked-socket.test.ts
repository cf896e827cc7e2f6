// The agent's own sockets carry the socket mark from their first packet: the batch UDP socket,
// TCP connections made by connectMarked (by name and by address) and WebSocket connections made
// through markedWsOptions, HTTP requests made by markedHttpRequest. The kernel's view (ss, getsockopt SO_MARK) is what is checked. Needs
// root (SO_MARK wants CAP_NET_ADMIN). Traffic only on 127.0.0.1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { promisify } from 'node:util';
import WebSocket, { WebSocketServer } from 'ws';
import { BatchUdpSocket } from '../../agent/tun/udp-socket.js';
import { loadNative } from '../../agent/tun/native.js';
import { connectMarked, markedHttpRequest, markedWsOptions, openMarkedSocket } from '../../agent/routing/marked-socket.js';
import { DEFAULT_SOCKET_MARK } from '../../agent/routing/socket-mark.js';

const MARK = DEFAULT_SOCKET_MARK.value;
const ss = async (args: string[]): Promise<string> => (await promisify(execFile)('ss', ['-neH', ...args])).stdout;
const marked = (text: string): boolean => text.includes(`fwmark:0x${MARK.toString(16)}`);

let server: Server;
let port: number;
let wss: WebSocketServer;
let wsPort: number;

before(async () => {
  server = createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', r));
  wsPort = (wss.address() as { port: number }).port;
  wss.on('connection', (ws) => ws.on('message', (m) => ws.send(m)));
});

after(async () => {
  wss.close();
  server.close();
});

const echo = (s: Socket): Promise<string> => new Promise((resolve, reject) => {
  s.once('data', (d) => resolve(d.toString()));
  s.once('error', reject);
  s.write('ping');
});

test('connectMarked: by address and by name, the connection carries the mark; a refusal is an error', async () => {
  for (const host of ['127.0.0.1', 'localhost']) {
    const s = await connectMarked(host, port, MARK);
    try {
      assert.equal(await echo(s), 'ping');
      const fd = (s as unknown as { _handle: { fd: number } })._handle.fd;
      assert.equal(loadNative().socketMark(fd), MARK, host);
      assert.ok(marked(await ss(['-t', 'dst', `127.0.0.1:${port}`])), 'ss shows the mark');
    } finally {
      s.destroy();
    }
  }
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  await assert.rejects(connectMarked('127.0.0.1', deadPort, MARK), { code: 'ECONNREFUSED' });
  assert.throws(() => openMarkedSocket('localhost', port, MARK), { name: 'MarkedConnectError' });
});

test('markedWsOptions: a WebSocket to a host name is marked and works', async () => {
  const url = `ws://localhost:${wsPort}/`;
  const ws = new WebSocket(url, markedWsOptions(url, MARK));
  try {
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const reply = new Promise<string>((r) => ws.once('message', (m: Buffer) => r(m.toString())));
    ws.send('hello');
    assert.equal(await reply, 'hello');
    assert.ok(marked(await ss(['-t', 'dst', `127.0.0.1:${wsPort}`])), 'ss shows the mark');
  } finally {
    ws.terminate();
  }
  // A name that does not resolve fails the WebSocket, not the process.
  const bad = new WebSocket('ws://no-such-host.invalid:1/', markedWsOptions('ws://no-such-host.invalid:1/', MARK));
  await new Promise<void>((resolve) => bad.once('error', () => resolve()));
});

test('markedHttpRequest: a POST to a host name over a marked connection; refusals are errors', async () => {
  const marks: string[] = [];
  const http = createHttpServer((req, res) => {
    void ss(['-t', 'src', `127.0.0.1:${req.socket.remotePort}`]).then((out) => {
      marks.push(out);
      let body = '';
      req.on('data', (c) => { body += c; }).on('end', () => res.writeHead(201, 'Made').end(`${req.method} ${body}`));
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const hp = (http.address() as { port: number }).port;
  try {
    const r = await markedHttpRequest(`http://localhost:${hp}/x`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'hi' }, MARK);
    assert.deepEqual(r, { ok: true, status: 201, statusText: 'Made', text: 'POST hi' });
    assert.ok(marked(marks[0] ?? ''), `the client end of the connection is marked: ${marks[0]}`);
  } finally {
    http.close();
  }
  await assert.rejects(markedHttpRequest(`http://127.0.0.1:${hp}/`, { method: 'GET', headers: {} }, MARK), { code: 'ECONNREFUSED' });
});

test('the batch UDP socket carries the mark; unmarked by default', async () => {
  const a = BatchUdpSocket.open({ address: '127.0.0.1', family: 4, mark: MARK });
  const b = BatchUdpSocket.open({ address: '127.0.0.1', family: 4 });
  try {
    const ma = await ss(['-ua', 'src', `127.0.0.1:${a.port}`]);
    const mb = await ss(['-ua', 'src', `127.0.0.1:${b.port}`]);
    assert.ok(marked(ma), ma);
    assert.ok(mb.includes(`127.0.0.1:${b.port}`) && !marked(mb), mb);
  } finally {
    a.close();
    b.close();
  }
});
