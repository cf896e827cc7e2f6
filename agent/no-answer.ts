// One wording for every timeout the user can see: "no answer in time". AbortSignal.timeout()
// aborts with a DOMException reading "The operation was aborted due to timeout"; callers that
// pass a signal's reason on turn it into this error first.
export class NoAnswerInTimeError extends Error {
  override readonly name = 'NoAnswerInTimeError';
  constructor(what?: string) {
    super(what ? `${what}: no answer in time` : 'no answer in time');
  }
}

/** The error to reject with when `signal` aborted: its reason, with a timeout said the one way. */
export function abortError(signal: AbortSignal, fallback: () => Error): Error {
  const r: unknown = signal.reason;
  if (r instanceof Error && r.name === 'TimeoutError') return new NoAnswerInTimeError();
  return r instanceof Error ? r : fallback();
}
