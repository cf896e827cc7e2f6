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
}

/** A Binding request: header, optional CHANGE-REQUEST / RESPONSE-PORT / SOFTWARE, FINGERPRINT. */
export function encodeBindingRequest(opts: BindingRequestOptions = {}): { transactionId: Uint8Array; bytes: Uint8Array } {
  const transactionId = opts.transactionId ?? newTransactionId();
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
