// A scripted coordinator for unit tests of the agent's control client: a real control-channel
// responder (Noise IK under a key the test holds) in front of an inner HTTP server whose requests
// and WebSocket upgrades the test answers itself. Each inner request knows the caller's static key.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { NoiseChannel } from '../../proto/control/noise-channel.js';
import { responderMessage2, responderReadMessage1 } from '../../proto/control/noise-ik.js';
import { CONTROL_UPGRADE, HANDSHAKE_HEADER } from '../../proto/control/noise-upgrade.js';
import { frameBytes } from '../../proto/control/noise-transport.js';
import { encodeKey, publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

export interface ScriptedControlServer {
  url: string;
  serverKey: string;
  /** Static keys (base64) of every channel opened so far. */
  callers: string[];
  close(): Promise<void>;
}

/** The caller's static key (base64) of an inner request's socket. */
export function callerKeyOf(req: IncomingMessage): string {
  return encodeKey((req.socket as unknown as NoiseChannel).peerStatic);
}

export async function startScriptedControlServer(
  serverPrivate: Uint8Array,
  handlers: { request?: (req: IncomingMessage, res: ServerResponse) => void; upgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void },
): Promise<ScriptedControlServer> {
  const serverPublic = publicKeyFromPrivate(serverPrivate);
  const inner: Server = createServer((req, res) => handlers.request?.(req, res));
  if (handlers.upgrade) inner.on('upgrade', handlers.upgrade);
  const callers: string[] = [];
  const outer = createServer((_req, res) => { res.writeHead(404); res.end(); });
  outer.on('upgrade', (req, socket, head) => {
    // node:http drops its own error listener at an upgrade: a client that resets the connection
    // (an agent stopping mid-handshake) must not become an uncaught ECONNRESET here.
    socket.on('error', () => socket.destroy());
    try {
      const msg1 = Buffer.from(String(req.headers[HANDSHAKE_HEADER] ?? ''), 'base64');
      const pending = responderReadMessage1(msg1, [{ privateKey: serverPrivate, publicKey: serverPublic }]);
      const { msg2, keys } = responderMessage2(pending, new TextEncoder().encode('{"v":1}'));
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${CONTROL_UPGRADE}\r\nConnection: Upgrade\r\n\r\n`);
      socket.write(frameBytes(msg2));
      callers.push(encodeKey(pending.initiatorStatic));
      inner.emit('connection', new NoiseChannel(socket, { keys, peerStatic: pending.initiatorStatic, head }));
    } catch {
      const body = '{"error":"handshake failed"}';
      socket.end(`HTTP/1.1 403 Forbidden\r\npinhole-control: key-mismatch\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    }
  });
  outer.listen(0, '127.0.0.1');
  await once(outer, 'listening');
  return {
    url: `http://127.0.0.1:${(outer.address() as AddressInfo).port}`,
    serverKey: encodeKey(serverPublic),
    callers,
    close: async () => {
      outer.closeAllConnections();
      await new Promise<void>((r) => outer.close(() => r()));
    },
  };
}
