// How a control channel starts: one HTTP/1.1 request on the coordinator's one port (plain or TLS)
// that carries Noise message 1 and asks to switch protocols; the 101 answer is followed by
// message 2 as the first frame, then the channel's frames both ways.
//
//   POST /api/v1/control HTTP/1.1
//   Upgrade: pinhole-control-v1 / Connection: Upgrade
//   Pinhole-Handshake: base64(msg1)
//
//   HTTP/1.1 101 Switching Protocols          then  frame(msg2) | frames …
//   HTTP/1.1 4xx/429 + {"error": "one line"}   a refusal (the handshake did not open, a limit)
//
// The client side runs over a connection the caller opened (proto/ opens none). Both message 2's
// payload and the refusal are read with a bound.
import * as z from 'zod/mini';
import { DecodeError } from '../errors.js';
import { HandshakeError } from '../wireguard/noise-crypto.js';
import { NoiseChannel, type ChannelTransport } from './noise-channel.js';
import { initiatorMessage1, initiatorReadMessage2, type InitiatorPending } from './noise-ik.js';
import { Key32 } from './schemas.js';

export const CONTROL_PATH = '/api/v1/control';
export const CONTROL_UPGRADE = 'pinhole-control-v1';
export const HANDSHAKE_HEADER = 'pinhole-handshake';
/** A reply head longer than this is not from a coordinator. */
const MAX_REPLY_HEAD = 16 * 1024;
export const MAX_REFUSAL_BODY = 4 * 1024;

/** Message 2's payload: what the coordinator tells every caller about its keys. */
export const ChannelWelcome = z.strictObject({
  v: z.literal(1),
  /** During a key rotation: the key that replaces the one this channel used (docs/security.md). */
  nextKey: z.optional(Key32),
});
export type ChannelWelcome = z.infer<typeof ChannelWelcome>;

/** The server answered, but not with a channel: its status and one-line reason. */
export class ControlRefusedError extends Error {
  override readonly name = 'ControlRefusedError';
  constructor(readonly status: number, readonly reason: string) {
    super(reason);
  }
}

/** The server is not a pinhole coordinator, or its answer broke the protocol. */
export class ControlProtocolError extends Error {
  override readonly name = 'ControlProtocolError';
}

/** The handshake did not complete: the server does not hold the pinned key. */
export class CoordinatorKeyMismatchError extends Error {
  override readonly name = 'CoordinatorKeyMismatchError';
}

export interface UpgradeOptions {
  /** Host header (host[:port]). */
  host: string;
  serverKey: Uint8Array;
  staticPrivate: Uint8Array;
  staticPublic: Uint8Array;
  signal?: AbortSignal;
}

export function upgradeRequest(host: string, msg1: Uint8Array): string {
  return `POST ${CONTROL_PATH} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: ${CONTROL_UPGRADE}\r\nConnection: Upgrade\r\n`
    + `${HANDSHAKE_HEADER}: ${Buffer.from(msg1).toString('base64')}\r\nContent-Length: 0\r\n\r\n`;
}

/** An answer's status and headers (names in lower case), and the bytes read after its head. */
export interface ReplyHead { status: number; headers: Map<string, string>; rest: Buffer }

function parseHead(head: string, rest: Buffer): ReplyHead {
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!m) throw new ControlProtocolError('not a pinhole coordinator (the answer is not HTTP)');
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return { status: Number(m[1]), headers, rest };
}

/** The error a refusal (any answer but a channel) means, with its one-line reason from `body` (≤ MAX_REFUSAL_BODY). */
export function refusal(reply: ReplyHead, body: Buffer): Error {
  let reason: string | null = null;
  if ((reply.headers.get('content-type') ?? '').includes('json')) {
    try {
      const j = JSON.parse(body.toString('utf8')) as { error?: unknown };
      if (typeof j.error === 'string') reason = j.error.split('\n')[0]!.slice(0, 300);
    } catch { /* not JSON after all */ }
  }
  if (reply.status === 403 && reply.headers.get('pinhole-control') === 'key-mismatch') {
    return new CoordinatorKeyMismatchError(reason ?? 'the coordinator does not hold the pinned key');
  }
  if (reason === null) return new ControlProtocolError(`not a pinhole coordinator (HTTP ${reply.status} to the control upgrade)`);
  return new ControlRefusedError(reply.status, reason);
}

