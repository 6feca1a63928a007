/**
 * One error taxonomy. Every error a caller can see is a PushwireError with a
 * stable `code` (sent to clients in error frames and returned by `publish`),
 * an HTTP-ish `status`, and `expose` telling whether its message is safe to
 * show outside (a Redis failure's text is not).
 */
export class PushwireError extends Error {
  override name = 'PushwireError';
  readonly code: string;
  readonly status: number;
  readonly expose: boolean;

  constructor(
    code: string,
    message: string,
    status: number,
    expose = true,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.code = code;
    this.status = status;
    this.expose = expose;
  }
}

/** The caller sent something we cannot parse or accept (bad JSON, wrong shape). */
export class ValidationError extends PushwireError {
  override name = 'ValidationError';
  constructor(message: string, code = 'invalid_request') {
    super(code, message, 400);
  }
}

/** A message or frame over an API Gateway size limit. */
export class TooLargeError extends PushwireError {
  override name = 'TooLargeError';
  constructor(message: string) {
    super('too_large', message, 413);
  }
}

/**
 * A publish whose `id` another attempt is still running (its lease, about the
 * publish timeout, has not run out). Nothing was sent; retry later for the
 * first attempt's result, or to deliver if that attempt died. A 5xx on
 * purpose: the invocation fails (it is not answered as a bad request), so
 * Lambda retries an asynchronous one, and one whose retries all come within
 * the lease ends in its on-failure destination rather than being dropped.
 */
export class PublishInProgressError extends PushwireError {
  override name = 'PublishInProgressError';
  constructor(id: string) {
    super(
      'in_progress',
      `a publish with id ${JSON.stringify(id)} is still in progress; retry later for its result`,
      503,
    );
  }
}

export class UnauthorizedError extends PushwireError {
  override name = 'UnauthorizedError';
  constructor(message = 'a valid token is required') {
    super('unauthorized', message, 401);
  }
}

export class ForbiddenError extends PushwireError {
  override name = 'ForbiddenError';
  constructor(message: string) {
    super('forbidden', message, 403);
  }
}

/** The connection the frame came from is not (or no longer) registered. */
export class UnknownConnectionError extends PushwireError {
  override name = 'UnknownConnectionError';
  constructor(connectionId: string) {
    super('unknown_connection', `connection ${connectionId} is not registered`, 410);
  }
}

/** Missing or malformed configuration: raised at cold start, never at request time. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Turns anything thrown into what a caller may see. */
export function toPublicError(error: unknown): { code: string; message: string; status: number } {
  if (error instanceof PushwireError && error.expose) {
    return { code: error.code, message: error.message, status: error.status };
  }
  return { code: 'internal', message: 'internal error', status: 500 };
}
