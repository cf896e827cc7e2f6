// Refusals: a request the coordinator turns down, with the HTTP status and a one-line reason that
// goes back to the caller as {"error": reason}. Anything else thrown is a bug (500, logged).

export class RequestRefusedError extends Error {
  override readonly name: string = 'RequestRefusedError';
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class BadRequestError extends RequestRefusedError {
  override readonly name = 'BadRequestError';
  constructor(message: string) { super(400, message); }
}

export class UnauthorizedError extends RequestRefusedError {
  override readonly name = 'UnauthorizedError';
  constructor(message: string) { super(401, message); }
}

export class ForbiddenError extends RequestRefusedError {
  override readonly name = 'ForbiddenError';
  constructor(message: string) { super(403, message); }
}

export class NotFoundError extends RequestRefusedError {
  override readonly name = 'NotFoundError';
  constructor(message: string) { super(404, message); }
}

export class ConflictError extends RequestRefusedError {
  override readonly name = 'ConflictError';
  constructor(message: string) { super(409, message); }
}