/**
 * Sends message 1 on `conn` and resolves with the channel once message 2 authenticated the
 * server. Rejects with ControlRefusedError, CoordinatorKeyMismatchError or ControlProtocolError;
 * `conn` is destroyed on any failure.
 */
export function upgradeToControlChannel(conn: ChannelTransport, opts: UpgradeOptions): Promise<{ channel: NoiseChannel; welcome: ChannelWelcome }> {
  const { msg1, pending } = initiatorMessage1(opts.serverKey, opts.staticPrivate, opts.staticPublic, new Uint8Array(0));
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let head: ReplyHead | null = null;
    let settled = false;
    const finish = (err: Error | null, value?: { channel: NoiseChannel; welcome: ChannelWelcome }): void => {
      if (settled) return;
      settled = true;
      conn.off('data', onData);
      conn.off('end', onEnd);
      conn.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        conn.destroy();
        reject(err);
      } else {
        resolve(value!);
      }
    };
    const onAbort = (): void => finish(new ControlProtocolError('no answer in time'));
    const onError = (err: Error): void => finish(err);
    const onEnd = (): void => {
      if (head && head.status !== 101) return finish(refusal(head, head.rest));
      finish(new ControlProtocolError('not a pinhole coordinator (the connection closed during the handshake)'));
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      try {
        if (!head) {
          const end = buf.indexOf('\r\n\r\n');
          if (end < 0) {
            if (buf.length > MAX_REPLY_HEAD) throw new ControlProtocolError('not a pinhole coordinator (oversized answer)');
            return;
          }
          head = parseHead(buf.subarray(0, end).toString('latin1'), buf.subarray(end + 4));
          buf = head.rest;
        }
        if (head.status !== 101) {
          const len = Number(head.headers.get('content-length') ?? NaN);
          if (buf.length > MAX_REFUSAL_BODY) throw refusal(head, buf.subarray(0, MAX_REFUSAL_BODY));
          if (Number.isFinite(len) && buf.length >= len) throw refusal(head, buf.subarray(0, len));
          head.rest = buf;
          return;
        }
        if ((head.headers.get('upgrade') ?? '').toLowerCase() !== CONTROL_UPGRADE) {
          throw new ControlProtocolError('not a pinhole coordinator (it switched to another protocol)');
        }
        const opened = channelFromMessage2(conn, buf, pending, opts.serverKey);
        if (opened) finish(null, opened);
      } catch (err) {
        finish(handshakeFailure(err));
      }
    };
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    conn.on('data', onData);
    conn.on('end', onEnd);
    conn.on('error', onError);
    conn.write(upgradeRequest(opts.host, msg1));
  });
}

/**
 * Message 2, framed, at the start of `buf`: the channel it opens on `conn` (bytes after it, frames
 * the server sent at once, belong to the channel), or null until all of it has arrived (≤ 64 KiB).
 * Throws as the handshake fails; handshakeFailure says what that means to the caller.
 */
export function channelFromMessage2(conn: ChannelTransport, buf: Buffer, pending: InitiatorPending, serverKey: Uint8Array): { channel: NoiseChannel; welcome: ChannelWelcome } | null {
  if (buf.length < 2) return null;
  const len = buf.readUInt16BE(0);
  if (buf.length < 2 + len) return null;
  const { payload, keys } = initiatorReadMessage2(pending, buf.subarray(2, 2 + len));
  const welcome = parseWelcome(payload);
  return { channel: new NoiseChannel(conn, { keys, peerStatic: serverKey, head: Buffer.from(buf.subarray(2 + len)) }), welcome };
}

/** What a failed handshake means to the caller. */
export function handshakeFailure(err: unknown): Error {
  if (err instanceof HandshakeError) return new CoordinatorKeyMismatchError('the coordinator\'s answer did not authenticate with the pinned key');
  if (err instanceof DecodeError) return new ControlProtocolError(`not a pinhole coordinator (${err.message})`);
  return err as Error;
}

function parseWelcome(payload: Uint8Array): ChannelWelcome {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw new ControlProtocolError('the coordinator\'s welcome is not JSON');
  }
  const r = ChannelWelcome.safeParse(json);
  if (!r.success) throw new ControlProtocolError('the coordinator\'s welcome does not follow the protocol');
  return r.data;
}
