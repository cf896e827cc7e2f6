// Lab helper process: the "internet" server behind the NAT.
//   HTTP :8080  GET /blob?size=N  → N random bytes, their sha256 in the x-sha256 header
//               POST /upload      → the sha256 of the body
//               POST /slow-upload → the same, reading the body slowly (backpressure)
//   UDP  :7000  echoes each datagram; also answers from :7001 ("reply from another port")
import { createHash, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/blob') {
    const body = randomBytes(Number(url.searchParams.get('size') ?? 1024));
    res.writeHead(200, { 'content-length': body.length, 'x-sha256': createHash('sha256').update(body).digest('hex') });
    res.end(body);
    return;
  }
  if (req.method === 'POST' && (url.pathname === '/upload' || url.pathname === '/slow-upload')) {
    const hash = createHash('sha256');
    let bytes = 0;
    if (url.pathname === '/slow-upload') {
      // Read 64 KiB, then stop for 20 ms: the sender must be held back, not buffered without end.
      req.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
        req.pause();
        setTimeout(() => req.resume(), 20);
      });
    } else {
      req.on('data', (d: Buffer) => {
        bytes += d.length;
        hash.update(d);
      });
    }
    req.on('end', () => res.end(`${hash.digest('hex')} ${bytes}\n`));
    return;
  }
  res.writeHead(404).end();
});
server.listen(8080);

const echo = dgram.createSocket('udp4');
const other = dgram.createSocket('udp4');
echo.on('message', (msg, rinfo) => {
  echo.send(msg, rinfo.port, rinfo.address);
  other.send(Buffer.concat([Buffer.from('other:'), msg]), rinfo.port, rinfo.address);
});
echo.bind(7000);
other.bind(7001);
process.on('SIGTERM', () => process.exit(0));
server.on('listening', () => process.stdout.write('server ready\n'));
