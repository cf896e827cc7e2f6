// The one error type every decoder in proto/ throws for bad input, so callers can catch exactly
// "the bytes (or text) were malformed" and count/drop it, while real bugs still crash loudly.

/** Why an input was rejected; the listed codes are the common ones, decoders may add their own. */
export type DecodeErrorCode =
  | 'short' // fewer bytes/characters than the format needs
  | 'oversized' // more than the format allows
  | 'bad-type' // unknown message type / tag / version
  | 'bad-length' // a length field or a fixed-size field disagrees with the input
  | 'bad-syntax' // text that does not follow the grammar
  | 'bad-value' // well-formed but out of range or otherwise not allowed
  | (string & {});

export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  readonly code: DecodeErrorCode;

  constructor(code: DecodeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isDecodeError(err: unknown): err is DecodeError {
  return err instanceof DecodeError;
}
