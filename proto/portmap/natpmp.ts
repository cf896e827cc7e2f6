// NAT-PMP (RFC 6886) messages, sent to the gateway's UDP port 5351. All integers big-endian.
//
//   public address request (2 bytes):   version=0 | opcode=0
//   public address response (12 bytes): version=0 | opcode=128 | result u16 | epoch u32 | external IPv4 (4)
//   map request (12 bytes):  version=0 | opcode=1 (UDP) or 2 (TCP) | reserved u16 | internal port u16
//                            | suggested external port u16 | requested lifetime u32 (s; 0 deletes)
//   map response (16 bytes): version=0 | opcode=129/130 | result u16 | epoch u32 | internal port u16
//                            | mapped external port u16 | lifetime u32
//
// A gateway that speaks only PCP answers a NAT-PMP request with a PCP "unsupported version"; a
// NAT-PMP-only gateway answers a PCP request with version 0, result 1 (RFC 6887 §9).
import { DecodeError } from '../errors.js';

export const NATPMP_PORT = 5351;
/** Gateways announce a restart (a new epoch) to this group and port (RFC 6886 §3.2.1). */
export const NATPMP_ANNOUNCE_GROUP = '224.0.0.1';
export const NATPMP_ANNOUNCE_PORT = 5350;
export const NATPMP_VERSION = 0;

const OP_PUBLIC_ADDRESS = 0;
const OP_MAP_UDP = 1;
const OP_MAP_TCP = 2;
const RESPONSE_BIT = 128;

/** RFC 6886 §3.5 result codes. */
export const NATPMP_RESULT = {
  success: 0,
  unsupportedVersion: 1,
  notAuthorized: 2,
  networkFailure: 3,
  outOfResources: 4,
  unsupportedOpcode: 5,
} as const;

export interface NatPmpMapRequest {
  protocol: 'udp' | 'tcp';
  internalPort: number;
  suggestedExternalPort: number;
  lifetimeSeconds: number;
}

export type NatPmpResponse =
  | { kind: 'public-address'; result: number; epoch: number; externalAddress: string }
  | { kind: 'map'; protocol: 'udp' | 'tcp'; result: number; epoch: number; internalPort: number; externalPort: number; lifetimeSeconds: number }
  /** A short answer carrying only a failure (RFC 6886 §3.5 lets a gateway truncate it). */
  | { kind: 'error'; opcode: number; result: number; epoch: number | null };

export function encodeNatPmpPublicAddressRequest(): Uint8Array {
  return Uint8Array.of(NATPMP_VERSION, OP_PUBLIC_ADDRESS);
}

export function encodeNatPmpMapRequest(r: NatPmpMapRequest): Uint8Array {
  checkPort(r.internalPort, 'internal port', false);
  checkPort(r.suggestedExternalPort, 'suggested external port', true);
  if (!Number.isInteger(r.lifetimeSeconds) || r.lifetimeSeconds < 0 || r.lifetimeSeconds > 0xffffffff) throw new RangeError(`NAT-PMP lifetime ${r.lifetimeSeconds}`);
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  b[0] = NATPMP_VERSION;
  b[1] = r.protocol === 'udp' ? OP_MAP_UDP : OP_MAP_TCP;
  v.setUint16(4, r.internalPort);
  v.setUint16(6, r.suggestedExternalPort);
  v.setUint32(8, r.lifetimeSeconds);
  return b;
}

/** Decodes a gateway's answer; throws DecodeError for anything that is not a NAT-PMP response. */
export function decodeNatPmpResponse(buf: Uint8Array): NatPmpResponse {
  if (buf.length < 4) throw new DecodeError('short', `NAT-PMP: ${buf.length} bytes`);
  if (buf[0] !== NATPMP_VERSION) throw new DecodeError('bad-type', `NAT-PMP: version ${buf[0]}`);
  const op = buf[1]!;
  if ((op & RESPONSE_BIT) === 0) throw new DecodeError('bad-type', `NAT-PMP: opcode ${op} is a request`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const result = v.getUint16(2);
  const opcode = op & ~RESPONSE_BIT;
  if (opcode !== OP_PUBLIC_ADDRESS && opcode !== OP_MAP_UDP && opcode !== OP_MAP_TCP) {
    return { kind: 'error', opcode, result, epoch: buf.length >= 8 ? v.getUint32(4) : null };
  }
  const need = opcode === OP_PUBLIC_ADDRESS ? 12 : 16;
  if (buf.length < need) {
    if (result !== NATPMP_RESULT.success) return { kind: 'error', opcode, result, epoch: buf.length >= 8 ? v.getUint32(4) : null };
    throw new DecodeError('short', `NAT-PMP: ${buf.length} bytes for opcode ${opcode}, need ${need}`);
  }
  if (buf.length > need) throw new DecodeError('bad-length', `NAT-PMP: ${buf.length} bytes for opcode ${opcode}, expected ${need}`);
  const epoch = v.getUint32(4);
  if (opcode === OP_PUBLIC_ADDRESS) {
    return { kind: 'public-address', result, epoch, externalAddress: `${buf[8]}.${buf[9]}.${buf[10]}.${buf[11]}` };
  }
  return {
    kind: 'map', protocol: opcode === OP_MAP_UDP ? 'udp' : 'tcp', result, epoch,
    internalPort: v.getUint16(8), externalPort: v.getUint16(10), lifetimeSeconds: v.getUint32(12),
  };
}

function checkPort(p: number, what: string, zeroOk: boolean): void {
  if (!Number.isInteger(p) || p < (zeroOk ? 0 : 1) || p > 65535) throw new RangeError(`NAT-PMP ${what} ${p}`);
}

/**
 * RFC 6886 §3.6: after `elapsedSeconds` on our clock, a gateway that did not restart reports an
 * epoch of at least previous + 7/8 of that (minus 2 s of slack for rounding). Smaller: it lost its
 * mappings (restart, or a new WAN address) and every mapping must be made again.
 */
export function epochWentBack(previous: number, elapsedSeconds: number, now: number): boolean {
  return now + 2 < previous + Math.floor((elapsedSeconds * 7) / 8);
}
