// The relay's STUN server (RFC 8489 Binding). Given two addresses it is an RFC 5780 server: four
// sockets (2 IPs x 2 ports), OTHER-ADDRESS in every answer, and CHANGE-REQUEST answered from the
// socket with the other IP and/or port — what a client needs to tell NAT mapping and filtering.
//
// Not a reflector: it answers only to the request's source address and port (RESPONSE-PORT is
// refused with 420, as RFC 5780 §6.1 allows), and never with more bytes than the request had —
// optional attributes are left out to fit, and a request too small for the answer gets none
// (pinhole's clients pad their requests: PADDED_REQUEST_LEN). Both are counted.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isDecodeError } from '../proto/errors.js';
import { tryParseAddress } from '../proto/ip/address.js';
import { ATTR, type StunEndpoint } from '../proto/stun/attributes.js';
import { encodeBindingError, encodeBindingSuccess } from '../proto/stun/binding.js';
import { decodeStunMessage, isStunMessage, METHOD_BINDING } from '../proto/stun/message.js';
import type { StunCounters } from './counters.js';
import type { Logger } from './log.js';

export interface StunResponderOptions {
  /**
   * One address (plain Binding server) or two (RFC 5780). With two, the primary port is the
   * first address's port and the alternate port the second's if it differs, else primary + 1;
   * both ports are opened on both IPs. Port 0 picks free ports.
   */
  addresses: readonly StunEndpoint[];
  counters: StunCounters;
  logger: Logger;
  software?: string;
}

export interface StunResponder {
  /** Every socket's address; [0] is the primary. */
  readonly addresses: readonly StunEndpoint[];
  /** The RFC 5780 alternate (other IP, other port) of the primary, or null with one address. */
  readonly otherAddress: StunEndpoint | null;
  close(): Promise<void>;
}

interface Slot {
  socket: Socket;
  ip: number;
  port: number;
  local: StunEndpoint;
}

const SOFTWARE = 'pinhole relay';

