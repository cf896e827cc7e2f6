// STUN Binding transactions over a socket someone else owns: the agent's one UDP socket carries
// WireGuard, disco and STUN, so this client only builds requests, hands them to `send`, and is
// offered every received datagram (handlePacket), matching responses by transaction id.
import { isDecodeError } from '../../proto/errors.js';
import type { StunAddress } from '../../proto/stun/attributes.js';
import { encodeBindingRequest, PADDED_REQUEST_LEN } from '../../proto/stun/binding.js';
import { decodeStunMessage, isStunMessage, METHOD_BINDING } from '../../proto/stun/message.js';
import { abortError } from '../no-answer.js';

export type StunSend = (packet: Uint8Array, port: number, address: string) => void | Promise<void>;

export interface StunClientOptions {
  send: StunSend;
  /** Give up on a transaction after this long; default 3 s. */
  timeoutMs?: number;
  /** When to (re)transmit, ms after the start; default [0, 250, 750, 1750] (UDP loses packets). */
  retransmitMs?: readonly number[];
  software?: string;
}

export interface StunServerAddress {
  /** An IP literal. */
  address: string;
  port: number;
}

export interface StunRequestOptions {
  /** RFC 5780: ask for the answer from the server's other IP and/or port. */
  changeIp?: boolean;
  changePort?: boolean;
  /** RFC 5780: ask for the answer on this port of ours. */
  responsePort?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface StunBindingResult {
  /** Our address as the server saw it (XOR-MAPPED-ADDRESS; MAPPED-ADDRESS from RFC 3489 servers). */
  mapped: StunAddress;
  /** Where the response came from (differs from the server with CHANGE-REQUEST). */
  from: { address: string; port: number };
  /** RFC 5780 servers: their alternate address, and the address they answered from. */
  otherAddress?: StunAddress;
  responseOrigin?: StunAddress;
  /** From the first transmission to the response. */
  rttMs: number;
  /** How many times the request was sent. */
  transmissions: number;
}

export class StunTimeoutError extends Error {
  override readonly name = 'StunTimeoutError';
}
export class StunErrorResponseError extends Error {
  override readonly name = 'StunErrorResponseError';
  constructor(readonly code: number, readonly reason: string) {
    super(`STUN error ${code} ${reason}`);
  }
}
export class StunClientClosedError extends Error {
  override readonly name = 'StunClientClosedError';
}

interface Transaction {
  started: number;
  transmissions: number;
  timers: NodeJS.Timeout[];
  resolve: (r: StunBindingResult) => void;
  reject: (err: Error) => void;
}

export class StunClient {
  /** Datagrams that looked like STUN but did not decode, and responses nobody was waiting for. */
  readonly stats = { malformed: 0, unmatched: 0, sent: 0, responses: 0 };
  private readonly pending = new Map<string, Transaction>();
  private closed = false;

  constructor(private readonly opts: StunClientOptions) {}

  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Offer a received datagram. Returns true if it was STUN (consumed, whether or not it matched),
   * false if it belongs to someone else (WireGuard, disco).
   */
  handlePacket(buf: Uint8Array, from: { address: string; port: number }): boolean {
    if (!isStunMessage(buf)) return false;
    let msg;
    try {
      msg = decodeStunMessage(buf);
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      this.stats.malformed++;
      return true;
    }
    const tx = this.pending.get(Buffer.from(msg.transactionId).toString('hex'));
    if (!tx || msg.method !== METHOD_BINDING || (msg.class !== 'success' && msg.class !== 'error')) {
      this.stats.unmatched++;
      return true;
    }
    this.stats.responses++;
    if (msg.class === 'error') {
      tx.reject(new StunErrorResponseError(msg.errorCode?.code ?? 0, msg.errorCode?.reason ?? ''));
      return true;
    }
    const mapped = msg.xorMappedAddress ?? msg.mappedAddress;
    if (!mapped) {
      this.stats.malformed++;
      return true; // keep waiting: a retransmission may get a proper answer
    }
    tx.resolve({
      mapped,
      from: { address: from.address, port: from.port },
      ...(msg.otherAddress ? { otherAddress: msg.otherAddress } : {}),
      ...(msg.responseOrigin ? { responseOrigin: msg.responseOrigin } : {}),
      rttMs: performance.now() - tx.started,
      transmissions: tx.transmissions,
    });
    return true;
  }

  /** One Binding transaction with retransmissions. */
  request(server: StunServerAddress, o: StunRequestOptions = {}): Promise<StunBindingResult> {
    if (this.closed) return Promise.reject(new StunClientClosedError('STUN client is closed'));
    const { transactionId, bytes } = encodeBindingRequest({
      padTo: PADDED_REQUEST_LEN, // servers that answer no larger than asked (pinhole's relay) can then answer in full
      ...(o.changeIp ? { changeIp: true } : {}),
      ...(o.changePort ? { changePort: true } : {}),
      ...(o.responsePort !== undefined ? { responsePort: o.responsePort } : {}),
      ...(this.opts.software !== undefined ? { software: this.opts.software } : {}),
    });
    const id = Buffer.from(transactionId).toString('hex');
    const timeoutMs = o.timeoutMs ?? this.opts.timeoutMs ?? 3000;
    const schedule = (this.opts.retransmitMs ?? [0, 250, 750, 1750]).filter((t) => t < timeoutMs);
    return new Promise<StunBindingResult>((resolve, reject) => {
      const onAbort = () => finish(abortError(o.signal!, () => new StunClientClosedError('aborted')));
      const finish = (err: Error | null, r?: StunBindingResult) => {
        if (this.pending.get(id) !== tx) return;
        this.pending.delete(id);
        for (const t of tx.timers) clearTimeout(t);
        o.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(r!);
      };
      const tx: Transaction = { started: performance.now(), transmissions: 0, timers: [], resolve: (r) => finish(null, r), reject: (e) => finish(e) };
      if (o.signal?.aborted) return reject(abortError(o.signal, () => new StunClientClosedError('aborted')));
      this.pending.set(id, tx);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      const transmit = () => {
        tx.transmissions++;
        this.stats.sent++;
        try {
          const r = this.opts.send(bytes, server.port, server.address);
          if (r) r.catch(() => undefined); // a lost send is a lost datagram: the timeout covers it
        } catch {
          /* same */
        }
      };
      for (const at of schedule.length ? schedule : [0]) tx.timers.push(setTimeout(transmit, at));
      tx.timers.push(setTimeout(() => finish(new StunTimeoutError(`no STUN answer from ${server.address}:${server.port} within ${timeoutMs} ms`)), timeoutMs));
    });
  }

  /** Fails every pending transaction; later requests are refused. */
  close(): void {
    this.closed = true;
    for (const tx of [...this.pending.values()]) tx.reject(new StunClientClosedError('STUN client is closed'));
  }
}
