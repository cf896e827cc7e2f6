// PCP (RFC 6887) ANNOUNCE and MAP, to the gateway's UDP port 5351. Addresses are 16 bytes, an
// IPv4 address as IPv4-mapped IPv6 (::ffff:a.b.c.d). All integers big-endian.
//
//   request header (24 bytes):  version=2 | R=0,opcode (1) | reserved (2) | requested lifetime u32
//                               | client IP (16)
//   response header (24 bytes): version=2 | R=1,opcode (1) | reserved (1) | result (1) | lifetime u32
//                               | epoch u32 | reserved (12)
//   MAP payload (36 bytes):     nonce (12) | protocol (1) | reserved (3) | internal port u16
//                               | suggested/assigned external port u16 | suggested/assigned external IP (16)
//
// ANNOUNCE (opcode 0) has no payload: a request probes for a PCP server, an unsolicited response
// (to 224.0.0.1:5350) tells clients the server restarted. MAP with lifetime 0 deletes a mapping.
import { copyBytes } from '../bytes.js';
import { DecodeError } from '../errors.js';
import { formatAddress, tryParseAddress } from '../ip/address.js';

export const PCP_VERSION = 2;
const OP_ANNOUNCE = 0;
const OP_MAP = 1;
const RESPONSE_BIT = 0x80;
const HEADER_LEN = 24;
const MAP_LEN = 36;
export const PCP_NONCE_LEN = 12;
/** The largest PCP message (RFC 6887 §7). */
export const PCP_MAX_LEN = 1100;

/** RFC 6887 §7.4 result codes (the ones a client acts on). */
export const PCP_RESULT = {
  success: 0,
  unsupportedVersion: 1,
  notAuthorized: 2,
  malformedRequest: 3,
  unsupportedOpcode: 4,
  networkFailure: 7,
  noResources: 8,
  unsupportedProtocol: 9,
  cannotProvideExternal: 11,
  addressMismatch: 12,
} as const;

const PROTO_NUMBER = { udp: 17, tcp: 6 } as const;

export interface PcpMapRequest {
  /** Our address as the gateway sees it (the LAN address we send from). */
  clientAddress: string;
  /** 12 random bytes naming the mapping: a renewal or delete repeats them. */
  nonce: Uint8Array;
  protocol: 'udp' | 'tcp';
  internalPort: number;
  suggestedExternalPort: number;
  /** IPv4 "any" (::ffff:0.0.0.0) unless given. */
  suggestedExternalAddress?: string;
  lifetimeSeconds: number;
}

export type PcpResponse =
  | { kind: 'announce'; result: number; lifetimeSeconds: number; epoch: number }
  | {
    kind: 'map'; result: number; lifetimeSeconds: number; epoch: number; nonce: Uint8Array;
    protocol: number; internalPort: number; externalPort: number; externalAddress: string;
  }
  /** Another opcode, or a failure too short to carry its payload. */
  | { kind: 'other'; opcode: number; result: number; lifetimeSeconds: number; epoch: number };

export function encodePcpAnnounceRequest(clientAddress: string): Uint8Array {
  const b = new Uint8Array(HEADER_LEN);
  writeHeader(b, OP_ANNOUNCE, 0, clientAddress);
  return b;
}

export function encodePcpMapRequest(r: PcpMapRequest): Uint8Array {
  if (r.nonce.length !== PCP_NONCE_LEN) throw new RangeError(`PCP nonce of ${r.nonce.length} bytes`);
  if (!Number.isInteger(r.internalPort) || r.internalPort < 1 || r.internalPort > 65535) throw new RangeError(`PCP internal port ${r.internalPort}`);
  if (!Number.isInteger(r.suggestedExternalPort) || r.suggestedExternalPort < 0 || r.suggestedExternalPort > 65535) throw new RangeError(`PCP external port ${r.suggestedExternalPort}`);
  const b = new Uint8Array(HEADER_LEN + MAP_LEN);
  writeHeader(b, OP_MAP, r.lifetimeSeconds, r.clientAddress);
  const v = new DataView(b.buffer);
  b.set(r.nonce, 24);
  b[36] = PROTO_NUMBER[r.protocol];
  v.setUint16(40, r.internalPort);
  v.setUint16(42, r.suggestedExternalPort);
  b.set(address16(r.suggestedExternalAddress ?? '0.0.0.0'), 44);
  return b;
}

/** Decodes a PCP response; throws DecodeError for anything else (a request, another version, short). */
export function decodePcpResponse(buf: Uint8Array): PcpResponse {
  if (buf.length < HEADER_LEN) throw new DecodeError('short', `PCP: ${buf.length} bytes`);
  if (buf.length > PCP_MAX_LEN || buf.length % 4 !== 0) throw new DecodeError('bad-length', `PCP: ${buf.length} bytes`);
  if (buf[0] !== PCP_VERSION) throw new DecodeError('bad-type', `PCP: version ${buf[0]}`);
  if ((buf[1]! & RESPONSE_BIT) === 0) throw new DecodeError('bad-type', 'PCP: a request, not a response');
  const opcode = buf[1]! & 0x7f;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const result = buf[3]!;
  const lifetimeSeconds = v.getUint32(4);
  const epoch = v.getUint32(8);
  if (opcode === OP_ANNOUNCE) return { kind: 'announce', result, lifetimeSeconds, epoch };
  if (opcode !== OP_MAP || buf.length < HEADER_LEN + MAP_LEN) {
    if (opcode === OP_MAP && result === PCP_RESULT.success) throw new DecodeError('short', `PCP MAP: ${buf.length} bytes`);
    return { kind: 'other', opcode, result, lifetimeSeconds, epoch };
  }
  return {
    kind: 'map', result, lifetimeSeconds, epoch,
    nonce: copyBytes(buf, 24, 24 + PCP_NONCE_LEN),
    protocol: buf[36]!,
    internalPort: v.getUint16(40),
    externalPort: v.getUint16(42),
    externalAddress: addressText(buf.subarray(44, 60)),
  };
}

function writeHeader(b: Uint8Array, opcode: number, lifetime: number, clientAddress: string): void {
  if (!Number.isInteger(lifetime) || lifetime < 0 || lifetime > 0xffffffff) throw new RangeError(`PCP lifetime ${lifetime}`);
  b[0] = PCP_VERSION;
  b[1] = opcode;
  new DataView(b.buffer, b.byteOffset).setUint32(4, lifetime);
  b.set(address16(clientAddress), 8);
}

/** 16 bytes for an IP literal: IPv6 as is, IPv4 mapped. */
function address16(text: string): Uint8Array {
  const a = tryParseAddress(text);
  if (!a) throw new RangeError(`PCP: not an IP address: ${text}`);
  if (a.family === 6) return a.bytes;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(a.bytes, 12);
  return out;
}

/** An IPv4-mapped address as a dotted quad, anything else as IPv6 text. */
function addressText(b: Uint8Array): string {
  const mapped = b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
  return mapped ? formatAddress(b.subarray(12, 16)) : formatAddress(b);
}
