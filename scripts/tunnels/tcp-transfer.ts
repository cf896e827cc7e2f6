// A TCP transfer whose both ends hash what they see: `node tcp-transfer.js serve IP PORT` prints
// "listening", then "received BYTES SHA256" when the sender closes; `node tcp-transfer.js send IP
// PORT BYTES` streams deterministic pseudo-random bytes and prints "sent BYTES SHA256".
import { createServer, connect } from 'node:net';
import { createHash, createCipheriv } from 'node:crypto';

async function serve(ip: string, port: number): Promise<void> {
  const server = createServer((sock) => {
    const h = createHash('sha256');
    let n = 0;
    sock.on('data', (c: Buffer) => { h.update(c); n += c.length; });
    sock.on('end', () => {
      process.stdout.write(`received ${n} ${h.digest('hex')}\n`);
      sock.end();
      server.close();
    });
  });
  server.listen(port, ip, () => process.stdout.write('listening\n'));
}

async function send(ip: string, port: number, total: number): Promise<void> {
  // AES-CTR over zeros: fast, deterministic bytes that compress to nothing useful.
  const stream = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16));
  const zero = Buffer.alloc(256 * 1024);
  const h = createHash('sha256');
  const sock = connect(port, ip);
  await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  let sent = 0;
  while (sent < total) {
    const chunk = stream.update(zero.subarray(0, Math.min(zero.length, total - sent)));
    h.update(chunk);
    sent += chunk.length;
    if (!sock.write(chunk)) await new Promise((r) => sock.once('drain', r));
  }
  sock.end();
  await new Promise((r) => sock.once('close', r));
  process.stdout.write(`sent ${sent} ${h.digest('hex')}\n`);
}

const [mode, ip, port, bytes] = process.argv.slice(2);
if (mode === 'serve') await serve(ip!, Number(port));
else if (mode === 'send') await send(ip!, Number(port), Number(bytes));
else { process.stderr.write('usage: tcp-transfer serve IP PORT | send IP PORT BYTES\n'); process.exit(2); }