export async function startStunResponder(opts: StunResponderOptions): Promise<StunResponder> {
  if (opts.addresses.length < 1 || opts.addresses.length > 2) throw new Error('STUN: give one or two addresses');
  const families = opts.addresses.map((a) => tryParseAddress(a.address)?.family);
  if (families.some((f) => f === undefined)) throw new Error('STUN: addresses must be IP literals');
  if (families.length === 2 && families[0] !== families[1]) throw new Error('STUN: both addresses must be of one family');
  const type = families[0] === 6 ? 'udp6' : 'udp4';
  const ips = opts.addresses.map((a) => a.address);
  const software = opts.software ?? SOFTWARE;

  // grid[ip][port]: [0][0] primary, [1][1] the other address.
  const grid: Slot[][] = ips.map(() => []);
  const opened: Socket[] = [];
  try {
    const first = await bindSocket(type, ips[0]!, opts.addresses[0]!.port);
    opened.push(first.socket);
    grid[0]![0] = { ...first, ip: 0, port: 0 };
    if (ips.length === 2) {
      const p = first.local.port;
      const wanted = opts.addresses[1]!.port;
      const altPort = wanted !== 0 && wanted !== p ? wanted : opts.addresses[0]!.port === 0 ? 0 : p + 1;
      const alt = await bindSocket(type, ips[0]!, altPort);
      opened.push(alt.socket);
      grid[0]![1] = { ...alt, ip: 0, port: 1 };
      const b0 = await bindSocket(type, ips[1]!, p);
      opened.push(b0.socket);
      grid[1]![0] = { ...b0, ip: 1, port: 0 };
      const b1 = await bindSocket(type, ips[1]!, alt.local.port);
      opened.push(b1.socket);
      grid[1]![1] = { ...b1, ip: 1, port: 1 };
    }
  } catch (err) {
    for (const s of opened) s.close();
    throw err;
  }

  const c = opts.counters;
  const rfc5780 = ips.length === 2;

  function reply(from: Slot, bytes: Uint8Array, to: { address: string; port: number }): void {
    from.socket.send(bytes, to.port, to.address, (err) => {
      if (err) {
        c.sendErrors++;
        opts.logger.debug({ err: err.message, to }, 'stun send failed');
      }
    });
  }

  function onDatagram(slot: Slot, msg: Buffer, rinfo: RemoteInfo): void {
    if (!isStunMessage(msg)) {
      c.notStun++;
      return;
    }
    let req;
    try {
      req = decodeStunMessage(msg);
    } catch (err) {
      if (!isDecodeError(err)) throw err;
      c.malformed++;
      return;
    }
    if (req.class !== 'request') {
      c.ignored++;
      return;
    }
    c.requests++;
    const source = { address: rinfo.address.split('%')[0]!, port: rinfo.port };
    const base = { transactionId: req.transactionId };
    if (req.method !== METHOD_BINDING) {
      sendFitted(slot, msg.length, (sw) => encodeBindingError({ ...base, ...sw, code: 400, reason: 'Bad Request: only Binding is supported' }), source, 'error');
      return;
    }
    const change = req.changeRequest && (req.changeRequest.changeIp || req.changeRequest.changePort);
    const unknown = [...req.unknownRequired];
    if (change && !rfc5780) unknown.push(ATTR.CHANGE_REQUEST);
    if (req.responsePort !== undefined) {
      c.responsePortRefused++; // an answer to another port would let anyone aim us at a third party
      unknown.push(ATTR.RESPONSE_PORT);
    }
    if (unknown.length > 0) {
      sendFitted(slot, msg.length, (sw) => encodeBindingError({ ...base, ...sw, code: 420, reason: 'Unknown Attribute', unknownAttributes: unknown }), source, 'error');
      return;
    }
    let out = slot;
    if (change) {
      c.changeRequests++;
      const ip = req.changeRequest!.changeIp ? 1 - slot.ip : slot.ip;
      const port = req.changeRequest!.changePort ? 1 - slot.port : slot.port;
      out = grid[ip]![port]!;
    }
    const other = rfc5780 ? grid[1 - slot.ip]![1 - slot.port]!.local : undefined;
    sendFitted(out, msg.length, (sw) => encodeBindingSuccess({
      ...base,
      ...sw,
      mapped: source,
      ...(rfc5780 ? { responseOrigin: out.local, otherAddress: other! } : {}),
    }), source, 'success');
  }

  /** Sends the answer, without SOFTWARE if that makes it fit, only if it is no larger than the request. */
  function sendFitted(from: Slot, requestLen: number, build: (sw: { software?: string }) => Uint8Array, to: StunEndpoint, kind: 'success' | 'error'): void {
    let bytes = build({ software });
    if (bytes.length > requestLen) bytes = build({ software: undefined });
    if (bytes.length > requestLen) {
      c.tooSmall++;
      return;
    }
    if (kind === 'success') c.successSent++;
    else c.errorsSent++;
    reply(from, bytes, to);
  }

  for (const row of grid) {
    for (const slot of row) {
      slot.socket.on('message', (msg, rinfo) => {
        try {
          onDatagram(slot, msg, rinfo);
        } catch (err) {
          // A bug, not bad input: log it loudly but keep serving.
          c.malformed++;
          opts.logger.error({ err }, 'stun: unexpected error handling a datagram');
        }
      });
      slot.socket.on('error', (err) => opts.logger.warn({ err: err.message }, 'stun socket error'));
    }
  }

  const addresses = grid.flat().map((s) => s.local);
  return {
    addresses: [grid[0]![0]!.local, ...addresses.slice(1)],
    otherAddress: rfc5780 ? grid[1]![1]!.local : null,
    close: async () => {
      await Promise.all(grid.flat().map((s) => new Promise<void>((r) => s.socket.close(() => r()))));
    },
  };
}

async function bindSocket(type: 'udp4' | 'udp6', address: string, port: number): Promise<{ socket: Socket; local: StunEndpoint }> {
  const socket = createSocket({ type, ipv6Only: type === 'udp6' });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const a = socket.address();
  return { socket, local: { address: a.address, port: a.port } };
}
