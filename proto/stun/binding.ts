// The Binding method, the only one pinhole speaks: request (optionally with RFC 5780
// CHANGE-REQUEST / RESPONSE-PORT), success response, error response.
import type { StunEndpoint } from './attributes.js';
import { encodeStunMessage, METHOD_BINDING, newTransactionId } from './message.js';

export interface BindingRequestOptions {
  transactionId?: Uint8Array;
  /** RFC 5780: ask the server to answer from its other IP and/or port. */
  changeIp?: boolean;
  changePort?: boolean;
  /** RFC 5780: ask the server to answer to this port instead of the request's source port. */
  responsePort?: number;
  software?: string;
  fingerprint?: boolean;
  /**
   * Make the request at least this many bytes (at most REQUEST_PAD_MAX), by filling SOFTWARE with
   * spaces: SOFTWARE is comprehension-optional, so every server accepts it, unlike RFC 5780's PADDING.
   * Servers that answer no larger than they were asked (pinhole's relay) need it; see PADDED_REQUEST_LEN.
   */
  padTo?: number;
}

/**
 * What pinhole pads its Binding requests to: the largest answer pinhole's responder gives (IPv6
 * XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN and OTHER-ADDRESS, SOFTWARE, FINGERPRINT: 120 bytes) fits.
 */
export const PADDED_REQUEST_LEN = 128;
/** SOFTWARE holds fewer than 128 characters (RFC 8489 §14.14). */
const SOFTWARE_MAX_CHARS = 127;
const PAD_SOFTWARE = 'pinhole';

/** A Binding request: header, optional CHANGE-REQUEST / RESPONSE-PORT / SOFTWARE, FINGERPRINT. */
export function encodeBindingRequest(opts: BindingRequestOptions = {}): { transactionId: Uint8Array; bytes: Uint8Array } {
  const transactionId = opts.transactionId ?? newTransactionId();
  if (opts.padTo !== undefined) {
    const bare = encodeBindingRequest({ ...opts, transactionId, padTo: undefined, software: undefined }).bytes.length;
    const base = opts.software ?? PAD_SOFTWARE;
    const want = Math.min(SOFTWARE_MAX_CHARS, Math.max(base.length, opts.padTo - bare - 4));
    return encodeBindingRequest({ ...opts, transactionId, padTo: undefined, software: base.padEnd(want, ' ') });
  }
  const bytes = encodeStunMessage({
    method: METHOD_BINDING,
    class: 'request',
    transactionId,
    ...(opts.changeIp || opts.changePort ? { changeRequest: { changeIp: !!opts.changeIp, changePort: !!opts.changePort } } : {}),
    ...(opts.responsePort !== undefined ? { responsePort: opts.responsePort } : {}),
    ...(opts.software !== undefined ? { software: opts.software } : {}),
  }, { fingerprint: opts.fingerprint ?? true });
  return { transactionId, bytes };
}

export interface BindingSuccessOptions {
  transactionId: Uint8Array;
  /** Where the request came from: written as XOR-MAPPED-ADDRESS. */
  mapped: StunEndpoint;
  /** Also write the RFC 3489 MAPPED-ADDRESS (for old clients). */
  plainMapped?: boolean;
  /** RFC 5780: the address the response is sent from. */
  responseOrigin?: StunEndpoint;
  /** RFC 5780: the server's alternate address and port. */
  otherAddress?: StunEndpoint;
  software?: string;
}

export function encodeBindingSuccess(o: BindingSuccessOptions): Uint8Array {
  return encodeStunMessage({
    method: METHOD_BINDING,
    class: 'success',
    transactionId: o.transactionId,
    xorMappedAddress: o.mapped,
    ...(o.plainMapped ? { mappedAddress: o.mapped } : {}),
    ...(o.responseOrigin ? { responseOrigin: o.responseOrigin } : {}),
    ...(o.otherAddress ? { otherAddress: o.otherAddress } : {}),
    ...(o.software !== undefined ? { software: o.software } : {}),
  });
}

export interface BindingErrorOptions {
  transactionId: Uint8Array;
  code: number;
  reason: string;
  /** For 420 Unknown Attribute: the types that were not understood. */
  unknownAttributes?: number[];
  software?: string;
}

export function encodeBindingError(o: BindingErrorOptions): Uint8Array {
  return encodeStunMessage({
    method: METHOD_BINDING,
    class: 'error',
    transactionId: o.transactionId,
    errorCode: { code: o.code, reason: o.reason },
    ...(o.unknownAttributes ? { unknownAttributes: o.unknownAttributes } : {}),
    ...(o.software !== undefined ? { software: o.software } : {}),
  });
}
