// Floods a WireGuard responder with well-formed initiations (valid mac1, unknown static keys), as
// an attacker who knows the responder's public key would: `node initiation-flood.js HOST PORT
// PUBKEY SECONDS RATE`. Prints "sent N cookie-replies M" at the end.
import { createSocket } from 'node:dgram';
import { createInitiation, localIdentity, remoteIdentity } from '../../proto/wireguard/handshake.js';
import { CookieJar } from '../../proto/wireguard/macs.js';
import { INITIATION_MAC1_OFFSET, messageType } from '../../proto/wireguard/messages.js';
import { tai64n } from '../../proto/wireguard/tai64n.js';
import { decodeKey, generatePrivateKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

const [host, portText, pubText, secondsText, rateText] = process.argv.slice(2);
const target = decodeKey(pubText!);
const port = Number(portText);
const seconds = Number(secondsText);
const rate = Number(rateText);

// A few attacker identities, reused: what matters is the volume of valid-mac1 messages.
const senders = Array.from({ length: 8 }, () => {
  const priv = generatePrivateKey();
  const local = localIdentity(priv, publicKeyFromPrivate(priv));
  const remote = remoteIdentity(local, target);
  return { local, remote, jar: new CookieJar(remote) };
});

const sock = createSocket('udp4');
let sent = 0;
let cookies = 0;
sock.on('message', (m) => { if (messageType(m) === 3) cookies++; });
await new Promise<void>((r) => sock.bind(0, r));
const end = Date.now() + seconds * 1000;
const perTick = Math.max(1, Math.round(rate / 100));
await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    if (Date.now() >= end) { clearInterval(timer); resolve(); return; }
    for (let i = 0; i < perTick; i++) {
      const s = senders[sent % senders.length]!;
      const { message } = createInitiation(s.local, s.remote, (Math.random() * 0xffffffff) >>> 0, tai64n(Date.now()));
      s.jar.stamp(message, INITIATION_MAC1_OFFSET, Date.now());
      sock.send(message, port, host);
      sent++;
    }
  }, 10);
});
await new Promise((r) => setTimeout(r, 300));
process.stdout.write(`sent ${sent} cookie-replies ${cookies}\n`);
sock.close();
