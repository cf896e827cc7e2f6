// The relay's membership lookups go to the coordinator inside a control channel (Noise IK, proto/
// control/noise-upgrade.ts) opened with the relay's static key to the pinned coordinator key: the
// lookup and its answer are encrypted, the coordinator knows it is this relay, and a relay that is
// not in the coordinator's relay map (or an impostor coordinator) gets nowhere.
import { request } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { isFingerprint, keyFingerprint } from '../proto/control/coordinator-key.js';
import { upgradeToControlChannel } from '../proto/control/noise-upgrade.js';
import { ServerInfo } from '../proto/control/schemas.js';
import { decodeKey, publicKeyFromPrivate } from '../proto/wireguard/keys.js';
import type { MembershipLookup } from './authorizer.js';

function connected(u: URL, signal: AbortSignal): Promise<Socket> {
  const tls = u.protocol === 'https:';
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const port = Number(u.port || (tls ? 443 : 80));
  return new Promise((resolve, reject) => {
    const s = tls ? tlsConnect({ host, port, servername: /^[\d.:]+$/.test(host) ? undefined : host }) : netConnect({ host, port });
    const onAbort = (): void => { s.destroy(); reject(new Error('no answer in time')); };
    signal.addEventListener('abort', onAbort, { once: true });
    s.once(tls ? 'secureConnect' : 'connect', () => { signal.removeEventListener('abort', onAbort); resolve(s); });
    s.once('error', (err) => { signal.removeEventListener('abort', onAbort); reject(err); });
  });
}

/** The coordinator key to pin: a base64 key as given, or the published key with that fingerprint. */
export async function resolveCoordinatorKey(url: string, given: string): Promise<Uint8Array> {
  if (!isFingerprint(given)) return decodeKey(given);
  const res = await fetch(`${url.replace(/\/+$/, '')}/api/v1/server`, { signal: AbortSignal.timeout(5000) });
  const info = ServerInfo.parse(await res.json());
  const keys = [info.serverKey, ...(info.nextServerKey ? [info.nextServerKey] : [])].map(decodeKey);
  const match = keys.find((k) => keyFingerprint(k) === given);
  if (!match) throw new Error(`coordinator key mismatch: ${url} presents ${keys.map(keyFingerprint).join(' / ')}, --coordinator-key names ${given}`);
  return match;
}

export function coordinatorLookup(url: string, coordinatorKey: Uint8Array, relayPrivate: Uint8Array): MembershipLookup {
  const u = new URL(url);
  const relayPublic = publicKeyFromPrivate(relayPrivate);
  return async (path, signal) => {
    const { channel } = await upgradeToControlChannel(await connected(u, signal), {
      host: u.host, serverKey: coordinatorKey, staticPrivate: relayPrivate, staticPublic: relayPublic, signal,
    });
    return new Promise<number>((resolve, reject) => {
      const req = request({ method: 'GET', path, host: 'coordinator', createConnection: () => channel as never, signal }, (res) => {
        res.resume();
        res.on('end', () => { channel.end(); resolve(res.statusCode ?? 0); });
      });
      req.on('error', (err) => { channel.destroy(); reject(err); });
      req.end();
    });
  };
}
