// Control channels as streams of one HTTP/2 connection (coordinator/control-h2.ts): how a client
// holding many nodes' channels (bench-coordinator's simulated nodes) opens them without a TCP
// connection each. The channel in a stream is the same Noise channel as on HTTP/1.1.
import { connect as connectH2, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect } from 'node:net';
import type { NoiseChannel } from '../../proto/control/noise-channel.js';
import { initiatorMessage1 } from '../../proto/control/noise-ik.js';
import {
  CONTROL_PATH, HANDSHAKE_HEADER, MAX_REFUSAL_BODY, channelFromMessage2, handshakeFailure, refusal, type ChannelWelcome,
} from '../../proto/control/noise-upgrade.js';
import { publicKeyFromPrivate } from '../../proto/wireguard/keys.js';

/** One HTTP/2 connection (prior knowledge) to a coordinator's plain-HTTP port, from `localAddress` if given. */
export function connectControlH2(url: string, localAddress?: string): Promise<ClientHttp2Session> {
  const u = new URL(url);
  if (u.protocol !== 'http:') throw new Error(`HTTP/2 control channels are offered on a plain-HTTP port only, not ${u.protocol}`);
  const port = Number(u.port) || 80;
  return new Promise((resolve, reject) => {
    const session = connectH2(url, { createConnection: () => connect({ host: u.hostname, port, ...(localAddress ? { localAddress } : {}) }) });
    // Resolved once the coordinator's SETTINGS came: remoteSettings.maxConcurrentStreams is its bound.
    session.once('remoteSettings', () => { session.off('error', reject); resolve(session); });
    session.once('error', reject);
  });
}

/** Opens one control channel as a stream of `session`; rejects as openChannel does. */
export function openChannelOnH2(session: ClientHttp2Session, staticPrivate: Uint8Array, serverKey: Uint8Array, timeoutMs = 10_000): Promise<{ channel: NoiseChannel; welcome: ChannelWelcome }> {
  const { msg1, pending } = initiatorMessage1(serverKey, staticPrivate, publicKeyFromPrivate(staticPrivate), new Uint8Array(0));
  const stream = session.request({ ':method': 'POST', ':path': CONTROL_PATH, [HANDSHAKE_HEADER]: Buffer.from(msg1).toString('base64') }, { endStream: false });
  return new Promise((resolve, reject) => {
    let status = 0;
    let headers = new Map<string, string>();
    let buf: Buffer = Buffer.alloc(0);
    let settled = false;
    const finish = (err: Error | null, value?: { channel: NoiseChannel; welcome: ChannelWelcome }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('data', onData);
      if (err) {
        stream.destroy();
        reject(err);
      } else {
        resolve(value!);
      }
    };
    const timer = setTimeout(() => finish(new Error('no answer in time')), timeoutMs);
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (status !== 200) {
        if (buf.length > MAX_REFUSAL_BODY) finish(refusal({ status, headers, rest: buf }, buf.subarray(0, MAX_REFUSAL_BODY)));
        return;
      }
      try {
        const opened = channelFromMessage2(stream, buf, pending, serverKey);
        if (opened) finish(null, opened);
      } catch (err) {
        finish(handshakeFailure(err));
      }
    };
    stream.on('response', (h: IncomingHttpHeaders) => {
      status = Number(h[':status']);
      headers = new Map(Object.entries(h).filter(([k]) => !k.startsWith(':')).map(([k, v]) => [k, String(v)]));
    });
    stream.on('data', onData);
    stream.on('end', () => finish(status === 200 ? new Error('the stream ended during the handshake') : refusal({ status, headers, rest: buf }, buf)));
    stream.on('error', (err: Error) => finish(err));
  });
}
