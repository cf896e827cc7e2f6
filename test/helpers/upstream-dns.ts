// A tiny upstream resolver for the MagicDNS lab (run as a process in its own namespace):
// `node upstream-dns.js IP PORT ANSWER_IP`. Every A query gets ANSWER_IP, names starting with
// "nx." get NXDOMAIN, names starting with "big." get a ~3000-byte TXT answer (UDP sends it
// whole; the agent must truncate it for the client and serve it whole over TCP).
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, Packet } from 'dns-packet';

const [ip, portText, answerIp] = process.argv.slice(2);
const port = Number(portText);

function answer(bytes: Buffer): Buffer | null {
  let q;
  try {
    q = dnsPacket.decode(bytes);
  } catch {
    return null;
  }
  const question = q.questions?.[0];
  if (!question) return null;
  const name = question.name.toLowerCase();
  const answers: Answer[] = [];
  let rcode = 0;
  if (name.startsWith('nx.')) rcode = 3;
  else if (name.startsWith('big.')) answers.push({ type: 'TXT', name: question.name, ttl: 30, data: Array.from({ length: 12 }, (_, i) => `${i}`.padEnd(250, 'x')) });
  else if (question.type === 'A') answers.push({ type: 'A', name: question.name, ttl: 30, data: answerIp! });
  const reply: Packet = { type: 'response', id: q.id ?? 0, flags: dnsPacket.RECURSION_AVAILABLE | rcode, questions: q.questions ?? [], answers };
  return dnsPacket.encode(reply);
}

const udp = createSocket('udp4');
udp.on('message', (msg, rinfo) => {
  const r = answer(msg);
  if (r) udp.send(r, rinfo.port, rinfo.address);
});
udp.bind(port, ip, () => {
  const tcp = createServer((sock) => {
    let buf = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const r = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (!r) continue;
        const head = Buffer.alloc(2);
        head.writeUInt16BE(r.length);
        sock.write(Buffer.concat([head, r]));
      }
    });
  });
  tcp.listen(port, ip, () => process.stdout.write(`upstream dns on ${ip}:${port}\n`));
});
